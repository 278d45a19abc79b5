export { Agent } from './agent.ts';
export { AgentConfig, loadAgentConfig } from './config.ts';
export { parseCpuInfo, parseMemInfo, parseLoadAvg } from './inventory/procfs.ts';
