import { z } from 'zod';
import { HostId, Name } from './ids.ts';
import { CpuInfo } from './cpu.ts';

export const WorkloadId = Name.describe('workload id');

/** Ceilings that no real container reaches: anything above is a typo or an attack. */
export const RESOURCE_LIMITS = {
  vcpus: 512,
  /** the smallest CPU limit: the kernel's minimum CFS quota (1000 µs) per 100 ms period */
  minVcpus: 0.01,
  memoryMiB: 4 * 1024 * 1024,
  diskMiB: 64 * 1024 * 1024,
  pids: 4_194_304,
} as const;

export const Resources = z.strictObject({
  /**
   * CPU quota in cores; fractions allowed (0.5 = half a core). At least 0.01: 1 ms of CPU per
   * 100 ms period, the smallest CFS quota the kernel takes (a smaller one would round to 0 µs).
   */
  vcpus: z.number().min(RESOURCE_LIMITS.minVcpus, `must be at least ${RESOURCE_LIMITS.minVcpus} (1 ms of CPU time per 100 ms)`).max(RESOURCE_LIMITS.vcpus),
  memoryMiB: z.number().int().min(8).max(RESOURCE_LIMITS.memoryMiB),
  /** reserved in the pool for placement; usage is measured and reported */
  diskMiB: z.number().int().min(1).max(RESOURCE_LIMITS.diskMiB),
  pids: z.number().int().min(16).max(RESOURCE_LIMITS.pids).default(1024),
});
export type Resources = z.infer<typeof Resources>;

export const NetworkAttachment = z.strictObject({
  network: Name,
  /** the workload's IPv4 address on that network; it keeps it (and a MAC derived from it) on every host */
  address: z.ipv4(),
});
export type NetworkAttachment = z.infer<typeof NetworkAttachment>;

const LabelKey = z.string().regex(/^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/, 'must be a label key like "tier" or "app.example/role"');

export const WorkloadSpec = z.strictObject({
  id: WorkloadId,
  /** OS template the root filesystem is copied from */
  template: Name,
  command: z.array(z.string().min(1).max(4096)).min(1).max(256),
  env: z
    .array(
      z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*=/, 'must look like NAME=value')
        .max(8192),
    )
    .max(256)
    .default([]),
  resources: Resources,
  networks: z.array(NetworkAttachment).max(8).default([]),
  /** storage pool that holds the private root filesystem */
  pool: Name,
  ha: z
    .strictObject({
      /** restart elsewhere when its host dies */
      enabled: z.boolean().default(false),
      /** higher restarts first */
      priority: z.number().int().min(0).max(1000).default(0),
    })
    .default({ enabled: false, priority: 0 }),
  labels: z.record(LabelKey, z.string().max(256)).default({}),
  placement: z
    .strictObject({
      /** workloads sharing an affinity group prefer one host */
      affinity: z.array(Name).max(16).default([]),
      /** workloads sharing an anti-affinity group never share a host */
      antiAffinity: z.array(Name).max(16).default([]),
      /** when not empty, only these hosts may run it */
      hosts: z.array(HostId).max(64).default([]),
    })
    .default({ affinity: [], antiAffinity: [], hosts: [] }),
});
export type WorkloadSpec = z.infer<typeof WorkloadSpec>;
export type WorkloadSpecInput = z.input<typeof WorkloadSpec>;

/** What a container is doing on its host, as the agent sees it. */
/**
 * migrating: frozen or dumped by a migration that has not ended (it runs again on one host or the
 * other); frozen: paused by fencing (its host lost its lease) until the cluster says thaw or discard.
 */
export const CONTAINER_STATES = ['created', 'running', 'stopped', 'migrating', 'frozen'] as const;
export const ContainerState = z.enum(CONTAINER_STATES);
export type ContainerState = z.infer<typeof ContainerState>;

export const EXIT_REASONS = ['exited', 'oom-killed', 'stopped', 'fenced', 'superseded'] as const;
export const ContainerExit = z.object({
  /**
   * oom-killed: the kernel killed it at its memory limit; stopped: Ferry stopped it; fenced: its
   * host lost its lease; superseded: the cluster runs a newer copy elsewhere; exited: on its own
   */
  reason: z.enum(EXIT_REASONS),
  at: z.number().int().nonnegative(),
});
export type ContainerExit = z.infer<typeof ContainerExit>;

export const ContainerUsage = z.object({
  /** working set: usage minus inactive file cache */
  memoryBytes: z.number().int().nonnegative(),
  memoryLimitBytes: z.number().int().nonnegative(),
  /** cumulative CPU time */
  cpuNanos: z.number().nonnegative(),
  /** average over the last report interval, in percent of one core */
  cpuPercent: z.number().nonnegative(),
  /** bytes used by the root filesystem (measured periodically) */
  diskBytes: z.number().int().nonnegative().nullable(),
  pids: z.number().int().nonnegative(),
});
export type ContainerUsage = z.infer<typeof ContainerUsage>;

