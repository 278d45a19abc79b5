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

/** Commands to agents by NATS request/reply, with timeouts; replies are validated like any input. */
export class AgentClient {
  constructor(private readonly nc: NatsConnection) {}

  async call<C extends AgentCommand>(hostId: string, command: C, request: AgentRequest<C>, timeoutMs = 60_000): Promise<AgentResult<C>> {
    let data: Uint8Array;
    try {
      const reply = await this.nc.request(subjects.agentCommand(hostId, command), encodeJson(request), { timeout: timeoutMs });
      data = reply.data;
    } catch (err) {
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
}
