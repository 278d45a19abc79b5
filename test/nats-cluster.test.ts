import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { connect } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostListResponse, WorkloadSpecInput } from '@ferry/protocol';
import { freePort, natsConnectOptions } from '@ferry/runtime';
import { issueCertificate, natsNodePaths, renderNatsServerConfig } from '@ferry/security';
import { eventually } from './helpers/cluster.ts';
import { refusedConnect } from './helpers/nats.ts';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { expectTimersFire, labApi, labWorkload } from './helpers/workload.ts';

const HOSTS = ['h1', 'h2', 'h3'];
/** how long a killed NATS node stays down before the supervisor starts it again (the outage watched) */
const OUTAGE_MS = 8_000;
const LEASE_MS = 3_000;

/**
 * A NATS cluster of three (issue 13): every agent, scheduler and the API know all three nodes
 * and carry on through the one they are on dying (kill -9), each node in turn — reports and
 * lease acknowledgements keep flowing, workload operations work, nothing is fenced — and the
 * supervisor's restart brings the cluster back to three. Admitting and revoking a host reaches
 * every node, and only a NATS node's route certificate can open a route.
 */
describe.skipIf(skipLab())('a three-node NATS cluster: one node dies, the cluster carries on', () => {
  let t: LabCluster;
  const { api, get, running, expectUndisturbed } = labApi(() => t);
  const spec = (id: string, address: string, ha = true): WorkloadSpecInput => labWorkload(id, address, { ha: { enabled: ha, priority: 5 } });
  let since = 0;

  beforeAll(async () => {
    t = await startLabCluster(
      HOSTS,
      [PROD],
      { FERRY_SUSPECT_AFTER_MS: '1500', FERRY_LEASE_MS: String(LEASE_MS), FERRY_DOWN_AFTER_MS: '4500' },
      {},
      { natsNodes: 3, natsRestart: { policy: 'on-failure', minBackoffMs: OUTAGE_MS, maxBackoffMs: OUTAGE_MS } },
    );
    since = Date.now();
    await running(spec('nc-a', '10.77.0.181'));
    await running(spec('nc-b', '10.77.0.182'));
  }, 180_000);

  afterAll(async () => {
    await t?.close();
  });

  const node = (name: string) => t.cluster.natsServers.find((n) => n.name === name)!;

  it('runs three nodes routed to each other, and every service is given all three', async () => {
    expect(t.cluster.natsServers.map((n) => n.name)).toEqual(['nats-1', 'nats-2', 'nats-3']);
    const urls = t.cluster.natsServers.map((n) => n.url);
    expect(t.cluster.natsUrl).toBe(urls.join(','));
    const views = await t.cluster.natsClusterView();
    for (const n of t.cluster.natsServers) expect(views.get(n.name), n.name).toEqual(urls.map((u) => new URL(u).host).sort());
    // the agents' config files (a lab host's, like an installed one's) and the services' environment
    for (const host of t.lab.hosts) expect(JSON.parse(readFileSync(host.agentConfigFile, 'utf8')).natsUrl).toBe(t.cluster.natsUrl);
    for (const name of ['scheduler', 'api']) {
      const p = t.cluster.supervisor.list().find((x) => x.name === name && !x.exited)!;
      const environ = readFileSync(`/proc/${p.pid}/environ`, 'utf8').split('\0');
      expect(environ).toContain(`FERRY_NATS_URL=${t.cluster.natsUrl}`);
    }
    // each node its own configuration, pid file and log; one authorization file for all
    const dir = t.cluster.secrets.dir;
    expect(t.cluster.secrets.natsNodes()).toEqual(['nats-1', 'nats-2', 'nats-3']);
    for (const n of ['nats-1', 'nats-2', 'nats-3']) {
      const paths = natsNodePaths(dir, n);
      expect(readFileSync(paths.config, 'utf8')).toContain('include "nats-authorization.conf"');
      expect(Number(readFileSync(paths.pid, 'utf8'))).toBe(node(n).process.pid);
      expect(statSync(paths.log).size).toBeGreaterThan(0);
    }
  });

  it('kill -9 of each node in turn: hosts stay up, reports and lease acknowledgements keep flowing, operations work, nothing fenced; the node comes back', async () => {
    const operations: Array<(n: string) => Promise<void>> = [
      async () => {
        // stop and start an HA workload: a new process, seen in its host's report
        const before = (await get('nc-a')).observed!.pid;
        expect((await api('POST', '/v1/workloads/nc-a/stop')).status).toBe(202);
        await eventually(
          'nc-a stopped',
          async () => {
            const w = await get('nc-a');
            return w.phase === 'stopped' && w.observed?.state !== 'running';
          },
          30_000,
        );
        expect((await api('POST', '/v1/workloads/nc-a/start')).status).toBe(202);
        await eventually(
          'nc-a running again',
          async () => {
            const w = await get('nc-a');
            return w.phase === 'running' && w.observed?.state === 'running' && w.observed.pid !== before;
          },
          30_000,
        );
      },
      async () => {
        // create a workload
        const res = await api('POST', '/v1/workloads', spec('nc-c', '10.77.0.183', false));
        expect(res.status, JSON.stringify(res.body)).toBe(202);
        await eventually('nc-c running', async () => (await get('nc-c')).observed?.state === 'running', 30_000);
      },
      async () => {
        // a live migration
        const w = await get('nc-b');
        const to = HOSTS.find((h) => h !== w.hostId)!;
        const res = await api('POST', '/v1/workloads/nc-b/migrate', { destination: to });
        expect(res.status, JSON.stringify(res.body)).toBe(202);
        const id = (res.body as { migration: { id: string } }).migration.id;
        const m = await eventually(
          `migration ${id} ended`,
          async () => {
            const r = await t.cluster.get<{ state: string; rollbackReason?: string }>(`/v1/migrations/${id}`);
            return ['completed', 'rolled-back', 'failed'].includes(r.state) ? r : null;
          },
          60_000,
        );
        expect(m.state, JSON.stringify(m)).toBe('completed');
        expect((await get('nc-b')).hostId).toBe(to);
      },
    ];
    const figures: string[] = [];
    for (const [i, name] of ['nats-1', 'nats-2', 'nats-3'].entries()) {
      const n = node(name);
      const pid = n.process.pid;
      const restarts = n.process.restarts;
      // watch every host's report age and every agent's lease while the node is down
      let maxReportAgeMs = 0;
      let minLeaseMs = Infinity;
      let watching = true;
      const watch = (async () => {
        while (watching) {
          const list = await t.cluster.get<HostListResponse>('/v1/hosts').catch(() => null);
          for (const h of list?.hosts ?? []) maxReportAgeMs = Math.max(maxReportAgeMs, h.lastReportAgeMs);
          for (const h of t.lab.hosts) {
            const text = await fetch(`http://${h.address}:9465/metrics`, { signal: AbortSignal.timeout(1_000) })
              .then((r) => r.text())
              .catch(() => '');
            const lease = /^ferry_agent_lease_remaining_seconds(?:\{[^}]*\})? (\S+)$/m.exec(text);
            if (lease) minLeaseMs = Math.min(minLeaseMs, Number(lease[1]) * 1000);
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const killedAt = Date.now();
      process.kill(pid, 'SIGKILL');
      await eventually(`${name} dead`, async () => n.process.exited, 5_000, 20);
      await operations[i]!(name);
      const operationMs = Date.now() - killedAt;
      const wasDown = n.process.restarts === restarts; // the operation finished within the outage
      await eventually(`${name} restarted`, async () => n.process.restarts === restarts + 1 && !n.process.exited, OUTAGE_MS + 15_000);
      await t.cluster.waitForNatsCluster(20_000);
      const rejoinedMs = Date.now() - killedAt;
      watching = false;
      await watch;
      figures.push(
        `${name}: killed; operation ${operationMs} ms (${wasDown ? 'within' : 'past'} the outage), max report age ${maxReportAgeMs} ms, min lease left ${Math.round(minLeaseMs)} ms, back with 3 nodes after ${rejoinedMs} ms`,
      );
      expect(n.process.pid).not.toBe(pid);
      expect(maxReportAgeMs, `${name}: a host's reports stopped`).toBeLessThan(1_500);
      expect(Number.isFinite(minLeaseMs), "the agents' lease metric was read").toBe(true);
      expect(minLeaseMs, `${name}: a lease ran low (acknowledgements stopped)`).toBeGreaterThan(LEASE_MS / 2);
      const list = await t.cluster.get<HostListResponse>('/v1/hosts');
      expect(list.hosts.filter((h) => HOSTS.includes(h.id)).map((h) => h.state)).toEqual(['up', 'up', 'up']);
    }
    console.log(figures.join('\n'));
    // nothing fenced, restarted or declared suspect/down since the cluster started
    await expectUndisturbed(HOSTS, since);
    for (const id of ['nc-a', 'nc-b', 'nc-c']) {
      const w = await get(id);
      expect(w.observed?.state, id).toBe('running');
      await expectTimersFire(
        t.lab,
        HOSTS.find((h) => h !== w.hostId)!,
        w.spec.networks[0]!.address,
      );
    }
  }, 300_000);

  it('admits a host on every node, and revokes it on every node; a node that was down learns it when it starts', async () => {
    await t.cluster.admitHost('h9');
    for (const n of t.cluster.natsServers) {
      const nc = await connect({ ...natsConnectOptions(t.cluster.secrets.clientSettings('agent-h9', n.url)), reconnect: false });
      expect(nc.getServer(), n.name).toBe(new URL(n.url).host);
      await nc.close();
    }
    // its credentials as the host holds them (revocation removes the control plane's copies)
    const settings = t.cluster.secrets.clientSettings('agent-h9', t.cluster.natsUrl);
    const kept = mkdtempSync(join(tmpdir(), 'ferry-revoked-'));
    const copy = (file: string) => {
      const to = join(kept, basename(file));
      copyFileSync(file, to);
      return to;
    };
    const old = { ...settings, seedFile: copy(settings.seedFile), certFile: copy(settings.certFile), keyFile: copy(settings.keyFile) };
    await t.cluster.revokeHost('h9');
    for (const n of t.cluster.natsServers) expect(await refusedConnect(natsConnectOptions({ ...old, url: n.url })), n.name).toBe('AUTHORIZATION_VIOLATION');
    rmSync(kept, { recursive: true, force: true });

    // admitted while nats-2 is down: the reload skips it, and it starts with the new file
    const n2 = node('nats-2');
    const restarts = n2.process.restarts;
    process.kill(n2.process.pid, 'SIGKILL');
    await eventually('nats-2 dead', async () => n2.process.exited, 5_000, 20);
    const t0 = Date.now();
    await t.cluster.admitHost('h8');
    const admitMs = Date.now() - t0;
    expect(n2.process.restarts, 'admitted while nats-2 was down').toBe(restarts);
    await eventually('nats-2 restarted', async () => n2.process.restarts === restarts + 1 && !n2.process.exited, OUTAGE_MS + 15_000);
    await t.cluster.waitForNatsCluster(20_000);
    for (const n of t.cluster.natsServers) {
      const nc = await connect({ ...natsConnectOptions(t.cluster.secrets.clientSettings('agent-h8', n.url)), reconnect: false });
      await nc.close();
    }
    console.log(`admitting a host with one of three nodes down took ${admitMs} ms`);
  }, 120_000);

  it("lets no route in but a NATS node's: a server with another certificate of the cluster CA is refused", async () => {
    const dir = t.cluster.secrets.dir;
    // what a host that joined holds: a certificate of the cluster CA with serverAuth and clientAuth
    const rogueTls = await issueCertificate(t.cluster.secrets.ca, dir, 'agent-rogue', { ips: [t.lab.gateway], dns: [] }, ['serverAuth', 'clientAuth']);
    const [port, routePort] = [await freePort(t.lab.gateway), await freePort(t.lab.gateway)];
    const text = renderNatsServerConfig({
      host: t.lab.gateway,
      port: port!,
      tls: { ...t.cluster.secrets.natsTls, ca: t.cluster.secrets.ca.cert },
      authorizationFile: t.cluster.secrets.paths.natsAuthorization,
      pidFile: join(dir, 'rogue.pid'),
      logFile: join(dir, 'rogue.log'),
      serverName: 'rogue',
      cluster: { name: 'ferry', host: t.lab.gateway, port: routePort!, routes: t.cluster.natsServers.map((n) => n.routeAddress!), tls: { ...rogueTls, ca: t.cluster.secrets.ca.cert } },
    });
    writeFileSync(join(dir, 'rogue.conf'), text, { mode: 0o600 });
    const logs = t.cluster.natsServers.map((n) => natsNodePaths(dir, n.name).log);
    const offsets = logs.map((l) => statSync(l).size);
    const rogue = t.cluster.supervisor.spawn('nats-rogue', 'nats-server', ['-c', join(dir, 'rogue.conf')]);
    try {
      await eventually(
        'every node refused the rogue route',
        async () => logs.every((l, i) => readFileSync(l, 'utf8').slice(offsets[i]).includes('Router connection closed: Authentication Failure')),
        15_000,
      );
      const views = await t.cluster.natsClusterView();
      for (const n of t.cluster.natsServers) expect(views.get(n.name), n.name).toHaveLength(3);
      // nothing published on the rogue reaches the cluster: it has no route (it lists no other node)
      const nc = await connect({ ...natsConnectOptions(t.cluster.secrets.clientSettings('probe', `nats://${t.lab.gateway}:${port}`)), reconnect: false });
      expect(nc.info?.connect_urls ?? []).not.toEqual(expect.arrayContaining(t.cluster.natsServers.map((n) => new URL(n.url).host)));
      await nc.close();
      expect(readFileSync(join(dir, 'rogue.log'), 'utf8')).toMatch(/Authorization Violation/);
    } finally {
      await t.cluster.supervisor.stop(rogue, 2_000);
      for (const f of ['rogue.conf', 'rogue.pid', 'agent-rogue.crt', 'agent-rogue.key']) if (existsSync(join(dir, f))) rmSync(join(dir, f));
    }
  }, 60_000);
});
