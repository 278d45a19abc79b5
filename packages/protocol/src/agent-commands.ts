import { z } from 'zod';
import { HostId } from './ids.ts';
import { MigrationStrategy } from './migrations.ts';
import { ContainerStatus, SuspendedImage, WorkloadId, WorkloadSpec } from './workloads.ts';
import { ConfirmFailedRequest, ConfirmFailedResult } from './storage-liveness.ts';

/** Commands the scheduler sends an agent by NATS request/reply on ferry.agent.<hostId>.<command>. */
export const AGENT_COMMANDS = [
  'container.create',
  'container.start',
  'container.stop',
  'container.destroy',
  'container.status',
  'container.list',
  'container.thaw',
  'container.adopt',
  'container.stamp',
  'container.suspend',
  'container.resume',
  'migration.prepare',
  'migration.presync',
  'migration.dump',
  'migration.transfer',
  'migration.restore',
  'migration.resume',
  'migration.abort',
  'migration.finish',
  'storage.confirm-failed',
] as const;
export type AgentCommand = (typeof AGENT_COMMANDS)[number];

export const CreateContainerRequest = z.strictObject({ spec: WorkloadSpec, epoch: z.number().int().positive() });
export const ContainerIdRequest = z.strictObject({ id: WorkloadId });
/** `epoch`: the generation this start makes current (every start after the first raises it); omitted: the copy's own */
export const StartContainerRequest = z.strictObject({ id: WorkloadId, epoch: z.number().int().positive().optional() });
export const StopContainerRequest = z.strictObject({
  id: WorkloadId,
  /** SIGTERM, then SIGKILL after this long */
  graceMs: z.number().int().min(0).max(300_000).default(10_000),
});
export const ListContainersRequest = z.strictObject({});

export const DestroyContainerRequest = z.strictObject({
  id: WorkloadId,
  /** a stale copy whose root filesystem (on a shared pool) another host now runs from: leave it */
  keepRootfs: z.boolean().default(false),
});

/**
 * Failover: run a workload whose host died from its root filesystem on a shared pool (no template
 * copy, no memory): a new container record at the new epoch, then start.
 */
export const AdoptContainerRequest = z.strictObject({ spec: WorkloadSpec, epoch: z.number().int().positive(), fromHost: HostId });

/**
 * Suspend to disk: checkpoint the running container into its pool (`<pool>/containers/<id>/suspended`),
 * stop it and release its namespace and cgroup; its root filesystem and the images stay. The host
 * then forgets the container (a suspended workload holds no host). `epoch`: the one it runs at.
 */
export const SuspendContainerRequest = z.strictObject({ id: WorkloadId, epoch: z.number().int().positive() });
/**
 * Resume: restore a suspended workload from its images in the pool (this host's own, or a shared
 * pool another host suspended it to) at the new `epoch`; the images go once it runs.
 */
export const ResumeContainerRequest = z.strictObject({ spec: WorkloadSpec, epoch: z.number().int().positive(), suspendedOn: HostId });

/** Marks these copies as confirmed by the cluster generation `generation` (kept in their records). */
export const StampContainersRequest = z.strictObject({ generation: z.string().min(1).max(64), ids: z.array(WorkloadId).max(1500) });

const MigrationId = z.string().regex(/^m-[a-z0-9-]{1,80}$/);
/** one-time secret of a migration: the destination's rsync daemon admits only its holder */
const Secret = z.string().regex(/^[A-Za-z0-9_-]{32,128}$/);
const Peer = z.strictObject({ hostId: HostId, address: z.ipv4() });

/** Destination: staging area, rsync daemon (and page server) bound to its address for this migration. */
export const PrepareMigrationRequest = z.strictObject({
  migrationId: MigrationId,
  spec: WorkloadSpec,
  epoch: z.number().int().positive(),
  strategy: MigrationStrategy,
  source: Peer,
  secret: Secret,
  /** the scheduler proved (by probe files) that both hosts mount the pool: the root filesystem stays */
  sharedRootfs: z.boolean(),
});
/** The template (name and content version) a root filesystem was made from. */
const RootfsBaseOf = z.object({ template: z.string().max(200), version: z.string().max(200) });

