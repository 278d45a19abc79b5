export { startScheduler, type Scheduler } from './scheduler.ts';
export { SchedulerConfig, loadSchedulerConfig } from './config.ts';
export { parseCapacityMessage } from './capacity/intake.ts';
export { PerKeyLimiter } from './capacity/log-limiter.ts';
export { HostTable, stateForSilence } from './hosts/liveness.ts';
