import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { JOIN_TOKEN_PATTERN, JoinTokenRecord, JoinTokenUse, redisKeys, type JoinTokenView } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { hashToken } from './access.ts';

/** join tokens kept at most (used and expired ones are pruned past this) */
const MAX_JOIN_TOKENS = 1000;
/** a used or expired token is still listed this long, then pruned */
const KEEP_SPENT_MS = 7 * 24 * 3600_000;

/** Why a presented join token was refused (the message says which, never whether the secret was close). */
export type JoinTokenRefusal = 'unknown' | 'expired' | 'used';

const stateOf = (record: JoinTokenRecord, used: JoinTokenUse | null, now: number): JoinTokenView['state'] => (used ? 'used' : record.expiresAt <= now ? 'expired' : 'valid');

/**
 * One-time join tokens in Redis: `join-tokens` maps an id to its record (the secret's SHA-256,
 * when it expires, who made it), `join-tokens:used` an id to its one use. A record never changes
 * after it is made; using a token is one HSETNX on the use hash, so of two hosts presenting the
 * same token at once exactly one gets in.
 */
export class JoinTokenStore {
  private readonly keys;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly log: Logger,
  ) {
    this.keys = redisKeys(prefix);
  }

  /** A new token for this CA pin (`sha256:<base64url>`); returned once, never kept. */
  async create(caPin: string, ttlMs: number, createdBy: string, now = Date.now()): Promise<{ record: JoinTokenRecord; token: string }> {
    await this.prune(now);
    if ((await this.redis.hlen(this.keys.joinTokens)) >= MAX_JOIN_TOKENS) throw new Error(`there are ${MAX_JOIN_TOKENS} join tokens: revoke unused ones first`);
    const pin = caPin.replace(/^sha256:/, '');
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(24).toString('base64url');
    const token = `${id}.${secret}.${pin}`;
    if (!JOIN_TOKEN_PATTERN.test(token)) throw new Error('not a CA pin');
    const record: JoinTokenRecord = { id, hash: hashToken(secret), createdAt: now, expiresAt: now + ttlMs, createdBy };
    await this.redis.hset(this.keys.joinTokens, id, JSON.stringify(record));
    return { record, token };
  }

  private async read(id: string): Promise<{ record: JoinTokenRecord; used: JoinTokenUse | null } | null> {
    const [json, usedJson] = await Promise.all([this.redis.hget(this.keys.joinTokens, id), this.redis.hget(this.keys.joinTokenUse, id)]);
    if (json === null) return null;
    const record = JoinTokenRecord.safeParse(JSON.parse(json));
    if (!record.success) {
      this.log.warn({ id }, 'unreadable join token record in Redis; the token is refused');
      return null;
    }
    const used = usedJson === null ? null : JoinTokenUse.safeParse(JSON.parse(usedJson));
    return { record: record.data, used: used?.success ? used.data : used ? { at: 0, hostId: 'unknown', remote: '' } : null };
  }

  /**
   * Uses a presented token for this host: refused when unknown (or the secret does not match),
   * expired or used before. Exactly one caller ever gets `ok` for a token.
   */
  async use(token: string, hostId: string, remote: string, now = Date.now()): Promise<{ ok: true; id: string } | { ok: false; refusal: JoinTokenRefusal; id: string | null; used?: JoinTokenUse }> {
    const match = JOIN_TOKEN_PATTERN.exec(token);
    if (!match) return { ok: false, refusal: 'unknown', id: null };
    const [, id, secret] = match as unknown as [string, string, string];
    const found = await this.read(id);
    if (!found || found.record.hash !== hashToken(secret)) return { ok: false, refusal: 'unknown', id: null };
    if (found.used) return { ok: false, refusal: 'used', id, used: found.used };
    if (found.record.expiresAt <= now) return { ok: false, refusal: 'expired', id };
    const use: JoinTokenUse = { at: now, hostId, remote: remote.slice(0, 100) };
    if ((await this.redis.hsetnx(this.keys.joinTokenUse, id, JSON.stringify(use))) === 0) {
      const again = await this.read(id);
      return { ok: false, refusal: 'used', id, ...(again?.used ? { used: again.used } : {}) };
    }
    return { ok: true, id };
  }

  /** Gives a used token back (the join failed after it was used: the host may try again). */
  async release(id: string): Promise<void> {
    await this.redis.hdel(this.keys.joinTokenUse, id);
  }

  async list(now = Date.now()): Promise<JoinTokenView[]> {
    const [records, uses] = await Promise.all([this.redis.hgetall(this.keys.joinTokens), this.redis.hgetall(this.keys.joinTokenUse)]);
    return Object.values(records)
      .flatMap((json) => {
        const parsed = JoinTokenRecord.safeParse(JSON.parse(json));
        return parsed.success ? [parsed.data] : [];
      })
      .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id))
      .map((r) => {
        const usedParse = uses[r.id] ? JoinTokenUse.safeParse(JSON.parse(uses[r.id]!)) : null;
        const used = usedParse?.success ? usedParse.data : null;
        return { id: r.id, state: stateOf(r, used, now), createdAt: r.createdAt, expiresAt: r.expiresAt, createdBy: r.createdBy, used };
      });
  }

  /** Revokes a token (used or not); false when there is none. */
  async revoke(id: string): Promise<boolean> {
    const [removed] = (await this.redis.multi().hdel(this.keys.joinTokens, id).hdel(this.keys.joinTokenUse, id).exec()) ?? [];
    return removed?.[1] === 1;
  }

  /** Forgets tokens spent (used or expired) more than a week ago. */
  private async prune(now: number): Promise<void> {
    for (const view of await this.list(now)) {
      const spentAt = view.used?.at ?? (view.state === 'expired' ? view.expiresAt : null);
      if (spentAt !== null && now - spentAt > KEEP_SPENT_MS) await this.revoke(view.id);
    }
  }
}
