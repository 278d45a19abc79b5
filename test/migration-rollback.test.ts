import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { implementedStrategies, strategyDefinition } from '@ferry/core';
import { eventually } from './helpers/cluster.ts';
import { endTcpClient, startTcpClient } from './helpers/tcp-client.ts';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { expectTimersFire, labApi, labWorkload, talk as talkTo, workloadStats } from './helpers/workload.ts';

/** Every strategy the registry implements that freezes a running workload (cold never dumps). */
const LIVE = implementedStrategies()
  .filter((s) => s.live)
  .map((s) => s.name);

/**
 * A failure after the dump, for every live strategy the registry implements, on a local pool and
 * on the shared one: the destination's restore fails, and the workload must run on its source
 * again from wherever its pages are — a lazy checkpoint still holding it, its kept images, or
 * (page-server) the destination's images directory, pulled back before the destination is
 * cleaned — the same process, its memory, its timers and an open TCP connection intact, on
 * exactly one host, nothing of it left on the destination, and no HA reaction anywhere.
 */
describe.skipIf(skipLab())('rollback after the dump, every live strategy (real runc, CRIU, rsync)', () => {
  let t: LabCluster;

  beforeAll(async () => {
    t = await startLabCluster(['h1', 'h2'], [PROD]);
  });

  afterAll(async () => {
    await t?.close();
  });

  const { api, get, finished, running, expectUndisturbed } = labApi(() => t);
  const talk = (fromHost: string, address: string, line: string) => talkTo(t.lab, fromHost, address, line);
  const other = (host: string) => (host === 'h1' ? 'h2' : 'h1');
  const client = (fromHost: string, address: string) => startTcpClient(t.lab, fromHost, address);
  const endClient = endTcpClient;
  const containersOn = async (host: string, id: string) => {
    const h = await t.cluster.get<{ capacity: { containers: Array<{ id: string; state: string }> } }>(`/v1/hosts/${host}`);
    return h.capacity.containers.filter((c) => c.id === id).map((c) => c.state);
  };

  const cases = LIVE.flatMap((strategy, i) => (['local', 'shared'] as const).map((pool, j) => ({ strategy, pool, id: `rb-${strategy}-${pool}`, address: `10.77.0.${120 + i * 2 + j}` })));

  it.each(cases)('$strategy on the $pool pool: the restore fails after the dump, the workload runs on its source again, untouched', async ({ strategy, pool, id, address }) => {
    const since = Date.now();
    const { hostId } = await running(labWorkload(id, address, { pool, placement: { hosts: ['h1', 'h2'] } }));
    const source = hostId!;
    const destination = other(source);
    for (let i = 0; i < 3; i++) await talk(destination, address, 'inc');
    const before = await workloadStats(t.lab, destination, address);
    const conn = client(destination, address);
    await new Promise((resolve) => setTimeout(resolve, 500));

    // stale, unreadable runc state for this id on the destination: its restore cannot proceed
    const stale = join(t.lab.host(destination).dir, 'data', 'runc', id);
    await execa('mkdir', ['-p', stale]);
    await execa('sh', ['-c', 'echo garbage > "$1/state.json"', 'sh', stale]);
    try {
      const res = await api('POST', `/v1/workloads/${id}/migrate`, { destination, strategy });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      const done = await finished(res.body.migration.id, 120_000);
      expect(done, JSON.stringify(done.error)).toMatchObject({ state: 'rolled-back', strategy, error: { phase: 'restore' } });
      expect(done.completed).toEqual(expect.arrayContaining(['freeze', 'transfer']));
      // the source got ready, the destination's copy went, then the source ran the workload again
      expect(done.rollback?.steps).toEqual(['ready-source', 'abort-destination', 'resume-source']);
    } finally {
      await execa('rm', ['-rf', stale]);
    }

    const w = await eventually(`${id} back on ${source}`, async () => {
      const v = await get(id);
      return v.phase === 'running' && v.hostId === source && v.observed?.state === 'running' ? v : null;
    });
    expect(w).toMatchObject({ epoch: 1, migratingTo: null });
    await eventually(`${address} to answer`, async () => /^\d+$/.test(await talk(destination, address, 'get')), 30_000);

    // The TCP connection held across the freeze and the rollback: every reply one more than the
    // last. Where the registry says a rollback loses open connections (a lazy dump: CRIU leaves
    // its sockets in repair mode), the connection is lost — reset, or never answered again (the
    // client gives up after 15 s) — and nothing else may suffer.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const held = await endClient(conn);
    console.log(`${strategy} on ${pool}: client ${JSON.stringify(held)}`);
    expect(held.requests).toBeGreaterThan(0);
    const after = await workloadStats(t.lab, destination, address);
    // the same process, its memory as it was: the counter goes on from before plus the client's
    expect(after.pid).toBe(before.pid);
    if (strategyDefinition(strategy).rollbackKeepsConnections) {
      expect(held, JSON.stringify(held)).toMatchObject({ ok: true, error: null });
      expect(after.counter).toBe(3 + held.requests);
    } else {
      expect(held.error, JSON.stringify(held)).toMatch(/ECONNRESET|unanswered/);
      // the request the reset cut off may or may not have reached the workload
      expect(after.counter - 3 - held.requests).toBeGreaterThanOrEqual(0);
      expect(after.counter - 3 - held.requests).toBeLessThanOrEqual(1);
    }
    expect(JSON.parse(await talk(destination, address, 'verify'))).toMatchObject({ ok: true, bad: 0 });
    await expectTimersFire(t.lab, destination, address);

    // on exactly one host: the source runs it, the destination has nothing of it
    expect(await containersOn(source, id)).toEqual(['running']);
    expect(await containersOn(destination, id)).toEqual([]);
    const runc = await execa('runc', ['--root', join(t.lab.host(destination).dir, 'data', 'runc'), 'list', '-q']);
    expect(runc.stdout.split('\n')).not.toContain(id);
    expect(existsSync(join(t.lab.host(destination).dir, 'data', 'containers', id))).toBe(false);
    if (pool === 'local') {
      expect(existsSync(join(t.lab.host(destination).dir, 'pool', 'containers', id))).toBe(false);
      expect(readdirSync(join(t.lab.host(source).dir, 'pool', 'containers', id)).filter((f) => f.startsWith('ckpt-'))).toEqual([]);
    } else {
      // one directory for both hosts: no checkpoint images left in it, by either side
      expect(readdirSync(join(t.lab.sharedPool, 'containers', id)).filter((f) => f.startsWith('ckpt-'))).toEqual([]);
    }
    await expectUndisturbed(['h1', 'h2'], since);
  });
});
