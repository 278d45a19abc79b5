export { LocalCluster, repoRoot, type ClusterOptions, type AgentOptions } from './cluster.ts';
export { Supervisor, type ManagedProcess, type RestartPolicy } from './supervisor.ts';
export {
  INFRA_RESTART,
  natsClusterView,
  sentinelView,
  startNats,
  startNatsCluster,
  startRedis,
  startRedisSentinel,
  waitForSentinels,
  type EmbeddedNatsCluster,
  type EmbeddedRedis,
  type EmbeddedRedisNode,
  type EmbeddedRedisSentinel,
  type RedisCredentials,
} from './infra.ts';
export { RedisPasswords, REDIS_ADMIN_USER, redisAclRules, redisUserName, apiWritableKeys, type RedisRole } from '@ferry/security';
export { freePort } from '@ferry/runtime';
export { processStartTime, isSameProcessAlive, isRunning } from '@ferry/runtime';
export { Lab, type LabHost, type LabNetwork, type LabOptions } from './lab/lab.ts';
export { serviceEntry } from './paths.ts';
