import { join } from 'node:path';
import { execa } from 'execa';
import type { NetworkReport, WorkloadSpec } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import type { PoolConfig } from '../config.ts';
import { CommandError } from '../containers/errors.ts';
import { planNetwork, type NetworkPlan } from '../containers/network.ts';
import type { MigrationSide, MigrationSides } from './state.ts';
import { rearmCheckpointTimerfds } from './timerfd-images.ts';

/** What both halves of a migration share on this host. */
export interface MigrationHost {
  hostId: string;
  /** this host's transfer address */
  address: string | null;
  /** the side files, `<data>/migrations/<id>/side.json` */
  sides: MigrationSides;
  log: Logger;
}

export function requireAddress(host: MigrationHost): string {
  if (!host.address) throw new CommandError('MIGRATION_FAILED', `host ${host.hostId} has no transfer address configured`);
  return host.address;
}

export async function requireSide(host: MigrationHost, migrationId: string): Promise<MigrationSide> {
  const side = await host.sides.load(migrationId);
  if (!side) throw new CommandError('NOT_FOUND', `no migration ${migrationId} on host ${host.hostId}`);
  return side;
}

/** `<pool>/containers/<id>`, and whether the pool is shared with other hosts. */
export function containerDir(host: MigrationHost, pool: PoolConfig | undefined, spec: WorkloadSpec): { dir: string; shared: boolean } {
  if (!pool) throw new CommandError('POOL_MISSING', `host ${host.hostId} has no storage pool ${spec.pool}`);
  return { dir: join(pool.path, 'containers', spec.id), shared: pool.shared };
}

/** The workload's links in the migration's namespace, on this host's networks. */
export function planFor(side: Pick<MigrationSide, 'netns'>, spec: WorkloadSpec, networks: NetworkReport[]): NetworkPlan {
  if (!side.netns) throw new CommandError('MIGRATION_FAILED', 'no network namespace recorded');
  try {
    return planNetwork(side.netns, spec.networks, networks);
  } catch (err) {
    throw new CommandError('NETWORK_MISSING', (err as Error).message);
  }
}

/** The workload a migration id names (`m-<workload>-<suffix>`). */
export function workloadOf(migrationId: string): string {
  const match = /^m-(.+)-[a-z0-9]+$/.exec(migrationId);
  if (!match) throw new CommandError('BAD_REQUEST', `not a migration id: ${migrationId}`);
  return match[1]!;
}

/**
 * Before any restore from a checkpoint (the destination's, or a source's rollback from its kept
 * images): CRIU would bring expired periodic timerfds back disarmed (docs/migration.md, Timers).
 */
export async function rearmTimers(host: MigrationHost, migrationId: string, imagesDir: string): Promise<void> {
  const rearmed = await rearmCheckpointTimerfds(imagesDir).catch((err: unknown) => {
    throw new CommandError('MIGRATION_FAILED', `unreadable checkpoint on ${host.hostId}: ${(err as Error).message}`);
  });
  if (rearmed > 0) host.log.info({ migrationId, rearmed }, 'expired periodic timers re-armed in the checkpoint');
}

/** The last error lines of a CRIU log (dump.log, restore.log), for an error message. */
export function criuLogTail(log: string, pattern: RegExp, lines: number): string {
  return log
    .split('\n')
    .filter((l) => pattern.test(l))
    .slice(-lines)
    .join(' | ');
}

/** Logs an undo that failed while reverting a step (the step's own error is the one answered). */
export const undoFailed = (log: Logger, migrationId: string) => (what: string, err: unknown) => log.warn({ err, migrationId, undo: what }, 'undoing a migration step failed');

export async function namespaceExists(name: string): Promise<boolean> {
  const { stdout } = await execa('ip', ['netns', 'list'], { reject: false });
  return stdout.split('\n').some((line) => line.split(' ')[0] === name);
}
