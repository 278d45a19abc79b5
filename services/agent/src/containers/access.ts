import type { ContainerStatus, NetworkReport } from '@ferry/protocol';
import type { PoolConfig } from '../config.ts';
import type { ContainerRecord } from './records.ts';

/** Paths of a container's bundle (config.json, pid file, console log). */
export interface BundlePaths {
  dir: string;
  pidFile: string;
  consoleLog: string;
}

/**
 * What every part that acts on one container uses of the container manager (ContainerManager has
 * it all): the workload's mutex, its record, its status, its pool and bundle, the host's networks.
 * The migration's source and destination halves and suspend/resume each add the few more they need.
 */
export interface ContainerAccess {
  /** runs `work` under the workload's mutex (one operation per container at a time) */
  exclusive<T>(workloadId: string, work: () => Promise<T>): Promise<T>;
  record(workloadId: string): ContainerRecord | undefined;
  save(record: ContainerRecord): Promise<ContainerRecord>;
  /** drops the container's record (the pool's files stay: they are the caller's) */
  forget(workloadId: string): Promise<void>;
  statusOfRecord(record: ContainerRecord): Promise<ContainerStatus>;
  pool(id: string): PoolConfig | undefined;
  networks(): NetworkReport[];
  bundle(workloadId: string): BundlePaths;
}