export const PrepareMigrationResult = z.object({
  address: z.ipv4(),
  rsyncPort: z.number().int().min(1).max(65_535),
  pageServerPort: z.number().int().min(1).max(65_535).nullable(),
  /** the root filesystem already there: a shared pool both hosts mount */
  sharedRootfs: z.boolean(),
  /** the page stream's one-time certificate and key (CRIU --tls), made by the destination */
  tls: z.object({ certPem: z.string().max(8192), keyPem: z.string().max(8192) }),
  /** what the root the copy goes into was made from (null: an empty root); lets the presync skip asking again */
  rootfsBase: RootfsBaseOf.nullable().optional(),
});
export type PrepareMigrationResult = z.infer<typeof PrepareMigrationResult>;

const Tls = z.strictObject({
  certPem: z.string().startsWith('-----BEGIN CERTIFICATE-----').max(8192),
  keyPem: z.string().startsWith('-----BEGIN PRIVATE KEY-----').max(8192),
});

const Endpoint = z.strictObject({ address: z.ipv4(), rsyncPort: z.number().int().min(1).max(65_535), pageServerPort: z.number().int().min(1).max(65_535).nullable() });

/** Source: rsync rounds of the root filesystem while the workload runs. */
export const PresyncRequest = z.strictObject({
  migrationId: MigrationId,
  destination: Endpoint,
  secret: Secret,
  sharedRootfs: z.boolean(),
  /** what the destination's prepare said its root was made from (absent: the source asks the destination) */
  destinationBase: RootfsBaseOf.nullable().optional(),
});
/** How long one step of an agent command took (inside the freeze: where its milliseconds go). */
export const AgentStepTime = z.object({ step: z.string().max(120), ms: z.number().nonnegative() });
export type AgentStepTime = z.infer<typeof AgentStepTime>;
const StepTimes = z.array(AgentStepTime).max(32).optional();

export const TransferResult = z.object({ bytes: z.number().int().nonnegative(), ms: z.number().nonnegative(), steps: StepTimes });

/** Source: freeze and checkpoint. */
export const DumpRequest = z.strictObject({
  migrationId: MigrationId,
  strategy: MigrationStrategy,
  destination: Endpoint,
  sharedRootfs: z.boolean(),
  tls: Tls,
});
export const DumpResult = z.object({
  /** the source's clock when the workload stopped running */
  frozenAt: z.number().int(),
  dumpMs: z.number().nonnegative(),
  /** bytes of memory sent during the dump (page server), 0 when they go later (lazy) or by file */
  bytes: z.number().int().nonnegative(),
  /** lazy: where the destination pulls the remaining pages from */
  lazyPagesPort: z.number().int().min(1).max(65_535).nullable(),
  /** the steps from the freeze to the answer */
  steps: StepTimes,
  /** CRIU's own count (its stats-dump image), when it wrote one by the end of the dump */
  criu: z.object({ freezingMs: z.number().nonnegative(), frozenMs: z.number().nonnegative(), memdumpMs: z.number().nonnegative(), memwriteMs: z.number().nonnegative() }).nullable().optional(),
});
export type DumpResult = z.infer<typeof DumpResult>;

/** Source, while frozen: checkpoint images and the final root-filesystem delta to the destination. */
export const FinalTransferRequest = z.strictObject({ migrationId: MigrationId, destination: Endpoint, secret: Secret, sharedRootfs: z.boolean() });

/** Destination: network namespace (same address and MAC), then restore. */
export const RestoreRequest = z.strictObject({
  migrationId: MigrationId,
  strategy: MigrationStrategy,
  source: z.strictObject({ address: z.ipv4(), lazyPagesPort: z.number().int().min(1).max(65_535).nullable() }),
});
export const RestoreResult = z.object({
  /** the destination's clock when the workload ran again */
  restoredAt: z.number().int(),
  restoreMs: z.number().nonnegative(),
  status: ContainerStatus,
  /** the steps up to the workload running again */
  steps: StepTimes,
  /** CRIU's own count (its stats-restore image) */
  criu: z.object({ forkingMs: z.number().nonnegative(), restoreMs: z.number().nonnegative() }).nullable().optional(),
});
export type RestoreResult = z.infer<typeof RestoreResult>;

export const MigrationIdRequest = z.strictObject({ migrationId: MigrationId });
/**
 * Source, rollback: run the workload here again. `readyOnly`: only make it ready to run again
 * (stop serving pages, take its images back; it stays frozen), the rollback's step before the
 * destination's copy is removed. `pagesFrom`: where its pages are when the strategy's dump left
 * them on the destination only (page-server): pulled back from there.
 */
