import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { roleAllows, type AuditEntry, type Role, type TokenRecord } from '@ferry/protocol';
import { createLogger } from '@ferry/runtime';
import { ACCESS, accessGaps, accessOf, installAccessControl } from './auth.ts';
import { z } from 'zod';
import { PLACEMENT_SETTINGS } from '@ferry/runtime';
import type { ApiConfig } from './config.ts';
import { installErrorHandlers, installJsonParser } from './errors.ts';
import { EventHub } from './events.ts';
import { ApiMetrics } from './metrics.ts';
import { OPERATIONS } from './openapi.ts';
import { buildApp, type Queues } from './server.ts';

const log = createLogger('test').child({}, { level: 'silent' });
const BOOTSTRAP = 'b'.repeat(32);
const TOKENS: Record<string, Role> = { 'viewer-token-000000': 'viewer', 'operator-token-0000': 'operator', 'admin-token-0000000': 'admin' };
const NAMES: Record<Role, string> = { viewer: 'ro', operator: 'ops', admin: 'boss' };

describe('the route → role table', () => {
  it('has an entry for every route the API serves (and the API would not start without one)', async () => {
    // a Redis that never connects: building the app sends no command
    const redis = new Redis({ lazyConnect: true, enableOfflineQueue: false });
    const hub = new EventHub(log);
    const served: Array<{ method: string; url: string }> = [];
    // only what building the app reads (the config's NATS settings do not matter here)
    const config = { token: BOOTSTRAP, keyPrefix: 'ferry', planTtlMs: 3_600_000, bodyLimitBytes: 1 << 20, ...z.object(PLACEMENT_SETTINGS).parse({}) } as ApiConfig;
    const app = await buildApp(config, redis, {} as Queues, hub, new ApiMetrics(() => 0), log, { served });
    try {
      const routes = served.filter((r) => r.method !== 'HEAD');
      expect(routes.length).toBe(OPERATIONS.length);
      expect(accessGaps(served)).toEqual([]);
      for (const r of served) expect(accessOf(r.method, r.url), `${r.method} ${r.url}`).toBeDefined();
      expect(routes).toContainEqual({ method: 'POST', url: '/v1/tokens' });
      expect(routes).toContainEqual({ method: 'GET', url: '/v1/audit' });
    } finally {
      await app.close();
      redis.disconnect();
    }
  });

  it('reports a served route it has no entry for', () => {
    expect(
      accessGaps([
        { method: 'GET', url: '/v1/hosts' },
        { method: 'HEAD', url: '/v1/hosts' },
        { method: 'POST', url: '/v1/new-thing' },
      ]),
    ).toEqual(['POST /v1/new-thing']);
  });

  it('says who may do what: reads for viewers, moves for operators, creation, removal and tokens for admins', () => {
    const role = (key: string) => ACCESS.get(key);
    // a console log can hold secrets: operator, like the audit log
    const reads = { '/v1/tokens': 'admin', '/v1/join-tokens': 'admin', '/v1/audit': 'operator', '/v1/workloads/:id/logs': 'operator' } as Record<string, string>;
    for (const op of OPERATIONS.filter((o) => o.method === 'GET' && o.access !== 'open')) expect(op.access, op.path).toBe(reads[op.path] ?? 'viewer');
    expect(role('POST /v1/workloads/:id/migrate')).toBe('operator');
    expect(role('DELETE /v1/migrations/:id')).toBe('operator');
    expect(role('POST /v1/hosts/:id/maintenance')).toBe('operator');
    expect(role('DELETE /v1/hosts/:id/maintenance')).toBe('operator');
    expect(role('POST /v1/rebalance')).toBe('operator');
    expect(role('POST /v1/plans/:id/execute')).toBe('operator');
    expect(role('DELETE /v1/plans/:id')).toBe('operator');
    expect(role('POST /v1/workloads/:id/start')).toBe('operator');
    expect(role('POST /v1/workloads/:id/stop')).toBe('operator');
    expect(role('POST /v1/workloads/:id/suspend')).toBe('operator');
    expect(role('POST /v1/workloads/:id/resume')).toBe('operator');
    expect(role('POST /v1/workloads/:id/exec')).toBe('operator');
    expect(role('POST /v1/workloads/:id/console')).toBe('operator');
    expect(role('POST /v1/workloads')).toBe('admin');
    expect(role('DELETE /v1/workloads/:id')).toBe('admin');
    expect(role('DELETE /v1/hosts/:id')).toBe('admin');
    expect(role('POST /v1/hosts/:id/admit')).toBe('admin');
    expect(role('POST /v1/tokens')).toBe('admin');
    expect(role('DELETE /v1/tokens/:name')).toBe('admin');
    expect(role('POST /v1/join-tokens')).toBe('admin');
    expect(role('DELETE /v1/join-tokens/:id')).toBe('admin');
    // open: health, metrics, the API reference and the dashboard's files; under /v1 only the
    // document, the cluster CA (public) and joining (the join token is the credential)
    expect(OPERATIONS.filter((o) => o.access === 'open').map((o) => o.path)).toEqual(['/healthz', '/metrics', '/v1/openapi.json', '/docs', '/', '/ui/', '/ui/:file', '/v1/cluster/ca', '/v1/join']);
  });
});

