/**
 * The change log kept beside a hash of records (the store's changelog.ts): its revision counter,
 * the ids filed by revision, and the highest revision trimmed away.
 */
/**
 * The keys beside a hash that keeps a change log (packages/store/src/changelog.ts): its revision,
 * log and floor, and `ids`, every id of the hash in a sorted set (score 0: byte order), so a page
 * of the list reads its ids with ZRANGEBYLEX rather than every id of the hash.
 */
export const changeLogKeys = (hash: string) => ({ rev: `${hash}:rev`, log: `${hash}:log`, floor: `${hash}:floor`, ids: `${hash}:ids` });
export type ChangeLogKeys = ReturnType<typeof changeLogKeys>;

/**
 * The keys of an index of a hash's ids by one field of their records (the store's
 * field-index.ts): `of`, every id → the value it is filed under; `prefix` + value, a sorted set of
 * the ids holding that value (the workloads by `hostId`: one host's workloads).
 */
export const fieldIndexKeys = (hash: string, field: string) => ({ of: `${hash}:${field}-of`, prefix: `${hash}:${field}=` });
export type FieldIndexKeys = ReturnType<typeof fieldIndexKeys>;
/** the field the workloads hash is indexed by: one host's workloads (GET /v1/workloads?host=) */
export const WORKLOAD_INDEX_FIELD = 'hostId';

/** Redis keys shared by the scheduler (writer) and the API (reader). */
export const redisKeys = (prefix = 'ferry') => ({
  /** hash: host id -> HostRecord JSON */
  hosts: `${prefix}:hosts`,
  /** hash: counter name -> count (capacity reports accepted / rejected by reason) */
  capacityStats: `${prefix}:stats:capacity`,
  /** hash: workload id -> WorkloadRecord JSON */
  workloads: `${prefix}:workloads`,
  /** string with a holder token and a TTL: one operation per workload at a time */
  workloadLock: (id: string) => `${prefix}:lock:workload:${id}`,
  /** hash: migration id -> MigrationRecord JSON */
  migrations: `${prefix}:migrations`,
  /** hash: workload id -> id of its migration in progress (at most one) */
  activeMigrations: `${prefix}:migrations:active`,
  /** set of migration ids whose cancel was requested (the worker checks between and during phases) */
  migrationCancels: `${prefix}:migrations:cancel`,
  /** list, newest first, capped: MeasuredMigration JSON of completed migrations (predictions learn from it) */
  measuredMigrations: `${prefix}:migrations:measured`,
  /** hash: `<migration id>:<step>` -> DeferredMigrationStep JSON (steps waiting for a down host) */
  deferredMigrationSteps: `${prefix}:migrations:deferred`,
  /** hash: host id -> MaintenanceRecord JSON */
  maintenance: `${prefix}:maintenance`,
  /** hash: plan id -> PlanRecord JSON */
  plans: `${prefix}:plans`,
  /** set of plan ids whose cancel was requested (the plan worker starts no further stage of them) */
  planCancels: `${prefix}:plans:cancel`,
  /** list per host, newest first: HostHistoryEntry JSON */
  history: (hostId: string) => `${prefix}:history:${hostId}`,
  /** hash: failover id -> FailoverRecord JSON */
  failovers: `${prefix}:failovers`,
  /** hash: host id -> RemovedHost JSON (hosts removed by an operator; their reports are dropped) */
  removedHosts: `${prefix}:hosts:removed`,
  /** hash: `<host id>/<workload id>` -> CopyToDiscard JSON (copies of deleted workloads on hosts that were away) */
  copyDiscards: `${prefix}:workloads:discard`,
  /**
   * string, written once (SET NX) by the first scheduler that finds it missing: ClusterGeneration
   * JSON. Missing while hosts report copies of another generation = Redis lost its data.
   */
  generation: `${prefix}:cluster:generation`,
  /** held while a placement decision is made and recorded */
  placementLock: `${prefix}:lock:placement`,
  /** hash: SHA-256 (hex) of an API token -> TokenRecord JSON (never the token itself) */
  tokens: `${prefix}:tokens`,
  /** hash: token name -> SHA-256 (hex) of the token (names are unique; revoke by name) */
  tokenNames: `${prefix}:tokens:names`,
  /** hash: token name -> when it was last used (ms; written at most once a minute per API process) */
  tokenUse: `${prefix}:tokens:used`,
  /** stream, capped (~100,000): AuditEntry JSON of every mutating API request */
  audit: `${prefix}:audit`,
  /** string with a TTL (30 s): ConsoleTicketRecord JSON of one console connection not yet made, by SHA-256 (hex) of its ticket; read once (GETDEL) */
  consoleTicket: (digest: string) => `${prefix}:console:ticket:${digest}`,
  /** hash: join token id -> JoinTokenRecord JSON (never the secret) */
  joinTokens: `${prefix}:join-tokens`,
  /** hash: join token id -> JoinTokenUse JSON (a token is used once: HSETNX) */
  joinTokenUse: `${prefix}:join-tokens:used`,
});
