import type { Queue } from 'bullmq';
import type { FailoverRecord, HostRecord, MigrationRecord } from '@ferry/protocol';
import { Counter, Gauge, Histogram, createRegistry, planScoreMetric, type Registry } from '@ferry/runtime';

export interface MetricSources {
  hosts: () => HostRecord[];
  queues: () => Queue[];
  isLeader: () => boolean;
}

const HOST_STATES = ['up', 'suspect', 'down'] as const;
const JOB_STATES = ['waiting', 'active', 'delayed', 'failed', 'prioritized', 'waiting-children'] as const;

/**
 * What a scheduler replica counts. Event counters are per replica (Prometheus sums them); hosts
 * by state, queue depths and leadership are read when scraped.
 */
export class SchedulerMetrics {
  readonly registry: Registry = createRegistry('scheduler');
  readonly reports = new Counter({
    name: 'ferry_capacity_reports_total',
    help: 'Capacity reports received, by result (accepted, rejected) and rejection reason',
    labelNames: ['result', 'reason'] as const,
    registers: [this.registry],
  });
  readonly migrations = new Counter({
    name: 'ferry_migrations_total',
    help: 'Migrations finished, by result (completed, rolled-back, failed) and strategy',
    labelNames: ['result', 'strategy'] as const,
    registers: [this.registry],
  });
  readonly freeze = new Histogram({
    name: 'ferry_migration_freeze_seconds',
    help: 'How long the workload was frozen, per completed live migration (as the agents measured it)',
    labelNames: ['strategy'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'ferry_migration_duration_seconds',
    help: 'Migrations from request to end, by strategy and result',
    labelNames: ['strategy', 'result'] as const,
    buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 900],
    registers: [this.registry],
  });
  readonly failovers = new Counter({
    name: 'ferry_failovers_total',
    help: 'Failovers of dead hosts finished, by result (completed, abandoned)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly restarts = new Counter({
    name: 'ferry_failover_restarts_total',
    help: 'HA workloads handled by failovers, by outcome (restarted, unplaceable, unrecoverable)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly fencing = new Counter({
    name: 'ferry_fence_events_total',
    help: 'Fencing reported by hosts (HA containers stopped or frozen after a lease lapsed), by who acted',
    labelNames: ['by'] as const,
    registers: [this.registry],
  });
  /** records the scores of a plan just made */
  readonly planMade = planScoreMetric(this.registry);

  /** What the scrape-time gauges read; set once the parts exist (until then they read nothing). */
  private sources: MetricSources = { hosts: () => [], queues: () => [], isLeader: () => false };

  observe(sources: MetricSources): void {
    this.sources = sources;
  }

  constructor() {
    const sources = () => this.sources;
    new Gauge({
      name: 'ferry_hosts',
      help: 'Hosts by liveness state, as this replica sees them',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect() {
        const hosts = sources().hosts();
        for (const state of HOST_STATES) this.set({ state }, hosts.filter((h) => h.state === state).length);
      },
    });
    new Gauge({
      name: 'ferry_queue_jobs',
      help: 'BullMQ jobs by queue and state',
      labelNames: ['queue', 'state'] as const,
      registers: [this.registry],
      async collect() {
        for (const queue of sources().queues()) {
          const counts = await queue.getJobCounts(...JOB_STATES);
          for (const state of JOB_STATES) this.set({ queue: queue.name, state }, counts[state] ?? 0);
        }
      },
    });
    new Gauge({
      name: 'ferry_scheduler_leader',
      help: '1 on the replica that holds the leadership (failover detection, automatic rebalancing)',
      registers: [this.registry],
      collect() {
        this.set(sources().isLeader() ? 1 : 0);
      },
    });
  }

  migrationFinished(record: MigrationRecord): void {
    this.migrations.inc({ result: record.state, strategy: record.strategy });
    if (record.finishedAt !== null) this.duration.observe({ strategy: record.strategy, result: record.state }, (record.finishedAt - record.createdAt) / 1000);
    if (record.state === 'completed' && record.freeze.agentMs !== null) this.freeze.observe({ strategy: record.strategy }, record.freeze.agentMs / 1000);
  }

  failoverFinished(record: FailoverRecord): void {
    this.failovers.inc({ result: record.state });
    for (const r of record.restarts) {
      const unrecoverable = record.unrecoverable.some((u) => u.workload === r.workload);
      this.restarts.inc({ outcome: unrecoverable ? 'unrecoverable' : r.status });
    }
  }
}
