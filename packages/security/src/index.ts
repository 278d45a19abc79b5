export {
  certificatePin,
  ensureClusterCa,
  issueCertificate,
  issueServerCertificate,
  makeKeyAndRequest,
  signCertificateRequest,
  type CertificateNames,
  type CertificatePair,
  type CertificateUsage,
} from './ca.ts';
export { ControlPlaneSecrets, controlPlanePaths, natsNodePaths, type ControlPlanePaths, type NatsNodeOptions } from './control-plane.ts';
export { NatsIdentityStore } from './identities.ts';
export { NATS_ROUTE_SUBJECT, renderNatsAuthorization, renderNatsServerConfig, type NatsClusterConfig, type NatsServerConfig, type NatsUser } from './nats-config.ts';
export {
  REDIS_ADMIN_RULES,
  REDIS_ADMIN_USER,
  REDIS_REPLICA_RULES,
  REDIS_REPLICA_USER,
  REDIS_SENTINEL_RULES,
  REDIS_SENTINEL_USER,
  REDIS_SERVICE_COMMANDS,
  SENTINEL_CLIENT_RULES,
  SENTINEL_PEER_RULES,
  renderSentinelConfig,
  type SentinelConfig,
  RedisPasswords,
  aclUserArgs,
  apiWritableKeys,
  passwordHash,
  redisAclRules,
  redisUserName,
  renderRedisConfig,
  type RedisAclUser,
  type RedisRole,
  type RedisServerConfig,
} from './redis-acl.ts';
