import type { NatsConnection } from 'nats';
import type { WorkloadSpecInput } from '@ferry/protocol';
import type { ManagedProcess } from '@ferry/deploy';
import { PROD, startLabCluster, type LabCluster } from './lab.ts';
import { labApi, labWorkload } from './workload.ts';

/**
 * What the two fault matrices share (test/faults.test.ts: faults × migration phases;
 * test/faults-failover.test.ts: faults during a failover): a lab cluster with short leases and job
 * locks, a second scheduler replica that takes over a job whose lock lapsed, an observer on NATS,
 * and an HA bystander on a host outside every fault's blast radius, whose process, epoch and tick
 * log must never change.
 */

/** job and workload locks: short, so a stopped scheduler's jobs are taken over within seconds */
export const MATRIX_LOCK_MS = 3_000;

const MATRIX_ENV = {
  FERRY_SUSPECT_AFTER_MS: '1500',
  FERRY_LEASE_MS: '3000',
  FERRY_DOWN_AFTER_MS: '4500',
  FERRY_JOB_LOCK_MS: String(MATRIX_LOCK_MS),
  FERRY_LEADER_TTL_MS: '3000',
};

/** A ferry-workload of 16 MiB on the shared pool, writing its ticks to a log there (the proof of "never two copies"). */
export function tickingWorkload(id: string, address: string, ha: { priority: number } | null, hosts: string[]): WorkloadSpecInput {
  return labWorkload(id, address, {
    command: ['/usr/bin/ferry-workload', '--mem', '16', '--port', '7000', '--tick-log', '/var/log/ticks.log'],
    ha: ha ? { enabled: true, priority: ha.priority } : { enabled: false, priority: 0 },
    placement: { hosts },
  });
}

export interface FaultMatrixLab {
  t: LabCluster;
  nc: NatsConnection;
  /** the running process of that name (nats, redis, scheduler, agent-h2 …) */
  live(name: string): ManagedProcess;
  /** the scheduler replicas running */
  schedulers(): ManagedProcess[];
  close(): Promise<void>;
}

/** The lab of a fault matrix, with its bystander running on `bystander.host` (asked from `askFrom`). */
export async function startFaultMatrix(hosts: string[], bystander: { id: string; address: string; host: string }, askFrom: string): Promise<FaultMatrixLab> {
  const t = await startLabCluster(hosts, [PROD], MATRIX_ENV);
  t.cluster.startScheduler('scheduler-2');
  const nc = await t.cluster.connectNats('observer');
  await labApi(() => t).running(tickingWorkload(bystander.id, bystander.address, { priority: 5 }, [bystander.host]), askFrom);
  return {
    t,
    nc,
    live: (name) => t.cluster.supervisor.list().find((p) => p.name === name && !p.exited)!,
    schedulers: () => t.cluster.supervisor.list().filter((p) => p.name.startsWith('scheduler') && !p.exited),
    close: async () => {
      await nc.close().catch(() => undefined);
      await t.close();
    },
  };
}

/** Prints a matrix's rows as the markdown table the docs keep. */
export function printMatrix(title: string, columns: string[], rows: string[][]): void {
  if (rows.length === 0) return;
  const line = (cells: string[]) => `| ${cells.map((c) => c.replaceAll('|', '/')).join(' | ')} |`;
  console.log(`${title}:\n${[line(columns), `|${columns.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n')}`);
}
