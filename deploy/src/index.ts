export { LocalCluster, repoRoot, type ClusterOptions, type AgentOptions } from './cluster.ts';
export { Supervisor, type ManagedProcess } from './supervisor.ts';
export { startNats, startRedis } from './infra.ts';
export { freePort } from './ports.ts';
export { processStartTime, isSameProcessAlive, isRunning } from './proc.ts';
export { Lab, type LabHost, type LabNetwork, type LabOptions } from './lab/lab.ts';
export { serviceEntry } from './paths.ts';
