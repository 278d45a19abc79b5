import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { repoRoot } from '@ferry/deploy';
import type { LogChunk, WorkloadView } from '@ferry/protocol';
import { eventually, http } from './helpers/cluster.ts';
import { skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';

const ID = 'lt-ticker';
const ADDRESS = '10.77.0.61';
/** a counter in the shell's memory, a line every 200 ms: after a live move it goes on from where it was */
const TICKER = ['/bin/sh', '-c', 'i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.2; done'];

/** The tick numbers of a log text, in order. */
const ticks = (text: string): number[] =>
  text
    .split('\n')
    .filter((l) => /^tick-\d+$/.test(l))
    .map((l) => Number(l.slice(5)));

/** Every number once, each one more than the one before. */
function expectConsecutive(numbers: number[], what: string): void {
  const gaps = numbers.flatMap((n, i) => (i > 0 && n !== numbers[i - 1]! + 1 ? [`${numbers[i - 1]} → ${n}`] : []));
  expect(gaps, `${what}: repeated or missing lines`).toEqual([]);
}

/** Processes whose command line mentions `text` (the log relay names its log file). */
function processesMentioning(text: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(text);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe.skipIf(skipLab())('logs across migrations, ferry top, the lifecycle in the CLI (lab hosts, real runc and CRIU)', () => {
  let t: LabCluster;
  /** where it was placed, and where it moves */
  let from = 'h1';
  let to = 'h2';
  const ferry = (args: string[], options: { token?: string } = {}) =>
    execa(join(repoRoot, 'packages', 'cli', 'bin', 'ferry'), args, {
      reject: false,
      cwd: repoRoot,
      env: { FERRY_API_URL: t.cluster.apiUrl, FERRY_API_TOKEN: options.token ?? t.cluster.token, FERRY_CONFIG: '/nonexistent/ferry.yaml' },
    });
  const api = (method: string, path: string, body?: unknown) => http(`${t.cluster.apiUrl}${path}`, { token: t.cluster.token, method, body });
  const view = async () => (await api('GET', `/v1/workloads/${ID}`)).body as WorkloadView;
  const logs = async () => {
    const res = await ferry(['logs', ID, '--tail', '10000']);
    if (res.exitCode !== 0) throw new Error(`ferry logs: ${res.stderr}`);
    return res.stdout;
  };

  beforeAll(async () => {
    t = await startLabCluster(['h1', 'h2']);
  }, 120_000);

  afterAll(async () => {
    await t?.close();
  });

  it('refuses bad input before and at the API, with every problem, and creates nothing', async () => {
    const bad = await ferry(['create', 'Bad_Name', '--template', 'busybox', '--memory', '4', '--address', 'prod=10.77.0.300']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/3 problem\(s\) with the flags, nothing was sent/);
    expect(bad.stderr).toMatch(/^ {2}resources\.memoryMiB: /m);
    expect((await ferry(['create', 'lt-x', '--template', 'busybox', '--memory', 'lots'])).stderr).toContain('--memory lots: not a size');
    // passes the local check, but no host has the template: the API's per-field problem, printed as such
    const unknown = await ferry(['create', 'lt-x', '--template', 'windows-95', '--address', 'prod=10.77.0.62', '--', '/bin/sh']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toMatch(/^ {2}template: no host has a template named windows-95$/m);
    expect((await api('GET', '/v1/workloads/lt-x')).status).toBe(404);
    expect((await ferry(['delete', 'lt-x'])).stderr).toContain('confirm with --yes');
  });

  it('creates a workload from a template through the CLI; its output shows in ferry logs; a viewer may not read it', async () => {
    const created = await ferry([
      'create',
      ID,
      '--template',
      'busybox',
      '--memory',
      '96M',
      '--cpus',
      '0.25',
      '--disk',
      '64M',
      '--address',
      `prod=${ADDRESS}`,
      '--host',
      'h1',
      '--host',
      'h2',
      '--label',
      'suite=logs',
      '--',
      ...TICKER,
    ]);
    expect(created.exitCode, created.stderr).toBe(0);
    const w = await view();
    from = w.hostId!;
    to = from === 'h1' ? 'h2' : 'h1';
    expect(w.spec.placement.hosts).toEqual(['h1', 'h2']);
    expect(created.stdout).toMatch(new RegExp(`^${ID} +running +${from} +busybox +prod=${ADDRESS}$`, 'm'));
    expect(w.spec.labels).toEqual({ suite: 'logs' });
    expect(w.spec.resources).toMatchObject({ memoryMiB: 96, vcpus: 0.25, diskMiB: 64 });

    const seen = await eventually('ten ticks in the log', async () => {
      const text = await logs();
      return ticks(text).length >= 10 ? text : null;
    });
    expect(ticks(seen)[0]).toBe(1);
    expectConsecutive(ticks(seen), 'log before the move');
    // the log lives with the workload on its pool, not in the agent's data directory
    expect(existsSync(join(t.lab.host(from).dir, 'pool', 'containers', ID, 'log', 'console.log'))).toBe(true);
    expect((await ferry(['logs', ID, '--tail', '3'])).stdout.trim().split('\n')).toHaveLength(3);

    const viewer = await api('POST', '/v1/tokens', { name: 'lt-viewer', role: 'viewer' });
    expect(viewer.status, JSON.stringify(viewer.body)).toBe(201);
    const refused = await ferry(['logs', ID], { token: viewer.body.token as string });
    expect(refused.exitCode).toBe(3);
    expect(refused.stderr).toContain('needs the operator role');
  });

  it('keeps the log across a live migration: a follow goes on on the new host, no line twice, none lost', async () => {
    const follower: ResultPromise = execa(join(repoRoot, 'packages', 'cli', 'bin', 'ferry'), ['logs', ID, '--follow', '--tail', '5'], {
      reject: false,
      cwd: repoRoot,
      env: { FERRY_API_URL: t.cluster.apiUrl, FERRY_API_TOKEN: t.cluster.token, FERRY_CONFIG: '/nonexistent/ferry.yaml' },
    });
    let followed = '';
    follower.stdout!.on('data', (d: Buffer) => (followed += d.toString()));
    await eventually('the follow prints', async () => ticks(followed).length >= 3, 30_000);
    const beforeMove = Math.max(...ticks(await logs()));

    const moved = await ferry(['migrate', ID, '--to', to]);
    expect(moved.exitCode, moved.stderr + moved.stdout).toBe(0);
    expect((await view()).hostId).toBe(to);
    // invariant: one host runs it — h1 has no container, no workload directory
    const sourceRunc = await execa('runc', ['--root', join(t.lab.host(from).dir, 'data', 'runc'), 'list', '-q']);
    expect(sourceRunc.stdout.split('\n')).not.toContain(ID);
    await eventually('the source cleaned up', async () => !existsSync(join(t.lab.host(from).dir, 'pool', 'containers', ID)), 30_000);

    // new lines after the move, on h2, numbered on from the same counter
    await eventually('ticks after the move', async () => Math.max(...ticks(await logs())) >= beforeMove + 10, 30_000);
    const after = await logs();
    expect(ticks(after)[0]).toBe(1); // the lines from before the move are still there
    expectConsecutive(ticks(after), 'log after the move');
    expect(existsSync(join(t.lab.host(to).dir, 'pool', 'containers', ID, 'log', 'console.log'))).toBe(true);

    await eventually('the follow goes on after the move', async () => Math.max(0, ...ticks(followed)) >= beforeMove + 10, 30_000);
    follower.kill('SIGINT');
    await follower;
    const f = ticks(followed);
    expect(f[0]).toBeLessThan(beforeMove);
    expectConsecutive(f, 'the follow');
    // and the API's one-shot read from an offset, as the follow uses it, starts exactly there
    const chunk = (await api('GET', `/v1/workloads/${ID}/logs?tail=1`)).body as LogChunk;
    expect(chunk.hostId).toBe(to);
    const again = (await api('GET', `/v1/workloads/${ID}/logs?from=${chunk.start}`)).body as LogChunk;
    expect(again.start).toBe(chunk.start);
    expect(again.text.startsWith(chunk.text.trimEnd())).toBe(true);
  });

  it('keeps the log of a workload on the shared pool across a move too (one file, the two hosts’ relays in turn)', async () => {
    const id = 'lt-shared';
    const created = await ferry(['create', id, '--template', 'busybox', '--memory', '96M', '--disk', '64M', '--pool', 'shared', '--address', 'prod=10.77.0.63', '--', ...TICKER]);
    expect(created.exitCode, created.stderr).toBe(0);
    const host = ((await api('GET', `/v1/workloads/${id}`)).body as WorkloadView).hostId!;
    const read = async () => ticks((await ferry(['logs', id, '--tail', '10000'])).stdout);
    await eventually('five ticks', async () => (await read()).length >= 5);
    const before = Math.max(...(await read()));
    const moved = await ferry(['migrate', id, '--to', host === 'h1' ? 'h2' : 'h1']);
    expect(moved.exitCode, moved.stderr + moved.stdout).toBe(0);
    await eventually('ticks after the move', async () => Math.max(...(await read())) >= before + 5, 30_000);
    const after = await read();
    expect(after[0]).toBe(1);
    expectConsecutive(after, 'shared-pool log after the move');
    expect((await ferry(['delete', id, '--yes'])).exitCode).toBe(0);
  });

  it('ferry top lists it on its host with sane numbers', async () => {
    const top = await eventually(
      'a top row with usage',
      async () => {
        const res = await ferry(['top', '-o', 'json', '--host', to]);
        if (res.exitCode !== 0) throw new Error(res.stderr);
        const rows = (JSON.parse(res.stdout) as { workloads: Array<Record<string, number | string | null>> }).workloads;
        const row = rows.find((r) => r.id === ID);
        return row && row.memoryBytes !== null && row.cpuPercent !== null ? { rows, row } : null;
      },
      20_000,
    );
    expect(top.rows.map((r) => r.id)).toEqual([ID]);
    const { row } = top;
    expect(row.host).toBe(to);
    expect(row.cpuPercent as number).toBeGreaterThanOrEqual(0);
    expect(row.cpuPercent as number).toBeLessThan(100); // a quarter core of quota
    expect(row.memoryBytes as number).toBeGreaterThan(64 * 1024);
    expect(row.memoryBytes as number).toBeLessThanOrEqual(96 * 2 ** 20);
    expect(row.memoryLimitBytes).toBe(96 * 2 ** 20);
    expect(row.pids as number).toBeGreaterThanOrEqual(1); // sh, and its sleep most of the time
    expect(row.pids as number).toBeLessThan(10);
    if (row.diskBytes !== null) expect(row.diskBytes as number).toBeLessThan(64 * 2 ** 20);
    const table = await ferry(['top', '--sort', 'memory']);
    expect(table.stdout).toMatch(new RegExp(`^${ID} +${to} +running +\\d+\\.\\d / 25 +[\\d.]+ [KM]iB / 96 MiB +\\d+ / 1024 +`, 'm'));
    expect((await ferry(['top', '--sort', 'colour'])).exitCode).toBe(2);
  });

  it('stops, starts and deletes it through the CLI; the log goes on, then nothing is left', async () => {
    const linesBefore = ticks(await logs()).length;
    const stopped = await ferry(['stop', ID, '--grace', '1']);
    expect(stopped.exitCode, stopped.stderr).toBe(0);
    expect((await view()).phase).toBe('stopped');
    expect(ticks(await logs()).length).toBeGreaterThanOrEqual(linesBefore); // a stopped workload's log stays readable

    const started = await ferry(['start', ID]);
    expect(started.exitCode, started.stderr).toBe(0);
    expect(await view()).toMatchObject({ phase: 'running', hostId: to });
    // a new process counts from 1 again, appended after the old lines
    await eventually('the restarted ticker writes', async () => {
      const text = await logs();
      const n = ticks(text);
      return n.lastIndexOf(1) > 0 && n.length > n.lastIndexOf(1) + 3;
    });

    const deleted = await ferry(['delete', ID, '--yes']);
    expect(deleted.exitCode, deleted.stderr).toBe(0);
    expect(deleted.stdout).toContain(`${ID} deleted`);
    expect((await api('GET', `/v1/workloads/${ID}`)).status).toBe(404);
    for (const host of ['h1', 'h2']) {
      const dir = t.lab.host(host).dir;
      expect(existsSync(join(dir, 'pool', 'containers', ID)), `${host} pool`).toBe(false);
      const runc = await execa('runc', ['--root', join(dir, 'data', 'runc'), 'list', '-q']);
      expect(runc.stdout.split('\n')).not.toContain(ID);
    }
    // the relays ended with the containers they served
    await eventually('no log relay left', async () => processesMentioning(join('containers', ID, 'log')).length === 0, 10_000);
    expect((await ferry(['logs', ID])).exitCode).toBe(4);
  });
});