/** Every operation of the table on a bare app, each answering 200, behind the real hooks. */
async function guarded() {
  const audit: Array<Omit<AuditEntry, 'id'>> = [];
  const touched: string[] = [];
  const app = Fastify();
  installErrorHandlers(app);
  installJsonParser(app);
  installAccessControl(app, {
    bootstrapToken: BOOTSTRAP,
    tokens: {
      async lookup(token: string): Promise<TokenRecord | null> {
        const role = TOKENS[token];
        return role ? { name: NAMES[role], role, hash: '0'.repeat(64), createdAt: 1 } : null;
      },
      async touch(name: string) {
        touched.push(name);
      },
    },
    audit: {
      async append(entry) {
        audit.push(entry);
      },
    },
    log,
  });
  for (const op of OPERATIONS) app.route({ method: op.method, url: op.path, handler: async () => ({ ok: true }) });
  await app.ready();
  return { app, audit, touched };
}

const concrete = (path: string) => path.replace(':file', 'app.js').replace(/:[a-z]+/g, 'x1');
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('the access hook', () => {
  it('lets each token do exactly what its role allows, on every route', async () => {
    const { app } = await guarded();
    const holders: Array<[string, Record<string, string>, Role | null]> = [
      ['no token', {}, null],
      ['an invalid token', bearer('not-a-token-at-all'), null],
      ...Object.entries(TOKENS).map(([token, role]): [string, Record<string, string>, Role] => [role, bearer(token), role]),
      ['the bootstrap token', bearer(BOOTSTRAP), 'admin'],
    ];
    for (const op of OPERATIONS) {
      for (const [who, headers, role] of holders) {
        const res = await app.inject({ method: op.method, url: concrete(op.path), headers });
        const expected = op.access === 'open' ? 200 : role === null ? 401 : roleAllows(role, op.access) ? 200 : 403;
        expect(res.statusCode, `${op.method} ${op.path} with ${who}`).toBe(expected);
      }
    }
    await app.close();
  });

  it('answers 403 naming the role needed and the role held, and audits every mutating request with its outcome', async () => {
    const { app, audit, touched } = await guarded();
    const refused = await app.inject({ method: 'POST', url: '/v1/workloads/web-1/migrate?dryRun=true', headers: { ...bearer('viewer-token-000000'), 'x-forwarded-for': '10.9.9.9' } });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toEqual({
      code: 'FORBIDDEN',
      message: 'POST /v1/workloads/:id/migrate needs the operator role; token "ro" has the viewer role',
      details: { needed: 'operator', held: 'viewer', token: 'ro' },
    });
    expect(audit.at(-1)).toMatchObject({
      who: 'ro',
      role: 'viewer',
      method: 'POST',
      path: '/v1/workloads/web-1/migrate',
      query: 'dryRun=true',
      route: '/v1/workloads/:id/migrate',
      target: { kind: 'workload', id: 'web-1' },
      remote: '127.0.0.1', // no proxy is trusted
      status: 403,
      error: 'FORBIDDEN',
    });

    expect((await app.inject({ method: 'POST', url: '/v1/workloads/web-1/migrate', headers: bearer('operator-token-0000') })).statusCode).toBe(200);
    expect(audit.at(-1)).toMatchObject({ who: 'ops', role: 'operator', status: 200, error: null, query: null });

    expect((await app.inject({ method: 'DELETE', url: '/v1/hosts/h3' })).statusCode).toBe(401);
    expect(audit.at(-1)).toMatchObject({ who: 'anonymous', role: null, method: 'DELETE', target: { kind: 'host', id: 'h3' }, status: 401, error: 'UNAUTHORIZED' });
    expect((await app.inject({ method: 'POST', url: '/v1/tokens', headers: bearer('wrong-token-0000000'), payload: { name: 'x', role: 'admin' } })).statusCode).toBe(401);
    expect(audit.at(-1)).toMatchObject({ who: 'invalid token', role: null, status: 401 });

    // a new object named in the body; and a request that matched no route
    expect((await app.inject({ method: 'POST', url: '/v1/workloads', headers: bearer(BOOTSTRAP), payload: { id: 'web-2' } })).statusCode).toBe(200);
    expect(audit.at(-1)).toMatchObject({ who: 'bootstrap', role: 'admin', target: { kind: 'workload', id: 'web-2' }, status: 200 });
    expect((await app.inject({ method: 'POST', url: '/v1/nowhere', headers: bearer(BOOTSTRAP) })).statusCode).toBe(404);
    expect(audit.at(-1)).toMatchObject({ who: 'bootstrap', route: null, target: null, status: 404, error: 'NOT_FOUND' });

    // reads are not audited; tokens that were used are recorded as used
    const count = audit.length;
    expect((await app.inject({ method: 'GET', url: '/v1/workloads', headers: bearer('viewer-token-000000') })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v1/workloads' })).statusCode).toBe(401);
    expect(audit.length).toBe(count);
    expect(new Set(touched)).toEqual(new Set(['ro', 'ops', 'bootstrap']));
    // the token never appears in an audit entry
    expect(JSON.stringify(audit)).not.toMatch(/token-0|bbbbbbbb/);
    await app.close();
  });

  it('refuses (500) a served route that has no entry in the table, whatever the token', async () => {
    const bare = Fastify();
    installErrorHandlers(bare);
    installAccessControl(bare, { bootstrapToken: BOOTSTRAP, tokens: { lookup: async () => null, touch: async () => undefined }, audit: { append: async () => undefined }, log });
    bare.get('/v1/unlisted', async () => ({ secret: true }));
    const res = await bare.inject({ method: 'GET', url: '/v1/unlisted', headers: bearer(BOOTSTRAP) });
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toContain('secret');
    await bare.close();
  });

  it('answers 503 when the token cannot be checked (Redis away), and audits that', async () => {
    const audit: Array<Omit<AuditEntry, 'id'>> = [];
    const app = Fastify();
    installErrorHandlers(app);
    installAccessControl(app, {
      bootstrapToken: BOOTSTRAP,
      tokens: { lookup: async () => Promise.reject(new Error('Connection is closed.')), touch: async () => undefined },
      audit: { append: async (entry) => void audit.push(entry) },
      log,
    });
    app.post('/v1/rebalance', async () => ({}));
    expect((await app.inject({ method: 'POST', url: '/v1/rebalance', headers: bearer('operator-token-0000') })).statusCode).toBe(503);
    expect((await app.inject({ method: 'POST', url: '/v1/rebalance', headers: bearer(BOOTSTRAP) })).statusCode).toBe(200); // the bootstrap token needs no Redis
    expect(audit.map((e) => [e.who, e.status])).toEqual([
      ['anonymous', 503],
      ['bootstrap', 200],
    ]);
    await app.close();
  });
});
