import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkloadSpecInput, WorkloadView } from '@ferry/protocol';
import { eventually } from './helpers/cluster.ts';
import { InvariantChecker } from './helpers/invariants.ts';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { labApi } from './helpers/workload.ts';

/**
 * Issue 17, parts 3 and 4: on a pool with quota groups (the lab's pools are loop-mounted btrfs
 * images here, deploy/pool-image) a container's root is a copy-on-write snapshot of the
 * template's import into the pool, limited to the workload's disk size: a process inside cannot
 * write past it (EDQUOT), the pool and the other containers are unaffected, the usage comes from
 * the quota groups, and a live migration carries the root (only what differs from the template),
 * its limit, and leaves nothing behind on the source.
 */

const TEMPLATE = '/opt/ferry/templates/debian-12/template.json';
const N = 30;

function skip(): boolean {
  if (skipLab()) return true;
  const missing = !existsSync(TEMPLATE) ? TEMPLATE : ['/usr/sbin/mkfs.btrfs', '/usr/bin/btrfs'].find((tool) => !existsSync(tool));
  if (!missing) return false;
  if (process.env.CI) throw new Error(`copy-on-write lab test needs ${missing} in CI: run deploy/setup`);
  console.warn(`skipping the copy-on-write and quota test: no ${missing} (run deploy/setup)`);
  return true;
}

const vps = (id: string, address: string, diskMiB: number, hosts = ['h1']): WorkloadSpecInput => ({
  id,
  template: 'debian-12',
  command: ['/sbin/init'],
  resources: { vcpus: 0.05, memoryMiB: 64, diskMiB },
  networks: [{ network: PROD.name, address }],
  pool: 'local',
  placement: { hosts },
});

const MiB = 1024 * 1024;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

