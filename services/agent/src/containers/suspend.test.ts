import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WorkloadSpec, type ContainerStatus } from '@ferry/protocol';
import { createLogger } from '@ferry/runtime';
import { spec as sampleSpec } from '../../../../test/fuzz/samples.ts';
import type { PoolConfig } from '../config.ts';
import type { CommandError } from './errors.ts';
import type { ContainerRecord } from './records.ts';
import { RootfsStore } from './rootfs.ts';
import { ContainerSuspends, SuspendMarker, suspendPaths, type SuspendContainers } from './suspend.ts';

// Suspend and resume through their narrow interface: a fake container manager and runc, a pool on
// a temporary directory (no namespace: the record names none, so no `ip` runs). What they must do
// around the real dump and restore (the lab test runs those): a failed dump leaves the container
// running and nothing in the pool; a done one leaves the images and a marker and nothing on the
// host; a retried suspend gets the same answer; a resume refuses what it cannot restore.
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-suspend-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const spec = WorkloadSpec.parse({ ...sampleSpec, networks: [] });
const id = spec.id;
const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

function harness(checkpoint: (args: string[]) => Promise<void>) {
  const calls: string[] = [];
  const pool: PoolConfig = { id: spec.pool, path: join(dir, 'pool'), shared: true } as PoolConfig;
  const records = new Map<string, ContainerRecord>([
    [id, { spec, epoch: 2, state: 'running', templateVersion: 'v', rootfs: join(suspendPaths(pool, id).dir, 'rootfs'), netns: null, pid: 42, startedAt: 1, exit: null, createdAt: 1 }],
  ]);
  let runcStatus: string | null = 'running';
  const containers: SuspendContainers = {
    runc: {
      checkpoint: async (args) => {
        calls.push('checkpoint');
        await checkpoint(args);
        runcStatus = null;
      },
      state: async () => (runcStatus ? ({ id, pid: 42, status: runcStatus, bundle: '/b' } as const) : null),
      hasState: async () => runcStatus !== null,
      resume: async () => {
        calls.push('thaw');
        runcStatus = 'running';
      },
      delete: async () => void calls.push('delete'),
      detached: async () => void calls.push('restore'),
    },
    netnsPrefix: 'fx',
    roots: new RootfsStore(createLogger('test', { level: 'silent' })),
    exclusive: (_id, work) => work(),
    record: (x) => records.get(x),
    save: async (r) => {
      records.set(r.spec.id, r);
      return r;
    },
    forget: async (x) => {
      calls.push('forget');
      records.delete(x);
    },
    statusOfRecord: async (r) => ({ id: r.spec.id, state: r.state }) as unknown as ContainerStatus,
    pool: (x) => (x === pool.id ? pool : undefined),
    networks: () => [],
    bundle: (x) => ({ dir: join(dir, 'bundles', x), pidFile: join(dir, 'bundles', x, 'pid'), consoleLog: join(dir, 'bundles', x, 'console.log') }),
    writeBundleConfig: async () => void calls.push('bundle config'),
  };
  const suspends = new ContainerSuspends({ hostId: 'h1', pools: [pool], containers, log: createLogger('test').child({}, { level: 'silent' }) });
  return { suspends, calls, records, paths: suspendPaths(pool, id), setPaused: () => (runcStatus = 'paused') };
}

/** A dump that writes an image of `bytes` bytes where runc was told to. */
const dumpOf = (bytes: number) => async (args: string[]) => {
  const images = args[args.indexOf('--image-path') + 1]!;
  await writeFile(join(images, 'pages-1.img'), Buffer.alloc(bytes, 7));
  await writeFile(join(images, 'inventory.img'), 'x');
};

describe('suspend to disk (agent side)', () => {
  it('a failed dump leaves the container running (thawed) and nothing in the pool', async () => {
    const h: ReturnType<typeof harness> = harness(async () => {
      h.setPaused(); // CRIU froze it and gave up
      throw new Error('criu failed');
    });
    await mkdir(h.paths.rootfs, { recursive: true });
    const err = (await h.suspends.suspend(id, 2).catch((e: unknown) => e)) as CommandError;
    expect(err.code).toBe('RUNTIME_ERROR');
    expect(err.message).toContain('checkpoint failed');
    expect(h.calls).toEqual(['checkpoint', 'thaw']);
    expect(h.records.get(id)?.state).toBe('running');
    expect(await exists(h.paths.images)).toBe(false);
    expect(await exists(h.paths.marker)).toBe(false);
    expect(await exists(h.paths.rootfs)).toBe(true);
  });

  it('a done dump keeps the images and a marker in the pool, nothing on the host; a retry answers the same', async () => {
    const h = harness(dumpOf(70_000));
    const marker = await h.suspends.suspend(id, 2);
    expect(marker).toMatchObject({ hostId: 'h1', pool: spec.pool, shared: true, imagesDir: h.paths.images, epoch: 2 });
    expect(marker.bytes).toBeGreaterThanOrEqual(70_000);
    expect(h.calls).toEqual(['checkpoint', 'forget']);
    expect(h.records.has(id)).toBe(false);
    expect(SuspendMarker.parse(JSON.parse(await readFile(h.paths.marker, 'utf8')))).toEqual(marker);
    expect(await h.suspends.suspend(id, 2)).toEqual(marker);
    // another epoch's request is not this suspend
    await expect(h.suspends.suspend(id, 3)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('refuses what it cannot suspend: another epoch, a container that does not run', async () => {
    const h = harness(dumpOf(10));
    await expect(h.suspends.suspend(id, 1)).rejects.toMatchObject({ code: 'CONFLICT' });
    h.records.set(id, { ...h.records.get(id)!, state: 'stopped' });
    await expect(h.suspends.suspend(id, 2)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('only a running container') });
    expect(h.calls).toEqual([]);
  });

  it('a resume refuses without a checkpoint here, or at an epoch not after the checkpoint', async () => {
    const h = harness(dumpOf(10));
    h.records.clear();
    await expect(h.suspends.resume(spec, 3, 'h2')).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('really shared with it') });
    const h2 = harness(dumpOf(10));
    await mkdir(h2.paths.rootfs, { recursive: true });
    await h2.suspends.suspend(id, 2);
    await expect(h2.suspends.resume(spec, 2, 'h1')).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(h2.calls).not.toContain('restore');
    expect(await exists(h2.paths.images)).toBe(true); // still there for a resume that can
  });

  it('a delete with no container here removes only a pool directory that holds a marker', async () => {
    const h = harness(dumpOf(10));
    await mkdir(h.paths.rootfs, { recursive: true });
    h.records.clear();
    expect(await h.suspends.discard(id)).toBe(false); // a root filesystem without a marker: not ours to remove
    expect(await exists(h.paths.rootfs)).toBe(true);
    const h2 = harness(dumpOf(10));
    await h2.suspends.suspend(id, 2);
    expect(await h2.suspends.discard(id)).toBe(true);
    expect(await exists(h2.paths.dir)).toBe(false);
  });
});
