export { ClusterStore } from './cluster-store.ts';
export { HashRecords } from './records.ts';
export { RedisLock, withLock } from './lock.ts';
export { executePlan, StalePlanError } from './plans.ts';
