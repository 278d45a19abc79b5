import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import type { Redis } from 'ioredis';
import { repoRoot } from '@ferry/deploy';
import { redisKeys, type AuditEntry, type AuditResponse, type TokenCreated, type TokenListResponse } from '@ferry/protocol';
import { hashToken } from '@ferry/store';
import { eventually, http, startTestCluster, type TestCluster } from './helpers/cluster.ts';

describe('API roles, named tokens and the audit log', () => {
  let t: TestCluster;
  let redis: Redis;
  const as = (token: string | undefined, method: string, path: string, body?: unknown) => http(`${t.cluster.apiUrl}${path}`, { token, method, body });
  // the CLI against this cluster's API with a given token (no context file)
  const ferry = (token: string, args: string[]) =>
    execa(join(repoRoot, 'packages', 'cli', 'bin', 'ferry'), args, {
      reject: false,
      cwd: repoRoot,
      env: { FERRY_CONFIG: '/nonexistent/ferry.yaml', FERRY_API_URL: t.cluster.apiUrl, FERRY_API_TOKEN: token },
    });
  const auditLog = async (query = '') => (await as(t.cluster.token, 'GET', `/v1/audit${query}`)).body as AuditResponse;

  beforeAll(async () => {
    t = await startTestCluster();
    redis = t.cluster.redisAdmin();
  });

  afterAll(async () => {
    redis?.disconnect();
    await t?.close();
  });

  it('viewer reads but cannot migrate (403 naming the role), operator migrates but cannot make tokens, revoked tokens are refused, Redis holds only hashes', async () => {
    // the bootstrap token (FERRY_API_TOKEN) is the admin: it makes the others, with the CLI and the API
    const cli = await ferry(t.cluster.token, ['tokens', 'create', 'ro', '--role', 'viewer']);
    expect(cli.exitCode, cli.stderr).toBe(0);
    const viewer = cli.stdout.trim();
    expect(viewer).toMatch(/^ferry_[A-Za-z0-9_-]{43}$/);
    expect(cli.stderr).toContain('shown only this once');
    const made = await as(t.cluster.token, 'POST', '/v1/tokens', { name: 'ops', role: 'operator' });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const operator = (made.body as TokenCreated).token;
    expect(made.body).toMatchObject({ name: 'ops', role: 'operator' });

    // bad input: named problems, nothing made
    const bad = await as(t.cluster.token, 'POST', '/v1/tokens', { name: 'Not A Name', role: 'root' });
    expect(bad.status).toBe(400);
    expect(bad.body.details.problems.map((p: { field: string }) => p.field).sort()).toEqual(['body.name', 'body.role']);
    expect((await as(t.cluster.token, 'POST', '/v1/tokens', { name: 'ops', role: 'viewer' })).status).toBe(409);
    expect((await as(t.cluster.token, 'POST', '/v1/tokens', { name: 'bootstrap', role: 'viewer' })).status).toBe(400);

    // viewer: reads, but a migration is refused, naming the role needed and the one held
    expect((await as(viewer, 'GET', '/v1/workloads')).status).toBe(200);
    expect((await as(viewer, 'GET', '/v1/hosts')).status).toBe(200);
    const refused = await as(viewer, 'POST', '/v1/workloads/web-1/migrate', {});
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ code: 'FORBIDDEN', details: { needed: 'operator', held: 'viewer', token: 'ro' } });
    expect(refused.body.message).toBe('POST /v1/workloads/:id/migrate needs the operator role; token "ro" has the viewer role');
    const viaCli = await ferry(viewer, ['migrate', 'web-1', '--dry-run']);
    expect(viaCli.exitCode).toBe(3);
    expect(viaCli.stderr).toContain('needs the operator role');
    expect((await as(viewer, 'GET', '/v1/audit')).status).toBe(403);
    expect((await as(viewer, 'GET', '/v1/tokens')).status).toBe(403);

    // …and the audit log has that refused attempt: who, role, what, the outcome
    const entry = await eventually('the refused migration in the audit log', async () => (await auditLog()).entries.find((e) => e.who === 'ro' && e.path === '/v1/workloads/web-1/migrate'));
    expect(entry).toMatchObject({
      role: 'viewer',
      method: 'POST',
      route: '/v1/workloads/:id/migrate',
      target: { kind: 'workload', id: 'web-1' },
      status: 403,
      error: 'FORBIDDEN',
      remote: '127.0.0.1',
    });
    expect(Math.abs(entry.at - Date.now())).toBeLessThan(60_000);

    // operator: past authorization for a migration (a dry run of a workload that does not exist: 404, not 403) and a rebalance
    const dryRun = await as(operator, 'POST', '/v1/workloads/web-1/migrate?dryRun=true', {});
    expect(dryRun.status).toBe(404);
    expect(dryRun.body.message).toContain('no workload web-1');
    const rebalance = await as(operator, 'POST', '/v1/rebalance?dryRun=true', {});
    expect([401, 403]).not.toContain(rebalance.status);
    // …reads the audit log, but cannot make tokens nor create workloads
    expect((await as(operator, 'GET', '/v1/audit?limit=5')).status).toBe(200);
    const noTokens = await as(operator, 'POST', '/v1/tokens', { name: 'mine', role: 'admin' });
    expect(noTokens.status).toBe(403);
    expect(noTokens.body.message).toBe('POST /v1/tokens needs the admin role; token "ops" has the operator role');
    expect((await as(operator, 'DELETE', '/v1/workloads/web-1')).status).toBe(403);
    const audited = await ferry(operator, ['audit', '--limit', '20', '-o', 'json']);
    expect(audited.exitCode, audited.stderr).toBe(0);
    const page = JSON.parse(audited.stdout) as AuditResponse;
    expect(page.entries[0]).toMatchObject({ who: 'ops', method: 'DELETE', path: '/v1/workloads/web-1', status: 403 });
    // refused before its body was read: no target; the admin's creation names the token it made
    expect(page.entries.find((e) => e.path === '/v1/tokens' && e.who === 'ops')).toMatchObject({ role: 'operator', status: 403, target: null });
    expect(page.entries.find((e) => e.path === '/v1/tokens' && e.status === 201)).toMatchObject({ who: 'bootstrap', role: 'admin', target: { kind: 'token', id: 'ops' } });

    // the list: names, roles, when made and last used; never a token
    const list = await ferry(t.cluster.token, ['tokens', 'list', '-o', 'json']);
    expect(list.exitCode, list.stderr).toBe(0);
    const tokens = (JSON.parse(list.stdout) as TokenListResponse).tokens;
    expect(tokens.map((x) => [x.name, x.role, x.builtIn])).toEqual([
      ['bootstrap', 'admin', true],
      ['ops', 'operator', false],
      ['ro', 'viewer', false],
    ]);
    expect(tokens.find((x) => x.name === 'ro')!.lastUsedAt).toBeGreaterThan(0);
    const table = await ferry(t.cluster.token, ['tokens']);
    expect(table.stdout).toMatch(/^NAME\s+ROLE\s+CREATED\s+LAST USED/);
    for (const secret of [viewer, operator, t.cluster.token]) {
      expect(list.stdout).not.toContain(secret);
      expect(table.stdout).not.toContain(secret);
    }

    // Redis holds the hashes, never a token
    const keys = redisKeys(t.cluster.keyPrefix);
    const stored: string[] = [];
    for (const key of await redis.keys(`${keys.tokens}*`)) stored.push(key, ...Object.entries(await redis.hgetall(key)).flat());
    stored.push(JSON.stringify(await redis.xrange(keys.audit, '-', '+')));
    expect(stored.join('\n')).toContain(hashToken(viewer));
    for (const secret of [viewer, operator, t.cluster.token, viewer.slice(6, 20), operator.slice(6, 20)]) expect(stored.join('\n')).not.toContain(secret);

    // revoked: refused at once (401), audited as an invalid token
    const revoked = await ferry(t.cluster.token, ['tokens', 'revoke', 'ro']);
    expect(revoked.exitCode, revoked.stderr).toBe(0);
    expect((await as(viewer, 'GET', '/v1/workloads')).status).toBe(401);
    expect((await as(viewer, 'POST', '/v1/workloads/web-1/stop')).status).toBe(401);
    expect((await ferry(t.cluster.token, ['tokens', 'revoke', 'ro'])).exitCode).toBe(4);
    expect((await ferry(t.cluster.token, ['tokens', 'revoke', 'bootstrap'])).exitCode).toBe(5);
    expect(await redis.hget(keys.tokens, hashToken(viewer))).toBeNull();
    expect((await as(undefined, 'POST', '/v1/rebalance')).status).toBe(401);
    const newest = (await auditLog('?limit=3')).entries;
    expect(newest.map((e) => [e.who, e.method, e.path, e.status])).toEqual([
      ['anonymous', 'POST', '/v1/rebalance', 401],
      ['bootstrap', 'DELETE', '/v1/tokens/bootstrap', 409],
      ['bootstrap', 'DELETE', '/v1/tokens/ro', 404],
    ]);
    const invalid = (await auditLog('?limit=10')).entries.find((e) => e.path === '/v1/workloads/web-1/stop');
    expect(invalid).toMatchObject({ who: 'invalid token', role: null, status: 401 });

    // open without a token: health, metrics, the API reference, the dashboard
    for (const path of ['/healthz', '/metrics', '/v1/openapi.json', '/docs', '/ui/', '/ui/app.js']) expect((await fetch(`${t.cluster.apiUrl}${path}`)).status, path).toBe(200);
    const doc = (await as(undefined, 'GET', '/v1/openapi.json')).body;
    expect(doc.paths['/v1/tokens'].post['x-ferry-role']).toBe('admin');
    expect(doc.paths['/v1/workloads/{id}/migrate'].post['x-ferry-role']).toBe('operator');
  });

  it('pages the audit log newest first', async () => {
    const all: AuditEntry[] = [];
    let before = '';
    for (;;) {
      const page = await auditLog(`?limit=4${before ? `&before=${before}` : ''}`);
      all.push(...page.entries);
      if (!page.next) break;
      before = page.next;
    }
    const once = (await auditLog('?limit=1000')).entries;
    expect(all.map((e) => e.id)).toEqual(once.map((e) => e.id));
    expect(all.length).toBeGreaterThan(10);
    const ats = all.map((e) => e.at);
    expect(ats).toEqual([...ats].sort((a, b) => b - a));
    expect((await as(t.cluster.token, 'GET', '/v1/audit?limit=0')).status).toBe(400);
    expect((await as(t.cluster.token, 'GET', '/v1/audit?before=yesterday')).status).toBe(400);
  });
});