describe.skipIf(skip())('copy-on-write roots with enforced disk quotas (btrfs pools)', () => {
  let t: LabCluster;

  beforeAll(async () => {
    t = await startLabCluster(['h1', 'h2'], [PROD], {}, {}, {}, { quotaPools: true });
  }, 120_000);

  afterAll(async () => {
    await t?.close();
  });

  const { api, get, finished } = labApi(() => t);
  /** where q1 runs first, and where it migrates to */
  let src = 'h1';
  let dst = 'h2';
  const pool = (host: string) => join(t.lab.host(host).dir, 'pool');
  const rootfs = (host: string, id: string) => join(pool(host), 'containers', id, 'rootfs');
  const btrfs = async (...args: string[]) => {
    const r = await execa('btrfs', args, { reject: false });
    return r.exitCode === 0 ? r.stdout : null;
  };
  /** a command inside the container (its namespaces, cgroup and seccomp profile), through the host's runc */
  const inside = (host: string, id: string, command: string[]) => execa('runc', ['--root', join(t.lab.host(host).dir, 'data', 'runc'), 'exec', id, ...command], { reject: false, timeout: 60_000 });
  const uuid = (show: string | null, field: string) => new RegExp(`^\\s*${field}:\\s*(\\S+)`, 'm').exec(show ?? '')?.[1];
  /** the referenced-bytes limit of the subvolume at `path` */
  const limitOf = async (path: string) => {
    const out = await btrfs('qgroup', 'show', '-rf', '--raw', path);
    const row = out?.split('\n').find((l) => /^0\/\d+/.test(l));
    return row ? row.trim().split(/\s+/)[3] : null;
  };
  const runningOn = (id: string, timeoutMs = 60_000) =>
    eventually(
      `${id} running`,
      async () => {
        const v = await get(id);
        if (v.phase === 'failed') throw new Error(`${id}: ${v.error?.message}`);
        return v.phase === 'running' && v.observed?.state === 'running' ? v : null;
      },
      timeoutMs,
      250,
    );

  it(`creates ${N} Debian containers on one host as snapshots of the template, each its own root`, { timeout: 200_000 }, async () => {
    const ids = Array.from({ length: N }, (_, i) => `cow-${i}`);
    const posted = Date.now();
    for (const [i, id] of ids.entries()) {
      const res = await api('POST', '/v1/workloads', vps(id, `10.77.0.${100 + i}`, 300));
      expect(res.status, JSON.stringify(res.body)).toBe(202);
    }
    for (const id of ids) await runningOn(id, 150_000);
    console.log(`${N} Debian containers created and running on h1 in ${Date.now() - posted} ms (2 shared vCPUs: noisy)`);

    // each create's own time, as the agent measured it (the root's snapshot and limit)
    const created = readFileSync(join(t.stateDir, 'logs', 'agent-h1.log'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"container created"'))
      .map((l) => JSON.parse(l) as { workload: string; mode: string; ms: number });
    const ours = created.filter((c) => ids.includes(c.workload));
    expect(ours.map((c) => c.workload).sort()).toEqual([...ids].sort());
    expect(new Set(ours.map((c) => c.mode))).toEqual(new Set(['cow']));
    const ms = ours.map((c) => c.ms).sort((a, b) => a - b);
    console.log(`create (snapshot + quota limit) per container: p50 ${percentile(ms, 50)} ms, p99 ${percentile(ms, 99)} ms, max ${ms.at(-1)} ms (the first imports the template into the pool)`);

    // every root is a writable snapshot of the pool's one read-only import of the template
    const template = JSON.parse(readFileSync(TEMPLATE, 'utf8')) as { name: string; version: string };
    const base = await btrfs('subvolume', 'show', join(pool('h1'), 'templates', `${template.name}@${template.version}`));
    expect(base, 'the template imported into the pool as a subvolume').not.toBeNull();
    expect(base).toMatch(/Flags:\s*readonly/);
    const baseUuid = uuid(base, 'UUID');
    for (const id of ids) {
      const show = await btrfs('subvolume', 'show', rootfs('h1', id));
      expect(uuid(show, 'Parent UUID'), `${id}'s root is a snapshot of the template`).toBe(baseUuid);
      expect(await limitOf(rootfs('h1', id))).toBe(String(300 * MiB));
    }
    // and its own: a file written in one is in no other
    expect((await inside('h1', 'cow-0', ['sh', '-c', 'echo mine > /root/own'])).exitCode).toBe(0);
    expect(existsSync(join(rootfs('h1', 'cow-0'), 'root', 'own'))).toBe(true);
    expect(existsSync(join(rootfs('h1', 'cow-1'), 'root', 'own'))).toBe(false);

    // usage comes from the quota groups
    const used = await eventually(
      'cow-0 disk usage reported',
      async () => {
        const bytes = (await get('cow-0')).observed?.usage?.diskBytes;
        return bytes ? bytes : null;
      },
      20_000,
    );
    // simple quotas: a root is charged what it wrote itself; the template's files are its import's
    console.log(`cow-0 reports ${(used / MiB).toFixed(2)} MiB used`);
    expect(used).toBeLessThan(50 * MiB);

    for (const id of ids) expect((await api('DELETE', `/v1/workloads/${id}`)).status).toBeLessThan(300);
    await eventually('the containers to be deleted', async () => ids.every((id) => !existsSync(join(pool('h1'), 'containers', id))), 120_000, 500);
    // their subvolumes and quota groups went with them
    const left = (await btrfs('qgroup', 'show', '-r', '--raw', pool('h1'))) ?? '';
    expect(left).not.toMatch(/containers\/cow-/);
  });

  it('refuses a write past the quota inside the container (EDQUOT); the pool and other containers are unaffected', { timeout: 120_000 }, async () => {
    // q1 may run on either host (it migrates next); q2 beside it, on the same pool
    await api('POST', '/v1/workloads', vps('q1', '10.77.0.90', 128, ['h1', 'h2']));
    src = (await runningOn('q1')).hostId!;
    dst = src === 'h1' ? 'h2' : 'h1';
    await api('POST', '/v1/workloads', vps('q2', '10.77.0.91', 128, [src]));
    await runningOn('q2');
    const freeBefore = Number((await execa('df', ['-B1', '--output=avail', pool(src)])).stdout.split('\n')[1]);

    const write = await inside(src, 'q1', ['dd', 'if=/dev/zero', 'of=/var/big', 'bs=1M', 'count=200']);
    console.log(`dd of 200 MiB in q1 (limit 128 MiB): exit ${write.exitCode}: ${write.stderr.split('\n')[0]}`);
    expect(write.exitCode).not.toBe(0);
    expect(write.stderr).toMatch(/Disk quota exceeded|No space left on device/);
    const report = await btrfs('qgroup', 'show', '-rf', '--raw', rootfs(src, 'q1'));
    console.log(`q1's quota group after the refusal:\n${report}`);

    // the pool has room, and another container writes
    const freeAfter = Number((await execa('df', ['-B1', '--output=avail', pool(src)])).stdout.split('\n')[1]);
    expect(freeAfter).toBeGreaterThan(1024 * MiB);
    expect(freeBefore - freeAfter).toBeLessThan(200 * MiB);
    expect((await inside(src, 'q2', ['dd', 'if=/dev/zero', 'of=/var/some', 'bs=1M', 'count=20'])).exitCode).toBe(0);

    // usage reported near the limit; freeing space lets it write again
    await eventually('q1 usage near its limit', async () => ((await get('q1')).observed?.usage?.diskBytes ?? 0) > 100 * MiB, 20_000);
    expect((await inside(src, 'q1', ['rm', '-f', '/var/big'])).exitCode).toBe(0);
    await execa('sync');
    expect((await inside(src, 'q1', ['dd', 'if=/dev/zero', 'of=/var/small', 'bs=1M', 'count=10'])).exitCode).toBe(0);
    expect((await api('DELETE', '/v1/workloads/q2')).status).toBeLessThan(300);
    await eventually('q2 deleted', async () => (await api('GET', '/v1/workloads/q2')).status === 404, 30_000, 250);
  });

  it('live-migrates a copy-on-write container with its files and quota, leaving nothing on the source', { timeout: 180_000 }, async () => {
    const marker = randomBytes(16).toString('hex');
    expect((await inside(src, 'q1', ['sh', '-c', `echo ${marker} > /root/marker`])).exitCode).toBe(0);
    const checker = await InvariantChecker.start(t);
    const srcSubvolume = await btrfs('subvolume', 'show', rootfs(src, 'q1'));
    const srcId = /Subvolume ID:\s*(\d+)/.exec(srcSubvolume ?? '')?.[1];
    expect(srcId).toBeDefined();

    const migrate = await api('POST', '/v1/workloads/q1/migrate', { destination: dst });
    expect(migrate.status, JSON.stringify(migrate.body)).toBe(202);
    const done = await finished(migrate.body.migration.id as string, 150_000);
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    const presync = done.timeline.find((e) => e.phase === 'presync');
    console.log(`q1 migrated ${src} → ${dst} (${done.strategy}): ${done.timeline.map((e) => `${e.phase} ${e.ms} ms${e.bytes ? ` ${e.bytes} B` : ''}`).join(', ')}`);
    // only what differs from the template went: the destination made its root a snapshot of its own import of it
    expect(presync?.bytes ?? 0).toBeLessThan(60 * MiB);
    const moved = await eventually(
      'the destination to report q1',
      async () => {
        const v = await get('q1');
        return v.hostId === dst && v.observed?.state === 'running' ? v : null;
      },
      30_000,
    );
    expect(moved).toMatchObject({ phase: 'running', migratingTo: null } satisfies Partial<WorkloadView>);

    // its files, its limit (set before the restore), enforced on the destination
    expect((await inside(dst, 'q1', ['cat', '/root/marker'])).stdout.trim()).toBe(marker);
    const template = JSON.parse(readFileSync(TEMPLATE, 'utf8')) as { name: string; version: string };
    const dstBase = await btrfs('subvolume', 'show', join(pool(dst), 'templates', `${template.name}@${template.version}`));
    expect(uuid(await btrfs('subvolume', 'show', rootfs(dst, 'q1')), 'Parent UUID')).toBe(uuid(dstBase, 'UUID'));
    expect(await limitOf(rootfs(dst, 'q1'))).toBe(String(128 * MiB));
    const write = await inside(dst, 'q1', ['dd', 'if=/dev/zero', 'of=/var/big', 'bs=1M', 'count=200']);
    expect(write.exitCode).not.toBe(0);
    expect(write.stderr).toMatch(/Disk quota exceeded|No space left on device/);

    // nothing of it left on the source: no directory, no subvolume or quota group, no mount, no runc state
    expect(existsSync(join(pool(src), 'containers', 'q1'))).toBe(false);
    // its subvolume dropped by the kernel's cleaner (in the background), and its quota group with it
    await execa('btrfs', ['subvolume', 'sync', pool(src), srcId!], { reject: false, timeout: 60_000 });
    const groups = (await btrfs('qgroup', 'show', '-r', '--raw', pool(src))) ?? '';
    expect(groups).not.toMatch(new RegExp(`^0/${srcId}\\s`, 'm'));
    expect(groups).not.toMatch(/containers\/q1/);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toMatch(new RegExp(`/hosts/${src}/pool/containers/q1`));
    const state = await execa('runc', ['--root', join(t.lab.host(src).dir, 'data', 'runc'), 'state', 'q1'], { reject: false });
    expect(state.exitCode).not.toBe(0);

    const summary = await checker.check();
    console.log(`invariants held over ${summary.samples} samples`);
  });

  it('live-migrates a copy-on-write container on the shared pool: the same subvolume and limit, nothing copied', { timeout: 120_000 }, async () => {
    const shared = t.lab.sharedPool;
    await api('POST', '/v1/workloads', { ...vps('s1', '10.77.0.92', 128, ['h1', 'h2']), pool: 'shared' });
    const from = (await runningOn('s1')).hostId!;
    const to = from === 'h1' ? 'h2' : 'h1';
    const root = join(shared, 'containers', 's1', 'rootfs');
    const before = await btrfs('subvolume', 'show', root);
    const template = JSON.parse(readFileSync(TEMPLATE, 'utf8')) as { name: string; version: string };
    expect(uuid(before, 'Parent UUID')).toBe(uuid(await btrfs('subvolume', 'show', join(shared, 'templates', `${template.name}@${template.version}`)), 'UUID'));
    const marker = randomBytes(16).toString('hex');
    expect((await inside(from, 's1', ['sh', '-c', `echo ${marker} > /root/marker`])).exitCode).toBe(0);

    const migrate = await api('POST', '/v1/workloads/s1/migrate', { destination: to });
    expect(migrate.status, JSON.stringify(migrate.body)).toBe(202);
    const done = await finished(migrate.body.migration.id as string, 100_000);
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    console.log(`s1 (shared pool) migrated ${from} → ${to} (${done.strategy}): ${done.timeline.map((e) => `${e.phase} ${e.ms} ms${e.bytes ? ` ${e.bytes} B` : ''}`).join(', ')}`);
    await eventually('the destination to report s1', async () => ((await get('s1')).observed?.state === 'running' && (await get('s1')).hostId === to) || null, 30_000);
    expect((await inside(to, 's1', ['cat', '/root/marker'])).stdout.trim()).toBe(marker);
    // the very same subvolume, its limit untouched, still enforced
    expect(uuid(await btrfs('subvolume', 'show', root), 'UUID')).toBe(uuid(before, 'UUID'));
    expect(await limitOf(root)).toBe(String(128 * MiB));
    const write = await inside(to, 's1', ['dd', 'if=/dev/zero', 'of=/var/big', 'bs=1M', 'count=200']);
    expect(write.stderr).toMatch(/Disk quota exceeded|No space left on device/);
    expect((await inside(to, 's1', ['rm', '-f', '/var/big'])).exitCode).toBe(0);
  });
});
