import { z } from 'zod';
import { HostId, Name } from './ids.ts';
import { CpuInfo } from './cpu.ts';
import { StorageLiveness } from './storage-liveness.ts';
import { ContainerStatus, TemplateReport, WorkloadId } from './workloads.ts';

/** Reports above this size are dropped unread: no host needs more, a hostile one must not cost more. */
export const MAX_CAPACITY_REPORT_BYTES = 512 * 1024;

const bytes = z.number().int().nonnegative();
const ms = z.number().int().nonnegative();

export const MemoryInfo = z.object({ totalBytes: bytes, availableBytes: bytes });
export type MemoryInfo = z.infer<typeof MemoryInfo>;

export const LoadInfo = z.object({
  one: z.number().nonnegative().finite(),
  five: z.number().nonnegative().finite(),
  fifteen: z.number().nonnegative().finite(),
});
export type LoadInfo = z.infer<typeof LoadInfo>;

export const PoolProbe = z.object({
  /** what this host wrote into the pool's probe file */
  token: z.string().regex(/^[a-f0-9]{16,64}$/),
  /** the probe files of other hosts this host can read in the same pool */
  sees: z.array(z.object({ hostId: HostId, token: z.string().max(64) })).max(4096),
});
export type PoolProbe = z.infer<typeof PoolProbe>;

export const StoragePoolReport = z.object({
  id: Name,
  path: z.string().startsWith('/').max(4096),
  /** claimed by the host's config; proven only by probes (see sharedPoolProven) */
  shared: z.boolean(),
  totalBytes: bytes,
  freeBytes: bytes,
  /** shared pools only: the probe-file exchange that proves which hosts really share it */
  probe: PoolProbe.optional(),
});
export type StoragePoolReport = z.infer<typeof StoragePoolReport>;

export const NetworkReport = z.object({
  name: Name,
  bridge: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, 'must be a Linux interface name'),
  subnet: z.cidrv4(),
  /** the host's own address on this network (with prefix length), reserved: no workload may take it */
  hostAddress: z.cidrv4().optional(),
});
export type NetworkReport = z.infer<typeof NetworkReport>;

export const CriuFeatures = z.object({
  /** soft-dirty tracking: iterative pre-copy (pre-dump rounds) is only possible with it */
  memDirtyTrack: z.boolean(),
  /** userfaultfd for non-cooperative processes: post-copy (lazy pages) needs it */
  uffdNoncoop: z.boolean(),
});
export type CriuFeatures = z.infer<typeof CriuFeatures>;

export const CriuReport = z.object({
  version: z.string().max(64),
  /** `criu check` passed */
  usable: z.boolean(),
  features: CriuFeatures,
});
export type CriuReport = z.infer<typeof CriuReport>;

export const AgentIdentity = z.object({
  version: z.string().max(64),
  pid: z.number().int().positive(),
  startedAt: ms,
});

/** What an agent did when its lease ran out (it reports these until a scheduler saw them). */
export const FenceEvent = z.object({
  id: z.string().max(64),
  at: z.number().int().nonnegative(),
  action: z.enum(['stop', 'freeze']),
  /** the HA-protected containers it stopped or froze */
  containers: z.array(Name).max(1500),
  /** how long the lease had been expired when it acted, in ms */
  lateMs: z.number().nonnegative(),
  /** who acted: the agent itself, or its fence guard while no agent ran */
  by: z.enum(['agent', 'guard']).default('agent'),
});
export type FenceEvent = z.infer<typeof FenceEvent>;

/** A copy on a host that the cluster has superseded: the workload is owned by `owner` at `epoch`. */
export const SupersededCopy = z.object({
  id: WorkloadId,
  owner: HostId.nullable(),
  epoch: z.number().int().positive(),
});
export type SupersededCopy = z.infer<typeof SupersededCopy>;

/**
 * A scheduler's acknowledgement of report `seq` (on ferry.host.<id>.lease): the lease lasts
 * `leaseMs` from that report's sending. `superseded` names the host's copies it must not keep
 * running (the agent checks each against its own record before it stops one).
 */
export const LeaseAck = z.object({
  seq: z.number().int().nonnegative(),
  leaseMs: z.number().int().positive().max(3_600_000),
  superseded: z.array(SupersededCopy).max(1500).default([]),
});
export type LeaseAck = z.infer<typeof LeaseAck>;

/** Published by every agent on `ferry.host.<hostId>.capacity`, once per report interval. */
export const CapacityReport = z.object({
  v: z.literal(1),
  hostId: HostId,
  hostname: z.string().max(255),
  /** where other agents reach this one for data transfers (rsync, CRIU page server); null: unknown */
  address: z.ipv4().nullable(),
  /** increases by one per report while the agent runs; restarts at 0 with the agent */
  seq: z.number().int().nonnegative(),
  /** agent's clock; the scheduler ages reports by its own receive time */
  sentAt: ms,
  intervalMs: z.number().int().positive().max(3_600_000),
  agent: AgentIdentity,
  cpu: CpuInfo,
  memory: MemoryInfo,
  load: LoadInfo,
  pools: z.array(StoragePoolReport).max(64),
  networks: z.array(NetworkReport).max(64),
  /** null when the host has no working CRIU (it can still run and cold-migrate containers) */
  criu: CriuReport.nullable(),
  templates: z.array(TemplateReport).max(256),
  containers: z.array(ContainerStatus).max(1500),
  /** fencing the agent did and no scheduler has acknowledged yet */
  fencing: z.array(FenceEvent).max(50).default([]),
  /** the storage heartbeat channel (hosts with shared pools) */
  storage: StorageLiveness.optional(),
});
export type CapacityReport = z.infer<typeof CapacityReport>;
