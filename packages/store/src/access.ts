import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { AuditEntry, TokenRecord, redisKeys, type Role, type TokenView } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';

/** Tokens are 32 random bytes (base64url) after this prefix, so a leaked one is recognisable. */
export const TOKEN_PREFIX = 'ferry_';

/** A new bearer token: 256 bits from the system's CSPRNG. */
export const newToken = (): string => `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;

/**
 * SHA-256 of a token, hex. Enough for tokens of 32 random bytes: nothing to brute-force, so no
 * salt or slow hash is needed, and a lookup is one hash-field read.
 */
export const hashToken = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

/** last-used times are written at most this often per token and process */
const TOUCH_EVERY_MS = 60_000;

/**
 * Named API tokens in Redis. Only hashes are stored: `tokens` maps a token's SHA-256 to its record
 * (name, role, created), `tokens:names` a name to that hash (names are unique; revoke by name),
 * `tokens:used` a name to when it was last seen. No cache: a revoked token fails at once.
 */
export class TokenStore {
  private readonly keys;
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly log: Logger,
  ) {
    this.keys = redisKeys(prefix);
  }

  /** A new token with this name and role; null when the name is taken. The token is returned once and never kept. */
  async create(name: string, role: Role, now = Date.now()): Promise<{ record: TokenRecord; token: string } | null> {
    const token = newToken();
    const record: TokenRecord = { name, role, hash: hashToken(token), createdAt: now };
    // the name first (unique); a crash before the record leaves a name without a working token, which revoke clears
    if ((await this.redis.hsetnx(this.keys.tokenNames, name, record.hash)) === 0) return null;
    await this.redis.multi().hset(this.keys.tokens, record.hash, JSON.stringify(record)).hdel(this.keys.tokenUse, name).exec();
    return { record, token };
  }

  /** The record of the token presented, or null when it is not (or no longer) a valid one. */
  async lookup(token: string): Promise<TokenRecord | null> {
    const hash = hashToken(token);
    const json = await this.redis.hget(this.keys.tokens, hash);
    if (json === null) return null;
    const parsed = TokenRecord.safeParse(JSON.parse(json));
    if (!parsed.success || parsed.data.hash !== hash) {
      this.log.warn({ name: parsed.success ? parsed.data.name : undefined }, 'unreadable token record in Redis; the token is refused');
      return null;
    }
    return parsed.data;
  }

  /** Every named token (never the token): name order. */
  async list(): Promise<TokenView[]> {
    const [records, used] = await Promise.all([this.redis.hgetall(this.keys.tokens), this.redis.hgetall(this.keys.tokenUse)]);
    return Object.values(records)
      .flatMap((json) => {
        const parsed = TokenRecord.safeParse(JSON.parse(json));
        return parsed.success ? [parsed.data] : [];
      })
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((r) => ({ name: r.name, role: r.role, createdAt: r.createdAt, lastUsedAt: used[r.name] ? Number(used[r.name]) : null, builtIn: false }));
  }

  async count(): Promise<number> {
    return this.redis.hlen(this.keys.tokenNames);
  }

  /** Revokes the token with this name; false when there is none. */
  async revoke(name: string): Promise<boolean> {
    const hash = await this.redis.hget(this.keys.tokenNames, name);
    if (hash === null) return false;
    await this.redis.multi().hdel(this.keys.tokenNames, name).hdel(this.keys.tokens, hash).hdel(this.keys.tokenUse, name).exec();
    this.touched.delete(name);
    return true;
  }

  /** Records that a token was used (at most once a minute per token in this process). */
  async touch(name: string, now = Date.now()): Promise<void> {
    const last = this.touched.get(name);
    if (last !== undefined && now - last < TOUCH_EVERY_MS) return;
    this.touched.set(name, now);
    await this.redis.hset(this.keys.tokenUse, name, String(now));
  }

  /** When a token was last used, by name (the bootstrap token's too). */
  async lastUsed(name: string): Promise<number | null> {
    const at = await this.redis.hget(this.keys.tokenUse, name);
    return at === null ? null : Number(at);
  }
}

/** entries kept, about (MAXLEN ~) */
export const AUDIT_CAP = 100_000;

/**
 * The audit log: one entry per mutating API request in a Redis stream capped at about
 * AUDIT_CAP entries (the oldest are trimmed). Read newest first, a page at a time.
 */
export class AuditLog {
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly log: Logger,
    private readonly cap = AUDIT_CAP,
  ) {
    this.key = redisKeys(prefix).audit;
  }

  /** Appends an entry; its id is the stream's. */
  async append(entry: Omit<AuditEntry, 'id'>): Promise<string> {
    const id = await this.redis.xadd(this.key, 'MAXLEN', '~', String(this.cap), '*', 'entry', JSON.stringify(entry));
    return id ?? '';
  }

  /** Newest first: at most `limit` entries older than `before` (an entry id), and the id to pass for the next page. */
  async page(limit: number, before?: string): Promise<{ entries: AuditEntry[]; next: string | null }> {
    const raw = await this.redis.xrevrange(this.key, before ? `(${before}` : '+', '-', 'COUNT', limit + 1);
    const entries = raw.slice(0, limit).flatMap(([id, fields]) => {
      const json = fields[fields.indexOf('entry') + 1];
      try {
        return [AuditEntry.parse({ ...JSON.parse(json ?? ''), id })];
      } catch (err) {
        this.log.warn({ id, err }, 'unreadable audit entry in Redis; skipped');
        return [];
      }
    });
    return { entries, next: raw.length > limit ? (raw[limit - 1]?.[0] ?? null) : null };
  }
}
