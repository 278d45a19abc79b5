import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WorkloadSpec, type ContainerStatus, type MigrationStrategy } from '@ferry/protocol';
import { createLogger } from '@ferry/runtime';
import { spec as sampleSpec } from '../../../../test/fuzz/samples.ts';
import type { ContainerRecord } from '../containers/records.ts';
import { LinkCounter } from './host-traffic.ts';
import { RootfsStore } from '../containers/rootfs.ts';
import { MigrationSource, type SourceContainers } from './source.ts';
import { MigrationSides, newSide, type MigrationSide } from './state.ts';

// The rollback's first step on the source (`migration.resume` with readyOnly), through the
// source's narrow interface: a fake container manager, sides and images on a temporary directory.
// What it must do before the destination's abort: keep the images the abort would remove (a shared
// pool's images directory is the destination's too), refuse when a lazy checkpoint already let go
// of the process, and never run the workload.
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-source-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const migrationId = 'm-web-1-abc123';
const spec = WorkloadSpec.parse(sampleSpec);
const workloadId = spec.id;

function source(): { source: MigrationSource; sides: MigrationSides; calls: string[] } {
  const calls: string[] = [];
  const record = { spec, state: 'migrating', netns: null, pid: 42, epoch: 1 } as unknown as ContainerRecord;
  const containers: SourceContainers = {
    runc: {
      argv: () => ['runc', []],
      checkpoint: async () => void calls.push('checkpoint'),
      // a dumped stop-and-copy or page-server source: runc removed the container after the checkpoint
      state: async () => null,
      pause: async () => void calls.push('pause'),
      resume: async () => void calls.push('thaw'),
      delete: async () => void calls.push('delete'),
      detached: async () => void calls.push('restore'),
    },
    exclusive: (_id, work) => work(),
    record: (id) => (id === workloadId ? record : undefined),
    save: async (r) => {
      calls.push(`save ${r.state}`);
      return r;
    },
    forget: async () => undefined,
    statusOfRecord: async (r) => ({ id: r.spec.id, state: r.state }) as unknown as ContainerStatus,
    pool: () => undefined,
    networks: () => [],
    bundle: (id) => ({ dir: join(dir, 'bundles', id), pidFile: join(dir, 'pid'), consoleLog: join(dir, 'console') }),
    writeCriuConfig: async () => void calls.push('criu config'),
    roots: new RootfsStore(createLogger('test', { level: 'silent' })),
  };
  const sides = new MigrationSides(join(dir, 'migrations'));
  const log = createLogger('test').child({}, { level: 'silent' });
  const s = new MigrationSource({ hostId: 'h1', address: null, sides, log, containers, traffic: new LinkCounter(null), progress: () => undefined });
  return { source: s, sides, calls };
}

/** A side dumped by `strategy`, its images (with pages) in the container's directory. */
async function dumped(sides: MigrationSides, strategy: MigrationStrategy, sharedRootfs: boolean, extra: Partial<MigrationSide> = {}): Promise<MigrationSide> {
  const side = newSide({ migrationId, role: 'source', workloadId, strategy, containerDir: join(dir, 'pool', 'containers', workloadId), sharedRootfs, netns: null, dumped: true, ...extra });
  await mkdir(side.imagesDir, { recursive: true });
  for (const f of ['inventory.img', 'pagemap-1.img', 'pages-1.img']) await writeFile(join(side.imagesDir, f), f);
  await sides.save(side);
  return side;
}

describe('the source getting ready for a rollback (before the destination is aborted)', () => {
  it.each(['stop-and-copy', 'page-server'] as const)('%s on a shared pool: moves the images out of the directory the destination removes, once, and runs nothing', async (strategy) => {
    const { source: s, sides, calls } = source();
    const side = await dumped(sides, strategy, true);
    await s.resume({ migrationId, readyOnly: true });
    // the destination's abort removes its images directory: the same one, on a shared pool
    await rm(side.imagesDir, { recursive: true, force: true });
    const kept = (await sides.load(migrationId))!.imagesDir;
    expect(kept).not.toBe(side.imagesDir);
    expect((await readdir(kept)).sort()).toEqual(['inventory.img', 'pagemap-1.img', 'pages-1.img']);
    // asked again (the rollback picked up again): nothing moves twice
    await s.resume({ migrationId, readyOnly: true });
    expect((await sides.load(migrationId))!.imagesDir).toBe(kept);
    expect(calls).toEqual([]); // not thawed, not restored, its record still migrating
  });

  it("keeps a local pool's images where they are (the destination's abort removes only its own directory)", async () => {
    const { source: s, sides, calls } = source();
    const side = await dumped(sides, 'stop-and-copy', false);
    await s.resume({ migrationId, readyOnly: true });
    expect((await sides.load(migrationId))!.imagesDir).toBe(side.imagesDir);
    expect(calls).toEqual([]);
  });

  it('refuses when a lazy checkpoint already sent its last page (CRIU ended the process): the destination must keep its copy', async () => {
    const { source: s, sides } = source();
    await dumped(sides, 'lazy', false, { checkpoint: { pid: 2 ** 22 + 1, startTime: '1' } });
    await expect(s.resume({ migrationId, readyOnly: true })).rejects.toThrow(/already went to the destination/);
    expect(await sides.load(migrationId)).not.toBeNull();
  });

  it('refuses a page-server source with no pages here and no word of where they are', async () => {
    const { source: s, sides } = source();
    const side = await dumped(sides, 'page-server', false);
    for (const f of ['pagemap-1.img', 'pages-1.img']) await rm(join(side.imagesDir, f));
    await expect(s.resume({ migrationId, readyOnly: true })).rejects.toThrow(/pages of .* are on the destination/);
  });

  it('does nothing for a source never dumped (the resume itself clears a presync staging)', async () => {
    const { source: s, sides, calls } = source();
    await dumped(sides, 'lazy', false, { dumped: false });
    await expect(s.resume({ migrationId, readyOnly: true })).resolves.toMatchObject({ state: 'migrating' });
    expect(await sides.load(migrationId)).not.toBeNull();
    expect(calls).toEqual([]);
  });
});
