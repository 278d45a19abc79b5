import { describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { redisKeys } from '@ferry/protocol';
import { createLogger } from '@ferry/runtime';
import { TOKEN_PREFIX, TokenStore, hashToken, newToken } from './access.ts';

/** The few hash commands TokenStore uses, in memory. */
function fakeRedis() {
  const hashes = new Map<string, Map<string, string>>();
  const hash = (key: string) => hashes.get(key) ?? hashes.set(key, new Map()).get(key)!;
  const api = {
    hashes,
    async hget(key: string, field: string) {
      return hash(key).get(field) ?? null;
    },
    async hset(key: string, field: string, value: string) {
      hash(key).set(field, value);
      return 1;
    },
    async hsetnx(key: string, field: string, value: string) {
      if (hash(key).has(field)) return 0;
      hash(key).set(field, value);
      return 1;
    },
    async hdel(key: string, field: string) {
      return hash(key).delete(field) ? 1 : 0;
    },
    async hgetall(key: string) {
      return Object.fromEntries(hash(key));
    },
    async hlen(key: string) {
      return hash(key).size;
    },
    multi() {
      const queued: Array<() => Promise<unknown>> = [];
      const chain = {
        hset: (key: string, field: string, value: string) => (queued.push(() => api.hset(key, field, value)), chain),
        hdel: (key: string, field: string) => (queued.push(() => api.hdel(key, field)), chain),
        exec: async () => {
          const results = [];
          for (const command of queued) results.push([null, await command()]);
          return results;
        },
      };
      return chain;
    },
  };
  return api;
}

const log = createLogger('test').child({}, { level: 'silent' });

describe('API tokens: hashed, looked up by hash, revocable', () => {
  it('makes 32 random bytes per token and hashes them with SHA-256', () => {
    const a = newToken();
    expect(a.startsWith(TOKEN_PREFIX)).toBe(true);
    expect(Buffer.from(a.slice(TOKEN_PREFIX.length), 'base64url')).toHaveLength(32);
    expect(newToken()).not.toBe(a);
    expect(hashToken('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(hashToken(a)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('stores only the hash, finds a token by it, refuses others, and forgets a revoked one at once', async () => {
    const redis = fakeRedis();
    const tokens = new TokenStore(redis as unknown as Redis, 'ferry', log);
    const created = await tokens.create('ci', 'viewer', 1000);
    expect(created).not.toBeNull();
    const { token, record } = created!;
    expect(record).toEqual({ name: 'ci', role: 'viewer', hash: hashToken(token), createdAt: 1000 });

    // nothing in Redis holds the token (nor a part of its random bytes)
    const everything = JSON.stringify([...redis.hashes].map(([key, h]) => [key, [...h]]));
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(token.slice(TOKEN_PREFIX.length, TOKEN_PREFIX.length + 12));
    expect(redis.hashes.get(redisKeys('ferry').tokenNames)?.get('ci')).toBe(hashToken(token));

    expect(await tokens.lookup(token)).toEqual(record);
    expect(await tokens.lookup(`${token}x`)).toBeNull();
    expect(await tokens.lookup(newToken())).toBeNull();
    expect(await tokens.create('ci', 'admin')).toBeNull(); // names are unique

    await tokens.touch('ci', 5000);
    await tokens.touch('ci', 6000); // within a minute: not written again
    const [listed] = await tokens.list();
    expect(listed).toEqual({ name: 'ci', role: 'viewer', createdAt: 1000, lastUsedAt: 5000, builtIn: false });
    expect(JSON.stringify(await tokens.list())).not.toContain(record.hash);

    expect(await tokens.revoke('ci')).toBe(true);
    expect(await tokens.lookup(token)).toBeNull();
    expect(await tokens.revoke('ci')).toBe(false);
    expect(await tokens.list()).toEqual([]);
    // the name is free again, with a new token
    const again = await tokens.create('ci', 'operator');
    expect(again!.token).not.toBe(token);
    expect((await tokens.lookup(again!.token))?.role).toBe('operator');
    expect((await tokens.list())[0]?.lastUsedAt).toBeNull();
  });

  it('refuses a record that no longer parses or does not match its hash', async () => {
    const redis = fakeRedis();
    const tokens = new TokenStore(redis as unknown as Redis, 'ferry', log);
    const { token } = (await tokens.create('ops', 'operator'))!;
    const key = redisKeys('ferry').tokens;
    redis.hashes.get(key)!.set(hashToken(token), JSON.stringify({ name: 'ops', role: 'root', hash: hashToken(token), createdAt: 1 }));
    expect(await tokens.lookup(token)).toBeNull();
    const forged = newToken();
    redis.hashes.get(key)!.set(hashToken(forged), JSON.stringify({ name: 'ops', role: 'admin', hash: hashToken(token), createdAt: 1 }));
    expect(await tokens.lookup(forged)).toBeNull();
  });
});