export const ResumeRequest = z.strictObject({
  migrationId: MigrationId,
  readyOnly: z.boolean().optional(),
  pagesFrom: z.strictObject({ destination: Endpoint, secret: Secret }).optional(),
});
export const FinishMigrationRequest = z.strictObject({
  migrationId: MigrationId,
  role: z.enum(['source', 'destination']),
  /** source only: the destination died while pulling pages; stop serving them (a finish waiting for them then ends) */
  abandon: z.boolean().optional(),
});
export const FinishMigrationResult = z.object({
  done: z.boolean(),
  note: z.string().optional(),
  /** post-copy: bytes the source's link sent while the destination pulled the remaining pages */
  lazyBytes: z.number().int().nonnegative().optional(),
  /** post-copy: from the end of the dump until the lazy checkpoint sent its last page and exited */
  lazyMs: z.number().nonnegative().optional(),
  /** where the finish's time went */
  steps: StepTimes,
});

export const agentRequestSchemas = {
  'container.create': CreateContainerRequest,
  'container.start': StartContainerRequest,
  'container.stop': StopContainerRequest,
  'container.destroy': DestroyContainerRequest,
  'container.status': ContainerIdRequest,
  'container.list': ListContainersRequest,
  'container.thaw': ContainerIdRequest,
  'container.adopt': AdoptContainerRequest,
  'container.stamp': StampContainersRequest,
  'container.suspend': SuspendContainerRequest,
  'container.resume': ResumeContainerRequest,
  'migration.prepare': PrepareMigrationRequest,
  'migration.presync': PresyncRequest,
  'migration.dump': DumpRequest,
  'migration.transfer': FinalTransferRequest,
  'migration.restore': RestoreRequest,
  'migration.resume': ResumeRequest,
  'migration.abort': MigrationIdRequest,
  'migration.finish': FinishMigrationRequest,
  'storage.confirm-failed': ConfirmFailedRequest,
} as const satisfies Record<AgentCommand, z.ZodType>;

export type AgentRequest<C extends AgentCommand> = z.input<(typeof agentRequestSchemas)[C]>;

export const agentResultSchemas = {
  'container.create': ContainerStatus,
  'container.start': ContainerStatus,
  'container.stop': ContainerStatus,
  'container.destroy': z.object({ id: WorkloadId, destroyed: z.boolean() }),
  'container.status': ContainerStatus,
  'container.list': z.array(ContainerStatus),
  'container.thaw': ContainerStatus,
  'container.adopt': ContainerStatus,
  'container.stamp': z.object({ stamped: z.array(WorkloadId) }),
  'container.suspend': SuspendedImage,
  'container.resume': ContainerStatus,
  'migration.prepare': PrepareMigrationResult,
  'migration.presync': TransferResult,
  'migration.dump': DumpResult,
  'migration.transfer': TransferResult,
  'migration.restore': RestoreResult,
  'migration.resume': ContainerStatus,
  'migration.abort': FinishMigrationResult,
  'migration.finish': FinishMigrationResult,
  'storage.confirm-failed': ConfirmFailedResult,
} as const satisfies Record<AgentCommand, z.ZodType>;

export type AgentResult<C extends AgentCommand> = z.infer<(typeof agentResultSchemas)[C]>;

/** Stable error codes in agent replies. Retryable ones may succeed if tried again later. */
export const AGENT_ERROR_CODES = ['BAD_REQUEST', 'NOT_FOUND', 'CONFLICT', 'TEMPLATE_MISSING', 'POOL_MISSING', 'NETWORK_MISSING', 'RUNTIME_ERROR', 'BUSY', 'MIGRATION_FAILED'] as const;
export const RETRYABLE_AGENT_ERRORS: ReadonlySet<string> = new Set(['BUSY', 'RUNTIME_ERROR']);

export const AgentError = z.object({
  code: z.enum(AGENT_ERROR_CODES),
  message: z.string(),
  details: z.unknown().optional(),
});
export type AgentError = z.infer<typeof AgentError>;

export const AgentReply = z.discriminatedUnion('ok', [z.object({ ok: z.literal(true), result: z.unknown() }), z.object({ ok: z.literal(false), error: AgentError })]);
export type AgentReply = z.infer<typeof AgentReply>;
