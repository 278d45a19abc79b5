export { ensureClusterCa, issueServerCertificate, type CertificatePair } from './ca.ts';
export { ControlPlaneSecrets } from './control-plane.ts';
export { NatsIdentityStore } from './identities.ts';
export { renderNatsConfig, type NatsServerConfig, type NatsUser } from './nats-config.ts';
