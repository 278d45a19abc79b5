import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { repoRoot } from '@ferry/deploy';
import type { HostView, MigrationRecord, PlanRecord, WorkloadSpecInput, WorkloadView } from '@ferry/protocol';
import { eventually, http } from './helpers/cluster.ts';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { expectTimersFire } from './helpers/workload.ts';

const spec = (id: string, address: string, extra: Partial<WorkloadSpecInput> = {}): WorkloadSpecInput => ({
  id,
  template: 'busybox',
  command: ['/usr/bin/ferry-workload', '--mem', '16', '--dirty', '1', '--port', '7000'],
  resources: { vcpus: 0.25, memoryMiB: 64, diskMiB: 64 },
  networks: [{ network: PROD.name, address }],
  pool: 'local',
  ...extra,
});

describe.skipIf(skipLab())('planning on a lab: compatibility, maintenance, rebalancing, plans', () => {
  let t: LabCluster;

  beforeAll(async () => {
    // one migration at a time into any host: the drain below must queue its moves
    t = await startLabCluster(['h1', 'h2', 'h3'], [PROD], { FERRY_MIGRATIONS_PER_DESTINATION: '1' });
  });

  afterAll(async () => {
    await t?.close();
  });

  const api = (method: string, path: string, body?: unknown) => http(`${t.cluster.apiUrl}${path}`, { token: t.cluster.token, method, body });
  const get = (id: string) => t.cluster.get<WorkloadView>(`/v1/workloads/${id}`);
  const talk = async (fromHost: string, address: string, line: string) => (await t.lab.exec(fromHost, 'busybox', ['nc', '-w', '3', address, '7000'], { input: `${line}\nquit\n` })).stdout.trim();
  const running = (id: string) =>
    eventually(
      `${id} running`,
      async () => {
        const w = await get(id);
        if (w.phase === 'failed') throw new Error(w.error?.message);
        return w.phase === 'running' && w.observed?.state === 'running' ? w : null;
      },
      30_000,
    );
  const maintenance = async (host: string) => (await t.cluster.get<HostView>(`/v1/hosts/${host}`)).maintenance;

  it('drains a host of its 4 containers live: each keeps running, elsewhere, state intact', async () => {
    // Keep h2 and h3 out of placement while the four land on h1.
    for (const h of ['h2', 'h3']) {
      const res = await api('POST', `/v1/hosts/${h}/maintenance`, { reason: 'setting up the test' });
      expect(res.status).toBe(200); // nothing on them: in maintenance at once
      expect(res.body.maintenance.state).toBe('in');
    }
    for (let i = 1; i <= 4; i++) await api('POST', '/v1/workloads', spec(`d${i}`, `10.77.0.${70 + i}`, { ha: { enabled: i <= 2, priority: i } }));
    for (let i = 1; i <= 4; i++) expect((await running(`d${i}`)).hostId).toBe('h1');
    for (let i = 1; i <= 4; i++) for (let k = 0; k < i; k++) await talk('h1', `10.77.0.${70 + i}`, 'inc');
    for (const h of ['h2', 'h3']) expect((await api('DELETE', `/v1/hosts/${h}/maintenance`)).status).toBe(200);

    // the dry run first: the plan it would run, and nothing changes (no record, no plan stored, h1 still placeable)
    const plansBefore = (await api('GET', '/v1/plans')).body.plans.length as number;
    const preview = await api('POST', '/v1/hosts/h1/maintenance?dryRun=true', {});
    expect(preview.status, JSON.stringify(preview.body)).toBe(200);
    expect(preview.body).toMatchObject({ dryRun: true, hostId: 'h1', plan: { kind: 'evacuate', state: 'planned' } });
    expect(preview.body.plan.moves.map((m: { workload: string }) => m.workload).sort()).toEqual(['d1', 'd2', 'd3', 'd4']);
    expect(preview.body.plan.moves.every((m: { from: string; to: string }) => m.from === 'h1' && m.to !== 'h1')).toBe(true);
    expect(await maintenance('h1')).toBeNull();
    expect((await api('GET', '/v1/plans')).body.plans.length).toBe(plansBefore);
    expect((await api('GET', '/v1/compat?workload=d3&host=h1')).body.reasons.map((r: { code: string }) => r.code)).not.toContain('HOST_IN_MAINTENANCE');
    expect((await api('POST', '/v1/hosts/h1/maintenance?dryRun=maybe', {})).status).toBe(400);

    const res = await api('POST', '/v1/hosts/h1/maintenance', { reason: 'kernel update' });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.maintenance).toMatchObject({ state: 'entering', reason: 'kernel update' });
    const planId = res.body.plan.id as string;
    expect(res.body.plan.moves.map((m: { workload: string }) => m.workload).slice(0, 2)).toEqual(['d2', 'd1']); // HA first, by priority
    // out of placement at once
    const compat = await api('GET', '/v1/compat?workload=d3&host=h1');
    expect(compat.body.reasons.map((r: { code: string }) => r.code)).toContain('HOST_IN_MAINTENANCE');

    const plan = await eventually(
      'the evacuation to finish',
      async () => {
        const p = (await api('GET', `/v1/plans/${planId}`)).body as PlanRecord;
        return ['completed', 'failed', 'cancelled'].includes(p.state) ? p : null;
      },
      120_000,
    );
    expect(plan.state).toBe('completed');
    expect(plan.moves.every((m) => m.status === 'completed')).toBe(true);
    expect((await maintenance('h1'))?.state).toBe('in');
    for (let i = 1; i <= 4; i++) {
      const w = await get(`d${i}`);
      expect(w).toMatchObject({ phase: 'running', epoch: 2 });
      expect(['h2', 'h3']).toContain(w.hostId);
      expect(await talk('h1', `10.77.0.${70 + i}`, 'get')).toBe(String(i)); // counter survived
      await expectTimersFire(t.lab, 'h1', `10.77.0.${70 + i}`); // and its timers still fire
    }
    const h1 = await t.cluster.get<HostView>('/v1/hosts/h1');
    expect(h1.capacity.containers.filter((c) => c.state === 'running')).toEqual([]);

    // at most one migration at a time into each destination: their intervals never overlap
    const migrations = await Promise.all(plan.moves.map(async (m) => (await api('GET', `/v1/migrations/${m.migrationId}`)).body as MigrationRecord));
    for (const dest of ['h2', 'h3']) {
      const spans = migrations
        .filter((m) => m.destination === dest)
        .map((m) => [m.timeline[0]!.startedAt, m.finishedAt!] as const)
        .sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
    }

    expect((await api('DELETE', '/v1/hosts/h1/maintenance')).status).toBe(200);
    expect(await maintenance('h1')).toBeNull();
  });

  it('refuses an evacuation the rest cannot take, with reasons, and moves nothing', async () => {
    await api('POST', '/v1/workloads', spec('stuck', '10.77.0.79', { placement: { hosts: ['h2'] } }));
    await running('stuck');
    const before = (await t.cluster.get<{ migrations: unknown[] }>('/v1/migrations')).migrations.length;
    const res = await api('POST', '/v1/hosts/h2/maintenance', {});
    expect(res.status).toBe(409);
    expect(res.body.details.unplaced).toEqual(expect.arrayContaining([expect.objectContaining({ workload: 'stuck', refused: expect.objectContaining({ NOT_ALLOWED: 2 }) })]));
    expect(await maintenance('h2')).toBeNull();
    expect((await t.cluster.get<{ migrations: unknown[] }>('/v1/migrations')).migrations.length).toBe(before);
    expect((await get('stuck')).hostId).toBe('h2');
  });

  it('explains compatibility with every reason', async () => {
    const res = await api('GET', '/v1/compat?workload=stuck&host=h3');
    expect(res.body).toMatchObject({ workload: 'stuck', host: 'h3', ok: false, reasons: [{ code: 'NOT_ALLOWED' }] });
    const same = await api('GET', '/v1/compat?workload=d1&host=' + (await get('d1')).hostId);
    expect(same.body.reasons.map((r: { code: string }) => r.code)).toContain('SAME_HOST');
    expect((await api('GET', '/v1/compat?workload=d1&host=h9')).status).toBe(404);
    expect((await api('GET', '/v1/compat?workload=nope&host=h1')).status).toBe(404);
  });

  it('rebalances by a plan: the dry run is what executes, and a stale plan is refused', async () => {
    // h1 is empty again; the rest is lopsided. The drained workloads just moved: a cooldown pins them.
    const cooled = (await api('POST', '/v1/rebalance?dryRun=true', { maxMoves: 3 })).body as PlanRecord;
    expect(cooled.moves.filter((m) => m.workload.startsWith('d'))).toEqual([]);
    const dry = await api('POST', '/v1/rebalance?dryRun=true', { maxMoves: 3, cooldownMinutes: 0 });
    expect(dry.status).toBe(200);
    const plan = dry.body as PlanRecord;
    expect(plan).toMatchObject({ kind: 'rebalance', state: 'planned' });
    expect(plan.scoreAfter!).toBeLessThanOrEqual(plan.scoreBefore!);
    expect(plan.moves.length).toBeGreaterThan(0);
    for (const m of plan.moves) expect(m.predicted.seconds).toBeGreaterThan(0);
    expect((await api('GET', '/v1/plans')).body.plans.map((p: PlanRecord) => p.id)).toContain(plan.id);

    const stale = (await api('POST', '/v1/rebalance?dryRun=true', { maxMoves: 3, cooldownMinutes: 0 })).body as PlanRecord;
    // the cluster changes: a workload stops
    await api('POST', '/v1/workloads/d4/stop');
    await eventually('d4 stopped', async () => (await get('d4')).phase === 'stopped');
    const refused = await api('POST', `/v1/plans/${stale.id}/execute`);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toContain('changed since this plan was computed');

    const fresh = (await api('POST', '/v1/rebalance?dryRun=true', { maxMoves: 3, cooldownMinutes: 0 })).body as PlanRecord;
    const executed = await api('POST', `/v1/plans/${fresh.id}/execute`);
    expect(executed.status).toBe(202);
    expect(executed.body.moves.map((m: { workload: string; to: string }) => [m.workload, m.to])).toEqual(fresh.moves.map((m) => [m.workload, m.to]));
    const done = await eventually(
      'the rebalance',
      async () => {
        const p = (await api('GET', `/v1/plans/${fresh.id}`)).body as PlanRecord;
        return ['completed', 'failed'].includes(p.state) ? p : null;
      },
      120_000,
    );
    expect(done.state).toBe('completed');
    for (const m of done.moves) expect((await get(m.workload)).hostId).toBe(m.to);
    expect((await api('POST', `/v1/plans/${fresh.id}/execute`)).status).toBe(409);
  });

  it('lists rolling maintenance groups and the cluster snapshot', async () => {
    const groups = await api('GET', '/v1/maintenance/groups');
    expect(groups.status).toBe(200);
    expect(groups.body.groups.flat().sort()).toEqual(expect.arrayContaining(['h1', 'h3']));
    // h2 holds a workload only h2 may run: it cannot be drained
    expect(groups.body.cannotDrain.map((c: { host: string }) => c.host)).toContain('h2');
    const snapshot = await api('GET', '/v1/cluster/snapshot');
    expect(snapshot.body).toMatchObject({ version: 1, revision: expect.any(String) });
    expect(snapshot.body.hosts).toHaveLength(3);
    // the same planners on the saved file, with no service involved, give the API's plan
    const file = join(t.stateDir, 'snapshot.json');
    writeFileSync(file, JSON.stringify(snapshot.body));
    const offline = await execa(join(repoRoot, 'packages', 'cli', 'bin', 'ferry'), ['plan', 'rebalance', '--snapshot', file, '--max-moves', '3', '-o', 'json'], { reject: false });
    expect(offline.exitCode, offline.stderr).toBe(0);
    const online = (await api('POST', '/v1/rebalance?dryRun=true', { maxMoves: 3, cooldownMinutes: 0 })).body as PlanRecord;
    const fromFile = JSON.parse(offline.stdout) as { moves: Array<{ workload: string; from: string; to: string }>; scoreBefore: number };
    expect(fromFile.moves.map((m) => [m.workload, m.from, m.to])).toEqual(online.moves.map((m) => [m.workload, m.from, m.to]));
    expect(fromFile.scoreBefore).toBeCloseTo(online.scoreBefore!, 9);
  });
});
