import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { DEFAULT_PLACEMENT_POLICY } from '@ferry/core';
import { repoRoot } from '@ferry/deploy';
import type { HostView, MigrationRecord, PlanRecord, WorkloadSpecInput } from '@ferry/protocol';
import { eventually } from './helpers/cluster.ts';
import { InvariantChecker } from './helpers/invariants.ts';
import { skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { labApi, labWorkload } from './helpers/workload.ts';

/**
 * Issue 15 part 5: a plan whose last move needs the room its first moves free. h2 is full (X1-X3
 * and a small S, 80 % of a host's vCPUs); the Xs may only go to h3, the Ys (three on h1) only to
 * h2: the rebalance moves two Xs off h2, then a Y onto it. Run in parallel, Y's migration would
 * find h2 still full (the Xs counted on both hosts while they move) and fail; in stages, Y starts
 * once they completed. (vCPUs, not memory: the moves stay cheap — a plan weighs what it gains
 * against the bytes it moves — and a workload may not have more vCPUs than a host has CPUs.)
 */
describe.skipIf(skipLab())('executing plans: stages (a move that needs the room another frees waits for it), partial evacuation', () => {
  let t: LabCluster;
  const { api, get, migration, running, finished, expectUndisturbed } = labApi(() => t);
  const hosts = ['h1', 'h2', 'h3'];
  /** vCPUs a host hands out: its CPUs × the default overcommit (4) */
  let vcpus = 0;

  const big = (id: string, address: string, share: number, allowed: string[]): WorkloadSpecInput =>
    labWorkload(id, address, { resources: { vcpus: Math.floor(vcpus * share * 100) / 100, memoryMiB: 64, diskMiB: 64 }, ha: { enabled: false, priority: 0 }, placement: { hosts: allowed } });
  const maintenance = async (host: string, on: boolean) => {
    const res = await api(on ? 'POST' : 'DELETE', `/v1/hosts/${host}/maintenance`, on ? { reason: 'setting up the test' } : undefined);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  };
  const ended = (id: string) =>
    eventually(
      `plan ${id} to end`,
      async () => {
        const p = (await api('GET', `/v1/plans/${id}`)).body as PlanRecord;
        return ['completed', 'failed', 'cancelled'].includes(p.state) ? p : null;
      },
      180_000,
    );
  /** The chain's plan: two Xs h2 → h3 first, then one of the Ys h1 → h2, after them (either alone would do). */
  const chainPlan = async (): Promise<PlanRecord> => {
    const res = await api('POST', '/v1/rebalance?dryRun=true', { maxMoves: 5, cooldownMinutes: 0 });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const plan = res.body as PlanRecord;
    expect(
      plan.moves.map((m) => [m.workload.replace(/\d$/, ''), m.from, m.to, m.stage, m.dependsOn]),
      `${plan.reason}: ${JSON.stringify(plan.moves)}`,
    ).toEqual([
      ['x', 'h2', 'h3', 1, []],
      ['x', 'h2', 'h3', 1, []],
      ['y', 'h1', 'h2', 2, [0, 1]],
    ]);
    return plan;
  };

  beforeAll(async () => {
    t = await startLabCluster(hosts);
    vcpus = (await t.cluster.get<HostView>('/v1/hosts/h1')).capacity.cpu.count * DEFAULT_PLACEMENT_POLICY.cpuOvercommit;
    // three Ys (a quarter of a host's vCPUs each) on h1, may run on h1 or h2; three Xs (a quarter
    // each) and S (5 %) on h2, the Xs may run on h2 or h3, S only on h2
    await maintenance('h2', true);
    await maintenance('h3', true);
    for (const i of [1, 2, 3]) await running(big(`y${i}`, `10.77.0.9${i}`, 0.25, ['h1', 'h2']), 'h1');
    await maintenance('h2', false);
    for (const i of [1, 2, 3]) await running(big(`x${i}`, `10.77.0.9${3 + i}`, 0.25, ['h2', 'h3']), 'h1');
    await running(big('s', '10.77.0.97', 0.05, ['h2']), 'h1');
    await maintenance('h3', false);
    const where = async (ids: string[]) => Promise.all(ids.map(async (id) => (await get(id)).hostId));
    expect(await where(['y1', 'y2', 'y3', 'x1', 'x2', 'x3', 's'])).toEqual(['h1', 'h1', 'h1', 'h2', 'h2', 'h2', 'h2']);
  }, 240_000);

  afterAll(async () => {
    await t?.close();
  });

  it('plans the chain in two stages and runs Y only once X completed', async () => {
    const plan = await chainPlan();
    const checker = await InvariantChecker.start(t);
    const since = Date.now();
    const started = await api('POST', `/v1/plans/${plan.id}/execute`);
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const moves = (started.body as PlanRecord).moves;
    expect(moves[0]!.migrationId).not.toBeNull();
    expect(moves[1]!.migrationId).not.toBeNull();
    expect(moves[2]).toMatchObject({ status: 'pending', migrationId: null }); // not started with the first stage

    const done = await ended(plan.id);
    expect(done.state, JSON.stringify(done.moves)).toBe('completed');
    expect(done.moves.map((m) => m.status)).toEqual(['completed', 'completed', 'completed']);
    const [x1, x2, y] = await Promise.all(done.moves.map((m) => migration(m.migrationId!)));
    expect([x1!.state, x2!.state, y!.state]).toEqual(['completed', 'completed', 'completed']);
    // Y's migration was made, and started, only after both Xs' had completed
    const xDone = Math.max(x1!.finishedAt!, x2!.finishedAt!);
    expect(y!.createdAt).toBeGreaterThanOrEqual(xDone);
    expect(y!.timeline[0]!.startedAt).toBeGreaterThanOrEqual(xDone);
    console.log(
      `the Xs → h3 ended at +${x1!.finishedAt! - since} and +${x2!.finishedAt! - since} ms; ${y!.workloadId} → h2 made at +${y!.createdAt - since} ms, ended at +${y!.finishedAt! - since} ms`,
    );
    for (const m of done.moves) expect((await get(m.workload)).hostId).toBe(m.to);
    const summary = await checker.check();
    expect(summary.samples).toBeGreaterThan(0);
    await expectUndisturbed(hosts, since);
  });

  /** Back to the start: the Ys onto h1 again, then the Xs onto h2. */
  const backToStart = async () => {
    const back: Array<[string, string]> = [];
    for (const id of ['y1', 'y2', 'y3']) if ((await get(id)).hostId === 'h2') back.push([id, 'h1']);
    for (const id of ['x1', 'x2', 'x3']) if ((await get(id)).hostId === 'h3') back.push([id, 'h2']);
    for (const [id, to] of back) {
      const res = await api('POST', `/v1/workloads/${id}/migrate`, { destination: to });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      const m = res.body.migration as MigrationRecord;
      await eventually(`${id} → ${to}`, async () => ((await migration(m.id)).state === 'completed' ? true : null), 120_000);
    }
  };

  it('a move whose predecessor did not complete never starts, and the plan says which and why', async () => {
    await backToStart();
    const plan = await chainPlan();
    const checker = await InvariantChecker.start(t);
    const since = Date.now();
    const started = await api('POST', `/v1/plans/${plan.id}/execute`);
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    // cancel the Xs' own migrations (not the plan): Y needs both, so one not completing is enough
    for (const m of (started.body as PlanRecord).moves.slice(0, 2)) expect((await api('DELETE', `/v1/migrations/${m.migrationId}`)).status).toBe(202);
    const done = await ended(plan.id);
    const xs = done.moves.slice(0, 2);
    expect(
      xs.some((m) => m.status === 'cancelled'),
      JSON.stringify(xs),
    ).toBe(true);
    const missing = xs.findIndex((m) => m.status !== 'completed');
    // the plan was not cancelled: a move did not complete, so it failed, and Y's reason names the move it needed
    expect(done.state).toBe('failed');
    expect(done.moves[2]).toMatchObject({
      status: 'cancelled',
      migrationId: null,
      reason: expect.stringContaining(`not started: it needs move ${missing + 1} (${xs[missing]!.workload} h2 → h3) completed first, and that one cancelled`),
    });
    expect((await get(done.moves[2]!.workload)).hostId).toBe('h1');
    for (const m of xs) expect((await get(m.workload)).hostId).toBe(m.status === 'completed' ? 'h3' : 'h2');
    await checker.check();
    await expectUndisturbed(hosts, since);
  });

  it('a plan cancelled in its first stage never starts the second', async () => {
    await backToStart();
    const plan = await chainPlan();
    const checker = await InvariantChecker.start(t);
    const since = Date.now();
    expect((await api('POST', `/v1/plans/${plan.id}/execute`)).status).toBe(202);
    const cancel = await api('DELETE', `/v1/plans/${plan.id}`);
    expect(cancel.status, JSON.stringify(cancel.body)).toBe(202);
    const done = await ended(plan.id);
    expect(done.state).toBe('cancelled');
    // the Xs' own migrations are cancelled if they had not committed yet; Y's never existed
    for (const m of done.moves.slice(0, 2)) expect(['cancelled', 'completed']).toContain(m.status);
    expect(done.moves[2]).toMatchObject({ status: 'cancelled', migrationId: null, reason: expect.stringContaining('not started: the plan was cancelled') });
    expect((await get(done.moves[2]!.workload)).hostId).toBe('h1');
    await checker.check();
    await expectUndisturbed(hosts, since);
  });

  it('evacuates a host with a pinned workload only with --partial: the rest leave, the plan lists what stays and why', async () => {
    // h2 holds S (it may run on h2 only) and the Xs the cancelled plan left there
    const onH2 = async () =>
      (await t.cluster.get<{ workloads: Array<{ spec: { id: string }; hostId: string | null }> }>('/v1/workloads')).workloads.filter((w) => w.hostId === 'h2').map((w) => w.spec.id);
    const leaving = (await onH2()).filter((id) => id !== 's');
    expect(leaving.length).toBeGreaterThan(0);
    const migrationsBefore = (await t.cluster.get<{ migrations: unknown[] }>('/v1/migrations')).migrations.length;

    // all or nothing by default: refused, every reason, nothing moves
    const refused = await api('POST', '/v1/hosts/h2/maintenance', {});
    expect(refused.status).toBe(409);
    expect(refused.body.message).toContain('?partial=true moves the others');
    expect(refused.body.details.unplaced).toEqual([
      { workload: 's', refused: { NOT_ALLOWED: 2 }, reason: expect.stringMatching(/NOT_ALLOWED ×2 \(h[13]: not among the hosts the workload may run on\)/) },
    ]);
    expect((await t.cluster.get<HostView>('/v1/hosts/h2')).maintenance).toBeNull();
    expect((await t.cluster.get<{ migrations: unknown[] }>('/v1/migrations')).migrations.length).toBe(migrationsBefore);
    expect((await api('POST', '/v1/hosts/h2/maintenance?partial=maybe', {})).status).toBe(400);

    // the CLI: without --partial the same refusal (exit 5); with it, the others move and S is listed
    const ferry = (args: string[]) =>
      execa(join(repoRoot, 'packages', 'cli', 'bin', 'ferry'), [...args, '--url', t.cluster.apiUrl, '--token', t.cluster.token], {
        reject: false,
        env: { FERRY_CONFIG: '/nonexistent/ferry.yaml' },
      });
    const checker = await InvariantChecker.start(t);
    const since = Date.now();
    const all = await ferry(['maintenance', 'enter', 'h2']);
    expect(all.exitCode, all.stderr).toBe(5);
    expect(all.stderr).toContain('cannot be emptied');
    // the refusal names each workload that cannot leave, with why (the API's message; details.unplaced has them all)
    expect(all.stderr).toMatch(/ — s: refused by all 2 hosts that take workloads: NOT_ALLOWED ×2/);
    const partial = await ferry(['maintenance', 'enter', 'h2', '--partial', '-o', 'json']);
    expect(partial.exitCode, partial.stderr).toBe(0);
    expect(partial.stderr).toMatch(/1 workload\(s\) cannot leave and stay:\n\s+s\s+stays on h2: refused by all 2 hosts that take workloads: NOT_ALLOWED ×2/);
    const { plan } = JSON.parse(partial.stdout) as { plan: PlanRecord };
    expect(plan.state).toBe('completed');
    expect(plan.moves.map((m) => m.workload).sort()).toEqual([...leaving].sort());
    expect(plan.unplaced).toEqual([expect.objectContaining({ workload: 's', refused: { NOT_ALLOWED: 2 } })]);
    expect(plan.reason).toContain('1 cannot leave and stay: s');
    expect(await onH2()).toEqual(['s']);
    expect((await get('s')).phase).toBe('running');
    expect((await t.cluster.get<HostView>('/v1/hosts/h2')).maintenance?.state).toBe('in');
    await checker.check();
    await expectUndisturbed(hosts, since);
    expect((await api('DELETE', '/v1/hosts/h2/maintenance')).status).toBe(200);
  });

  it('never plans a move of a workload mid-migration: all or nothing refuses naming it; partial moves the rest and it leaves on its own', async () => {
    const onHost = async (host: string) =>
      (await t.cluster.get<{ workloads: Array<{ spec: { id: string }; hostId: string | null }> }>('/v1/workloads')).workloads.filter((w) => w.hostId === host).map((w) => w.spec.id);
    const migrations = async () => (await t.cluster.get<{ migrations: MigrationRecord[] }>('/v1/migrations')).migrations;
    const migrate = async (id: string, to: string) => {
      const res = await api('POST', `/v1/workloads/${id}/migrate`, { destination: to });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      return (res.body.migration as MigrationRecord).id;
    };
    // Z (small, may run on h2 or h3) starts on h3, where the Xs are since the partial evacuation
    await running(labWorkload('z', '10.77.0.98', { resources: { vcpus: 0.25, memoryMiB: 64, diskMiB: 64 }, ha: { enabled: false, priority: 0 }, placement: { hosts: ['h2', 'h3'] } }), 'h1');
    if ((await get('z')).hostId !== 'h3') expect((await finished(await migrate('z', 'h3'))).state).toBe('completed');
    const xs = (await onHost('h3')).filter((id) => id !== 'z');
    expect(xs.length).toBeGreaterThan(0);
    const checker = await InvariantChecker.start(t);
    const since = Date.now();

    // all or nothing: Z is migrating h3 → h2 (asked for, maybe not started yet): refused, Z named, nothing else starts
    const before = (await migrations()).length;
    const first = await migrate('z', 'h2');
    const refused = await api('POST', '/v1/hosts/h3/maintenance', {});
    expect(refused.status, JSON.stringify(refused.body)).toBe(409);
    expect(refused.body.details.unplaced).toEqual([{ workload: 'z', refused: {}, busy: expect.stringMatching(/^migrating/), reason: expect.stringMatching(/^it cannot move while migrating/) }]);
    expect(refused.body.message).toMatch(/cannot move now \(being created or migrating\) — z: it cannot move while migrating/);
    expect((await t.cluster.get<HostView>('/v1/hosts/h3')).maintenance).toBeNull();
    expect((await migrations()).length).toBe(before + 1);
    expect((await finished(first)).state).toBe('completed');
    expect((await get('z')).hostId).toBe('h2');
    expect((await onHost('h3')).sort()).toEqual([...xs].sort());

    // partial: Z back on h3, migrating to h2 again; the Xs move, Z is listed and leaves by its own migration
    expect((await finished(await migrate('z', 'h3'))).state).toBe('completed');
    const second = await migrate('z', 'h2');
    const started = await api('POST', '/v1/hosts/h3/maintenance?partial=true', {});
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const plan = started.body.plan as PlanRecord;
    expect(plan.moves.map((m) => m.workload).sort()).toEqual([...xs].sort());
    expect(plan.unplaced).toEqual([expect.objectContaining({ workload: 'z', refused: {}, busy: expect.stringMatching(/^migrating/) })]);
    const done = await ended(plan.id);
    expect(done.state, JSON.stringify(done.moves)).toBe('completed');
    expect((await finished(second)).state).toBe('completed');
    expect((await get('z')).hostId).toBe('h2');
    expect(await onHost('h3')).toEqual([]);
    expect((await t.cluster.get<HostView>('/v1/hosts/h3')).maintenance?.state).toBe('in');
    await checker.check();
    await expectUndisturbed(hosts, since);
    expect((await api('DELETE', '/v1/hosts/h3/maintenance')).status).toBe(200);
  });
});
