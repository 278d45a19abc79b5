import type { NatsConnection } from 'nats';
import {
  AgentReply,
  RETRYABLE_AGENT_ERRORS,
  agentResultSchemas,
  subjects,
  type AgentCommand,
  type AgentRequest,
  type AgentResult,
} from '@ferry/protocol';
import { decodeText, describeIssues, encodeJson } from '@ferry/runtime';

export class AgentCallError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** trying again later may succeed (agent unreachable, busy, timed out) */
    readonly retryable: boolean,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'AgentCallError';
  }
}

/** Which run of a host's agent is reporting (e.g. pid@start); null while unknown. */
export type AgentRunOf = (hostId: string) => string | null;

/** How often a request in flight looks whether its agent was restarted meanwhile. */
const RUN_CHECK_MS = 500;

/**
 * Commands to agents by NATS request/reply, with timeouts; replies are validated like any input.
 *
 * With `runOf` (the capacity reports' agent identity), a request whose agent restarts before it
 * answered fails at once with AGENT_RESTARTED instead of waiting out its timeout: the new agent
 * never answers a request the old one took (a migration's restore waited 120 s for it, with the
 * workload frozen on its source — the fault matrix, docs/migration.md).
 */
export class AgentClient {
  constructor(
    private readonly nc: NatsConnection,
    private readonly runOf: AgentRunOf = () => null,
  ) {}

  async call<C extends AgentCommand>(hostId: string, command: C, request: AgentRequest<C>, timeoutMs = 60_000): Promise<AgentResult<C>> {
    let data: Uint8Array;
    try {
      const reply = await this.untilAgentRestarts(hostId, command, this.nc.request(subjects.agentCommand(hostId, command), encodeJson(request), { timeout: timeoutMs }));
      data = reply.data;
    } catch (err) {
      if (err instanceof AgentCallError) throw err;
      const code = (err as { code?: string }).code;
      if (code === '503') throw new AgentCallError('AGENT_UNREACHABLE', `agent ${hostId} is not answering (${command})`, true);
      if (code === 'TIMEOUT') throw new AgentCallError('AGENT_TIMEOUT', `agent ${hostId} did not answer ${command} within ${timeoutMs} ms`, true);
      throw new AgentCallError('AGENT_UNREACHABLE', `${command} to ${hostId}: ${(err as Error).message}`, true);
    }
    let body: unknown;
    try {
      body = JSON.parse(decodeText(data));
    } catch {
      throw new AgentCallError('AGENT_BAD_REPLY', `agent ${hostId} sent a reply that is not JSON`, false);
    }
    const reply = AgentReply.safeParse(body);
    if (!reply.success) throw new AgentCallError('AGENT_BAD_REPLY', `agent ${hostId} sent a malformed reply: ${describeIssues(reply.error).join('; ')}`, false);
    if (!reply.data.ok) {
      const { code, message, details } = reply.data.error;
      throw new AgentCallError(code, message, RETRYABLE_AGENT_ERRORS.has(code), details);
    }
    const result = agentResultSchemas[command].safeParse(reply.data.result);
    if (!result.success) throw new AgentCallError('AGENT_BAD_REPLY', `agent ${hostId} sent a malformed ${command} result`, false);
    return result.data as AgentResult<C>;
  }

  /** `pending`, or AGENT_RESTARTED as soon as another run of the host's agent reports. */
  private async untilAgentRestarts<T>(hostId: string, command: AgentCommand, pending: Promise<T>): Promise<T> {
    const run = this.runOf(hostId);
    if (run === null) return pending;
    let timer: NodeJS.Timeout | undefined;
    const restarted = new Promise<never>((_, reject) => {
      const check = () => {
        const now = this.runOf(hostId);
        if (now !== null && now !== run) reject(new AgentCallError('AGENT_RESTARTED', `agent ${hostId} restarted before it answered ${command}: the request was lost with its old run`, true));
        else timer = setTimeout(check, RUN_CHECK_MS);
      };
      timer = setTimeout(check, RUN_CHECK_MS);
    });
    try {
      return await Promise.race([pending, restarted]);
    } finally {
      clearTimeout(timer);
      pending.catch(() => undefined); // an abandoned request's late failure is expected
    }
  }
}