export const ContainerStatus = z.object({
  id: WorkloadId,
  state: ContainerState,
  /** bumped by every migration commit; an agent never runs an older epoch than one seen elsewhere */
  epoch: z.number().int().positive(),
  pid: z.number().int().positive().nullable(),
  startedAt: z.number().int().nonnegative().nullable(),
  exit: ContainerExit.nullable(),
  usage: ContainerUsage.nullable(),
  /**
   * the cluster generation (see ClusterGeneration) whose records last confirmed this copy as the
   * workload's own; absent until one did. After Redis lost its data, a copy of an earlier
   * generation without a record is rebuilt from its host, never discarded (docs/failover.md).
   */
  generation: z.string().max(64).optional(),
  /** the workload's spec as the host keeps it: only in `container.status` replies (rebuilding a lost record) */
  spec: WorkloadSpec.optional(),
});
export type ContainerStatus = z.infer<typeof ContainerStatus>;

export const TemplateReport = z.object({
  name: Name,
  version: z.string().max(64),
});
export type TemplateReport = z.infer<typeof TemplateReport>;

/** The scheduler's record of a workload (Redis), the API's view adds the live container status. */
/**
 * `lost`: its host was removed for good with it (DELETE /v1/hosts/:id?force=true); the reason is in `error`.
 * `suspending` → `suspended` → `resuming`: checkpointed to its pool and stopped (it holds no host,
 * only the checkpoint in `suspended`), then restored from it with its memory (docs/suspend.md).
 */
export const WORKLOAD_PHASES = ['pending', 'creating', 'starting', 'running', 'stopping', 'stopped', 'migrating', 'destroying', 'failed', 'lost', 'suspending', 'suspended', 'resuming'] as const;
export const WorkloadPhase = z.enum(WORKLOAD_PHASES);
export type WorkloadPhase = z.infer<typeof WorkloadPhase>;

export const ProblemSchema = z.object({
  field: z.string(),
  code: z.string(),
  message: z.string(),
});
export type Problem = z.infer<typeof ProblemSchema>;

export const PlacementDecision = z.object({
  hostId: HostId,
  /** why this host */
  reason: z.string(),
  /** how many hosts were refused, by reason code */
  refused: z.record(z.string(), z.number().int().nonnegative()),
});
export type PlacementDecision = z.infer<typeof PlacementDecision>;

export const JobRef = z.object({
  id: z.string(),
  name: z.string(),
});
export type JobRef = z.infer<typeof JobRef>;

/**
 * Where a suspended workload's checkpoint is: CRIU images of its memory and processes, next to its
 * root filesystem in its pool. On a local pool only `hostId` can resume it; on a shared pool any
 * host that mounts the pool (proven by probe files) and passes the feasibility checks.
 */
export const SuspendedImage = z.object({
  /** the host that checkpointed it */
  hostId: HostId,
  pool: Name,
  /** the pool was shared (as that host's agent configures it) */
  shared: z.boolean(),
  /** the images directory, as a path on the hosts that mount the pool */
  imagesDir: z.string().max(4096),
  /** bytes of the images (memory, process state) */
  bytes: z.number().int().nonnegative(),
  /** when the dump ended (that host's clock) */
  at: z.number().int().nonnegative(),
  /** the epoch it ran at; a resume runs it at the next */
  epoch: z.number().int().positive(),
});
export type SuspendedImage = z.infer<typeof SuspendedImage>;

export const DESIRED_STATES = ['running', 'stopped', 'suspended'] as const;

export const WorkloadRecord = z.object({
  spec: WorkloadSpec,
  hostId: HostId.nullable(),
  epoch: z.number().int().positive(),
  desired: z.enum(DESIRED_STATES),
  phase: WorkloadPhase,
  placement: PlacementDecision.nullable(),
  lastExit: ContainerExit.nullable(),
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }).nullable(),
  lastJob: JobRef.nullable(),
  /** while migrating: the host it is moving to (its memory is reserved there) */
  migratingTo: HostId.nullable().default(null),
  /** the CPU its processes started (or were last restored) under: a destination must offer as much */
  cpu: CpuInfo.nullable().default(null),
  /** while suspended (and resuming): where its checkpoint is; null otherwise */
  suspended: SuspendedImage.nullish(),
  /** set when the record was rebuilt from a host's copy after the cluster state was lost */
  recovered: z.object({ at: z.number().int().nonnegative(), from: HostId, epoch: z.number().int().positive(), generation: z.string().max(64) }).nullish(),
  createdAt: z.number().int().nonnegative(),
  updatedAt: z.number().int().nonnegative(),
});
export type WorkloadRecord = z.infer<typeof WorkloadRecord>;

/** Published on ferry.events.workloads.<id> whenever a workload's phase changes. */
export const WorkloadEvent = z.object({
  type: z.enum(['workload.phase', 'workload.destroyed']),
  workloadId: WorkloadId,
  phase: WorkloadPhase.nullable(),
  hostId: HostId.nullable(),
  at: z.number().int().nonnegative(),
  jobId: z.string().nullable(),
  reason: z.string().optional(),
});
export type WorkloadEvent = z.infer<typeof WorkloadEvent>;
