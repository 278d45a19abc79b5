export { ClusterStore } from './cluster-store.ts';
export { HashRecords } from './records.ts';
export { LockLostError, RedisLock, withLock, type LockFence } from './lock.ts';
export { FencedWrites, type WorkloadWrites } from './fenced.ts';
export { MIGRATION_JOB, executePlan, expirePlans, recentlyMoved, savePlan, startPlanMoves, StalePlanError, type PlanMigrationJob } from './plans.ts';
export { AUDIT_CAP, AuditLog, TOKEN_PREFIX, TokenStore, hashToken, newToken } from './access.ts';
export { JoinTokenStore, type JoinTokenRefusal } from './join-tokens.ts';
export { MEASURED_KEPT, MeasuredMigrations } from './measured.ts';
