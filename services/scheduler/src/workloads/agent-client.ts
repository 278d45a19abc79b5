import type { Msg, NatsConnection } from 'nats';
import { AgentReply, RETRYABLE_AGENT_ERRORS, agentResultSchemas, subjects, type AgentCommand, type AgentRequest, type AgentResult } from '@ferry/protocol';
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

/** How often a request in flight looks whether its agent restarted, or NATS reconnected, meanwhile. */
const CHECK_MS = 250;

/**
 * Commands to agents by NATS request/reply, with timeouts; replies are validated like any input.
 *
 * A request in flight survives two faults without waiting out its timeout:
 * - NATS reconnected (a server restarted, or this client moved to another node of a cluster):
 *   the request or its reply may have been lost with the connection, so it is sent again, and
 *   the first reply to either copy counts. Agents answer a duplicate of a request they are still
 *   running from that same run (serveCommands), and every command is idempotent once done — so a
 *   copy costs nothing. (Before: a migration's prepare waited 30 s, a failover's adopt 120 s.)
 * - its agent restarted (`runOf`, from the capacity reports' agent identity): the new agent never
 *   answers a request the old one took, so the call fails at once with AGENT_RESTARTED.
 *   (Before: a restore waited its 120 s timeout with the workload frozen on its source.)
 */
export class AgentClient {
  /** NATS reconnections seen so far (requests in flight compare it with its value when sent) */
  private reconnects = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly runOf: AgentRunOf = () => null,
  ) {
    if (typeof nc.status === 'function') {
      void (async () => {
        for await (const status of nc.status()) if (status.type === 'reconnect') this.reconnects++;
      })().catch(() => undefined);
    }
  }

  async call<C extends AgentCommand>(hostId: string, command: C, request: AgentRequest<C>, timeoutMs = 60_000): Promise<AgentResult<C>> {
    let data: Uint8Array;
    try {
      data = (await this.exchange(hostId, command, encodeJson(request), timeoutMs)).data;
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

  /**
   * One request, sent again after each NATS reconnection while unanswered; the first reply wins.
   * Fails with the first copy's error once every copy failed (a copy answered "no responders"
   * while the agent had not resubscribed yet does not end it), or at once when the agent restarted.
   */
  private exchange(hostId: string, command: AgentCommand, payload: Uint8Array, timeoutMs: number): Promise<Msg> {
    const subject = subjects.agentCommand(hostId, command);
    const deadline = Date.now() + timeoutMs;
    const run = this.runOf(hostId);
    let seenReconnects = this.reconnects;
    return new Promise<Msg>((resolve, reject) => {
      let settled = false;
      let outstanding = 0;
      let firstError: unknown = null;
      let resendDue = false;
      let timer: NodeJS.Timeout | undefined;
      const settle = (action: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        action();
      };
      const send = (resent: boolean) => {
        outstanding++;
        this.nc.request(subject, payload, { timeout: Math.max(1, deadline - Date.now()) }).then(
          (msg) => settle(() => resolve(msg)),
          (err: unknown) => {
            outstanding--;
            const noResponders = (err as { code?: string }).code === '503';
            if (!resent) firstError = err;
            // a copy sent before the agent resubscribed: sent again at the next check
            else if (noResponders) resendDue = true;
            else if (firstError === null) firstError = err;
            if (outstanding === 0 && (!resendDue || Date.now() >= deadline)) settle(() => reject(firstError ?? err));
          },
        );
      };
      const check = () => {
        if (settled) return;
        const now = run === null ? null : this.runOf(hostId);
        if (now !== null && now !== run) {
          settle(() => reject(new AgentCallError('AGENT_RESTARTED', `agent ${hostId} restarted before it answered ${command}: the request was lost with its old run`, true)));
          return;
        }
        if (outstanding === 0 && Date.now() >= deadline) {
          settle(() => reject(firstError ?? Object.assign(new Error('timed out'), { code: 'TIMEOUT' })));
          return;
        }
        if ((this.reconnects !== seenReconnects || resendDue) && Date.now() < deadline) {
          seenReconnects = this.reconnects;
          resendDue = false;
          send(true); // the request or its reply may have gone down with the old connection
        }
        timer = setTimeout(check, CHECK_MS);
      };
      send(false);
      timer = setTimeout(check, CHECK_MS);
    });
  }
}
