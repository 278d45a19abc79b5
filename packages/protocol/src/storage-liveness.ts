import { z } from 'zod';
import { HostId, Name } from './ids.ts';

/**
 * The second heartbeat channel (docs/failover.md, "Isolation is not failure"): every agent writes
 * a heartbeat file into each shared pool it mounts, and reads the other hosts' there. It does not
 * go through NATS or the scheduler, so a host cut off from the control plane but not from its
 * storage is seen alive by its peers, and a control-plane outage is not mistaken for hosts dying.
 *
 * Layout in a shared pool: `.ferry/heartbeats/<hostId>/beat.json` (one directory per host: only
 * that host writes there) and `.ferry/declared/<hostId>.json` (a host declared failed by the
 * cluster; the declared host fences when it reads it, and removes it once it is heard again).
 */
export const STORAGE_DIR = '.ferry';

export const HeartbeatFile = z.object({
  hostId: HostId,
  bootId: z.string().max(64),
  /** increases with every write: readers time its changes on their own clock, never compare clocks */
  seq: z.number().int().nonnegative(),
  /** wall clock, for people reading the file */
  writtenAt: z.number().int().nonnegative(),
  /** the host fenced its HA containers (it acknowledges being out of the game) */
  fenced: z.boolean(),
});
export type HeartbeatFile = z.infer<typeof HeartbeatFile>;

export const FailureDeclaration = z.object({
  hostId: HostId,
  declaredAt: z.number().int().nonnegative(),
  /** the host that wrote it, on the leader's behalf */
  by: HostId,
});
export type FailureDeclaration = z.infer<typeof FailureDeclaration>;

/** A peer's heartbeat as this host sees it on a shared pool. */
export const StoragePeer = z.object({
  hostId: HostId,
  pool: Name,
  /**
   * how long its heartbeat has not changed, on this host's monotonic clock (a lower bound: a
   * heartbeat first seen counts from then)
   */
  unchangedForMs: z.number().int().nonnegative(),
  /** it says it fenced */
  fenced: z.boolean(),
});
export type StoragePeer = z.infer<typeof StoragePeer>;

/** What a capacity report says about the storage channel. */
export const StorageLiveness = z.object({
  /** this host's own heartbeat was written on every shared pool it mounts, recently */
  heartbeatOk: z.boolean(),
  peers: z.array(StoragePeer).max(4096).default([]),
});
export type StorageLiveness = z.infer<typeof StorageLiveness>;

/**
 * storage.confirm-failed: asked of the host that is to restart a dead host's workloads (it
 * shares the pool): it writes the declaration, then confirms only if the dead host has fenced or
 * its heartbeat has not changed for `staleAfterMs` — the restart waits for a host that is alive
 * on storage (isolated, not failed).
 */
export const ConfirmFailedRequest = z.strictObject({ hostId: HostId, pool: Name, staleAfterMs: z.number().int().positive().max(3_600_000) });
export const ConfirmFailedResult = z.object({
  confirmed: z.boolean(),
  reason: z.enum(['fenced', 'stale', 'alive', 'not-shared']),
  unchangedForMs: z.number().int().nonnegative().nullable(),
});
export type ConfirmFailedResult = z.infer<typeof ConfirmFailedResult>;
