import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { ManagedProcess } from '@ferry/deploy';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, serviceEntry } from '@ferry/deploy';
import { redisKeys, type AuditResponse, type HostView, type JoinTokenCreated, type JoinTokenListResponse } from '@ferry/protocol';
import { natsConnectOptions, type NatsClientSettings } from '@ferry/runtime';
import { eventually, http, startTestCluster, type TestCluster } from './helpers/cluster.ts';
import { refusedConnect } from './helpers/nats.ts';

/** `ferry-agent join` as an operator runs it (from source here; the install test runs the package's) */
const agentJoin = (args: string[]) => execa(process.execPath, ['--import', 'tsx', serviceEntry('agent'), 'join', ...args], { cwd: repoRoot, reject: false });

describe('hosts join with a one-time token and leave with their identity revoked', () => {
  let t: TestCluster;
  let work: string;
  let h9Agent: ManagedProcess;
  /** token null: no Authorization header */
  const api = (method: string, path: string, body?: unknown, token: string | null = t.cluster.token) => http(`${t.cluster.apiUrl}${path}`, { token: token ?? undefined, method, body });
  const newToken = async (ttlSeconds?: number) => {
    const res = await api('POST', '/v1/join-tokens', ttlSeconds === undefined ? {} : { ttlSeconds });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as JoinTokenCreated;
  };
  /** a host's directory: its agent config (pools, data) written before it joins, as an operator would */
  const hostDir = (hostId: string) => {
    const dir = join(work, hostId);
    mkdirSync(join(dir, 'pool'), { recursive: true });
    writeFileSync(
      join(dir, 'agent.json'),
      JSON.stringify({ hostId, dataDir: join(dir, 'data'), pools: [{ id: 'local', path: join(dir, 'pool') }], metricsPort: 0, cgroupParent: `/ferry-join-test/${hostId}` }),
    );
    return { config: join(dir, 'agent.json'), secrets: join(dir, 'secrets') };
  };

  beforeAll(async () => {
    // short liveness thresholds: the last test waits for its one host to be declared down (with no
    // other host heard, that takes four down-after periods: docs/failover.md)
    t = await startTestCluster({ schedulerEnv: { FERRY_SUSPECT_AFTER_MS: '1000', FERRY_LEASE_MS: '2000', FERRY_DOWN_AFTER_MS: '3000' } });
    work = mkdtempSync(join(tmpdir(), 'ferry-join-'));
  });

  afterAll(async () => {
    await t?.close();
    if (work) rmSync(work, { recursive: true, force: true });
    for (const dir of ['/sys/fs/cgroup/ferry-join-test/h9', '/sys/fs/cgroup/ferry-join-test']) if (existsSync(dir)) rmdirSync(dir);
  });

  it('a new host joins, gets its own identity and certificate, and its agent reports', async () => {
    const created = await newToken();
    const h9 = hostDir('h9');
    const run = await agentJoin([t.cluster.apiUrl, created.token, '--host-id', 'h9', '--config', h9.config, '--secrets-dir', h9.secrets]);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain('joined as host h9 (NATS identity agent-h9');
    // the seed and key were made on the host and never left it: the control plane has only the public key
    expect(statSync(join(h9.secrets, 'nats.nk')).mode & 0o777).toBe(0o600);
    expect(statSync(join(h9.secrets, 'host.key')).mode & 0o777).toBe(0o600);
    expect(statSync(h9.secrets).mode & 0o777).toBe(0o700);
    expect(existsSync(join(t.cluster.secrets.paths.identities, 'agent-h9.nk'))).toBe(false);
    expect(t.cluster.secrets.has('agent-h9')).toBe(true);
    const cert = await execa('openssl', ['x509', '-in', join(h9.secrets, 'host.crt'), '-noout', '-subject', '-issuer']);
    expect(cert.stdout).toMatch(/subject=CN ?= ?agent-h9/);
    expect(cert.stdout).toMatch(/issuer=CN ?= ?Ferry cluster CA/);
    // the config kept what the operator wrote and gained the NATS identity
    const config = JSON.parse(readFileSync(h9.config, 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ hostId: 'h9', natsIdentity: 'agent-h9', natsUrl: t.cluster.natsUrl, pools: [{ id: 'local' }] });

    h9Agent = t.cluster.spawnService('agent-h9', 'agent', {}, ['--config', h9.config]);
    await eventually('h9 up', async () => (await api('GET', '/v1/hosts/h9')).body?.state === 'up', 30_000);

    // the token was used once; listed as used, by h9
    const list = (await api('GET', '/v1/join-tokens')).body as JoinTokenListResponse;
    expect(list.joinTokens.find((j) => j.id === created.id)).toMatchObject({ state: 'used', used: { hostId: 'h9' } });
    expect(JSON.stringify(list)).not.toContain(created.token.split('.')[1]);
    const audit = (await api('GET', '/v1/audit?limit=20')).body as AuditResponse;
    expect(audit.entries.find((e) => e.path === '/v1/join')).toMatchObject({ who: `join token ${created.id}`, status: 201, target: { kind: 'host', id: 'h9' } });
  }, 90_000);

  it('refuses a used, an expired, a revoked and a made-up token, and a made-up host without one — admitting nothing', async () => {
    const used = (await api('GET', '/v1/join-tokens')).body.joinTokens[0] as { id: string };
    const h10 = hostDir('h10');
    const attempt = (token: string) => agentJoin([t.cluster.apiUrl, token, '--host-id', 'h10', '--config', h10.config, '--secrets-dir', h10.secrets]);

    // used: the first test's token again
    const again = await newToken();
    const usedToken = `${used.id}.${again.token.split('.')[1]}.${again.token.split('.')[2]}`; // right id, wrong secret: unknown
    const unknown = await attempt(usedToken);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toContain('401: unknown join token');

    // a token used once cannot be used twice, even by the same host
    const once = await newToken();
    expect((await attempt(once.token)).exitCode).toBe(0);
    rmSync(h10.secrets, { recursive: true, force: true });
    // the same host id cannot join twice (409, before any token is used)
    const fresh = await newToken();
    const dup = await attempt(fresh.token);
    expect(dup.exitCode).toBe(1);
    expect(dup.stderr).toContain('409: host h10 has a NATS identity already');
    expect((await api('GET', '/v1/join-tokens')).body.joinTokens.find((j: { id: string }) => j.id === fresh.id).state).toBe('valid');

    // the raw API: a used token (by another host id) and an expired one
    const body = (token: string, hostId: string) => ({ token, hostId, publicKey: 'U' + 'A'.repeat(55), csr: readFileSync(join(repoRoot, 'test', 'fixtures', 'join.csr'), 'utf8') });
    const usedAgain = await api('POST', '/v1/join', body(once.token, 'h11'), null);
    expect(usedAgain.status).toBe(401);
    expect(usedAgain.body.message).toMatch(/join token [0-9a-f]{12} was used already \(by host h10 at /);
    const expiring = await newToken(60);
    const admin = t.cluster.redisAdmin();
    const key = redisKeys(t.cluster.keyPrefix).joinTokens;
    const record = JSON.parse((await admin.hget(key, expiring.id))!) as { expiresAt: number };
    await admin.hset(key, expiring.id, JSON.stringify({ ...record, expiresAt: Date.now() - 1 })); // its hour is over
    admin.disconnect();
    const expired = await api('POST', '/v1/join', body(expiring.token, 'h11'), null);
    expect(expired.status).toBe(401);
    expect(expired.body.message).toContain('has expired');
    // revoked
    const revoked = await newToken();
    expect((await api('DELETE', `/v1/join-tokens/${revoked.id}`)).status).toBe(200);
    expect((await api('POST', '/v1/join', body(revoked.token, 'h11'), null)).status).toBe(401);
    // a made-up host with no token at all, or a malformed one
    const none = await api('POST', '/v1/join', { hostId: 'h11', publicKey: 'U' + 'A'.repeat(55), csr: 'x'.repeat(200) }, null);
    expect(none.status).toBe(400);
    expect(none.body.message).toContain('token');
    expect(t.cluster.secrets.has('agent-h11')).toBe(false);
    // refused attempts are in the audit log
    const audit = (await api('GET', '/v1/audit?limit=50')).body as AuditResponse;
    expect(audit.entries.filter((e) => e.path === '/v1/join' && e.status === 401).length).toBeGreaterThanOrEqual(3);
  }, 90_000);

  it('refuses a control plane whose CA is not the one the token was made by', async () => {
    const created = await newToken();
    const [id, secret] = created.token.split('.');
    const otherPin = 'A'.repeat(43);
    const h12 = hostDir('h12');
    const run = await agentJoin([t.cluster.apiUrl, `${id}.${secret}.${otherPin}`, '--host-id', 'h12', '--config', h12.config, '--secrets-dir', h12.secrets]);
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toContain('holds another CA than the one this token was made by');
    expect(existsSync(h12.secrets)).toBe(false);
    // the token was not even presented: still valid
    expect((await api('GET', '/v1/join-tokens')).body.joinTokens.find((j: { id: string }) => j.id === created.id).state).toBe('valid');
  });

  it('only an admin makes join tokens', async () => {
    const viewer = (await api('POST', '/v1/tokens', { name: 'watcher', role: 'viewer' })).body.token as string;
    const refused = await api('POST', '/v1/join-tokens', {}, viewer);
    expect(refused.status).toBe(403);
    expect((await api('POST', '/v1/join-tokens', {}, null)).status).toBe(401);
    expect((await api('POST', '/v1/join-tokens', { ttlSeconds: 10 })).status).toBe(400);
  });

  it('removing a host revokes its identity at once: its agent is cut off and its credentials stop working', async () => {
    const dir = join(work, 'h9', 'secrets');
    const kept = mkdtempSync(join(tmpdir(), 'ferry-kept-'));
    for (const f of ['nats.nk', 'host.crt', 'host.key', 'ca.crt']) copyFileSync(join(dir, f), join(kept, basename(f)));
    const settings: NatsClientSettings = {
      url: t.cluster.natsUrl,
      identity: 'agent-h9',
      seedFile: join(kept, 'nats.nk'),
      caFile: join(kept, 'ca.crt'),
      certFile: join(kept, 'host.crt'),
      keyFile: join(kept, 'host.key'),
    };
    expect(await refusedConnect(natsConnectOptions(settings))).toBe('connected');
    // a host is removed once it is down
    await t.cluster.supervisor.stop(h9Agent);
    await eventually('h9 down', async () => ((await api('GET', '/v1/hosts/h9')).body as HostView).state === 'down', 60_000);
    const removed = await api('DELETE', '/v1/hosts/h9');
    expect(removed.status, JSON.stringify(removed.body)).toBe(200);
    expect(removed.body.identityRevoked).toBe(true);
    expect(t.cluster.secrets.has('agent-h9')).toBe(false);
    expect(await refusedConnect(natsConnectOptions(settings))).toBe('AUTHORIZATION_VIOLATION');
    rmSync(kept, { recursive: true, force: true });
  }, 90_000);
});
