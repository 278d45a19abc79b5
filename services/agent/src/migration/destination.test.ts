import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WorkloadSpec } from '@ferry/protocol';
import { createLogger } from '@ferry/runtime';
import { spec as sampleSpec } from '../../../../test/fuzz/samples.ts';
import type { ContainerRecord } from '../containers/records.ts';
import { Criu } from '../containers/criu.ts';
import { RootfsStore } from '../containers/rootfs.ts';
import { MigrationDestination, type DestinationContainers } from './destination.ts';
import { MigrationSides, newSide } from './state.ts';

// The destination through its narrow interface: a fake container manager on a temporary pool, a
// prepare that fails before it touches the host's network (the workload's network is not on this
// host) — what it had made must be gone, through its reverter.
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-destination-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

function destination(records: Map<string, ContainerRecord> = new Map(), runcState = new Set<string>()): MigrationDestination {
  const containers: DestinationContainers = {
    runc: {
      state: async () => null,
      hasState: async (id) => runcState.has(id),
      delete: async (id) => void runcState.delete(id),
      detached: async () => undefined,
    },
    netnsPrefix: 'ferry-test',
    exclusive: (_id, work) => work(),
    record: (id) => records.get(id),
    save: async (record) => record,
    forget: async () => undefined,
    statusOfRecord: async () => {
      throw new Error('not used');
    },
    pool: (id) => ({ id, path: join(dir, 'pool'), shared: false }) as ReturnType<DestinationContainers['pool']>,
    networks: () => [], // the workload's network is missing here: planning it fails
    bundle: (id) => ({ dir: join(dir, 'bundles', id), pidFile: 'p', consoleLog: 'c' }),
    writeBundleConfig: async () => {
      throw new Error('not reached');
    },
    // a plain directory pool: copy mode
    roots: new RootfsStore(createLogger('test', { level: 'silent' })),
    template: () => undefined,
  };
  return new MigrationDestination({
    hostId: 'h2',
    address: '127.0.0.1',
    sides: new MigrationSides(join(dir, 'migrations')),
    log: createLogger('test', { level: 'silent' }),
    containers,
    criu: new Criu('/nonexistent/criu'),
    deadlineFromNow: () => Date.now() + 60_000,
  });
}

const request = {
  migrationId: 'm-web-1-abc123',
  spec: WorkloadSpec.parse(sampleSpec),
  epoch: 2,
  strategy: 'lazy' as const,
  source: { hostId: 'h1', address: '127.0.0.2' },
  secret: 'S'.repeat(40),
  sharedRootfs: false,
};

describe('MigrationDestination.prepare', () => {
  it('failing half-way leaves no side, no staging and no images behind', async () => {
    await expect(destination().prepare(request)).rejects.toThrow(/network prod/);
    expect(await readdir(join(dir, 'migrations')).catch(() => [])).toEqual([]);
    expect(await readdir(join(dir, 'pool', 'containers')).catch(() => [])).toEqual([]);
  });

  it('refuses a workload this host already has, and touches nothing', async () => {
    const records = new Map([['web-1', { spec: request.spec } as ContainerRecord]]);
    await expect(destination(records).prepare(request)).rejects.toThrow(/already has a container/);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('MigrationDestination.abort', () => {
  const side = (restored: boolean) =>
    newSide({
      migrationId: request.migrationId,
      role: 'destination',
      workloadId: 'web-1',
      strategy: 'lazy',
      containerDir: join(dir, 'pool', 'containers', 'web-1'),
      sharedRootfs: false,
      netns: null,
      spec: request.spec,
      epoch: 2,
      restored,
    });

  it('removes a container a restore left after its agent died (runc state, no record, not marked restored)', async () => {
    const runc = new Set(['web-1']);
    const d = destination(new Map(), runc);
    await new MigrationSides(join(dir, 'migrations')).save(side(false));
    expect(await d.abort(request.migrationId)).toEqual({ done: true });
    expect(runc.has('web-1')).toBe(false);
  });

  it('leaves a container this host has a record of (another life of the workload) when it restored nothing', async () => {
    const runc = new Set(['web-1']);
    const records = new Map([['web-1', { spec: request.spec, epoch: 1 } as ContainerRecord]]);
    const d = destination(records, runc);
    await new MigrationSides(join(dir, 'migrations')).save(side(false));
    await d.abort(request.migrationId);
    expect(runc.has('web-1')).toBe(true);
  });
});
