import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { NatsConnection } from 'nats';
import { z } from 'zod';
import { AgentReply, TermName, redisKeys, type WorkloadRecord } from '@ferry/protocol';
import { decodeText, encodeJson } from '@ferry/runtime';
import { ApiError } from './errors.ts';

/** 128 random bits, base64url: a console ticket or session id nobody can guess */
export const unguessable = () => randomBytes(16).toString('base64url');
const digest = (value: string) => createHash('sha256').update(value).digest('hex');

/**
 * The host whose agent may run something in this workload now: the workload's current host, while
 * it runs there and is not moving. Otherwise 409, saying why.
 */
export function operableHost(record: WorkloadRecord): string {
  const id = record.spec.id;
  if (record.migratingTo) throw new ApiError('CONFLICT', `${id} is migrating to ${record.migratingTo}; try again when it has arrived`, { phase: record.phase });
  if (record.phase !== 'running' || !record.hostId) throw new ApiError('CONFLICT', `${id} is not running (phase ${record.phase}); start it first`, { phase: record.phase });
  return record.hostId;
}

/** What an agent's error code becomes for the API's caller. */
function apiErrorOf(hostId: string, error: { code: string; message: string }): ApiError {
  if (error.code === 'BAD_REQUEST') return new ApiError('BAD_REQUEST', error.message);
  // NOT_FOUND there: the records say it runs on that host and the host has no such copy (a
  // record a moment behind): a conflict to retry, not a missing workload
  if (error.code === 'NOT_FOUND' || error.code === 'CONFLICT' || error.code === 'BUSY') return new ApiError('CONFLICT', `${hostId}: ${error.message}`, { agentCode: error.code });
  return new ApiError('UNAVAILABLE', `${hostId} could not do it: ${error.message}`, { agentCode: error.code });
}

/** Asks agents (request/reply over NATS); without NATS every request is a 503. */
export class AgentLink {
  constructor(readonly nc: NatsConnection | null) {}

  async ask<T>(hostId: string, subject: string, body: unknown, result: z.ZodType<T>, timeoutMs: number): Promise<T> {
    if (!this.nc) throw new ApiError('UNAVAILABLE', 'this API process has no NATS connection: it cannot reach agents');
    let data: unknown;
    try {
      const msg = await this.nc.request(subject, encodeJson(body), { timeout: timeoutMs });
      data = JSON.parse(decodeText(msg.data));
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === '503') throw new ApiError('UNAVAILABLE', `no agent answers for ${hostId} (down, or an agent without exec and console)`);
      throw new ApiError('UNAVAILABLE', `${hostId} did not answer in ${Math.round(timeoutMs / 1000)} s (${(err as Error).message})`);
    }
    const reply = AgentReply.safeParse(data);
    if (!reply.success) throw new ApiError('UNAVAILABLE', `${hostId} answered something that is not an agent reply`);
    if (!reply.data.ok) throw apiErrorOf(hostId, reply.data.error);
    const parsed = result.safeParse(reply.data.result);
    if (!parsed.success) throw new ApiError('UNAVAILABLE', `${hostId} answered a result of the wrong shape`);
    return parsed.data;
  }
}

/** What a console ticket stands for, kept in Redis until used (once) or expired. */
export const ConsoleTicketRecord = z.object({
  workloadId: z.string(),
  hostId: z.string(),
  epoch: z.number().int().positive(),
  /** the token that asked for it (named in the API's logs of the session) */
  who: z.string(),
  rows: z.number().int(),
  cols: z.number().int(),
  term: TermName,
  expiresAt: z.number().int(),
});
export type ConsoleTicketRecord = z.infer<typeof ConsoleTicketRecord>;

/**
 * One-time tickets for console connections. Asking for one is an ordinary API request (bearer
 * token, the operator role, the audit log); the WebSocket then presents the ticket in its URL,
 * which a browser can do (a browser's WebSocket cannot send an Authorization header). Kept in Redis
 * by their SHA-256, so any API replica can take the connection; read once.
 */
export class ConsoleTickets {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
  ) {}

  async issue(record: ConsoleTicketRecord): Promise<string> {
    const ticket = unguessable();
    await this.redis.set(redisKeys(this.keyPrefix).consoleTicket(digest(ticket)), JSON.stringify(record), 'PX', Math.max(1, record.expiresAt - Date.now()));
    return ticket;
  }

  /** The ticket's record, and the ticket is spent; null when unknown, used or expired. */
  async redeem(ticket: string): Promise<ConsoleTicketRecord | null> {
    if (!/^[A-Za-z0-9_-]{22}$/.test(ticket)) return null;
    const text = await this.redis.getdel(redisKeys(this.keyPrefix).consoleTicket(digest(ticket)));
    if (!text) return null;
    const parsed = ConsoleTicketRecord.safeParse(JSON.parse(text));
    return parsed.success && parsed.data.expiresAt > Date.now() ? parsed.data : null;
  }
}
