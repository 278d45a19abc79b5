export { ClusterStore } from './cluster-store.ts';
export { HashRecords } from './records.ts';
export { RedisLock } from './lock.ts';
