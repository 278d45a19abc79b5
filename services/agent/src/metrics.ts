import type { ContainerState } from '@ferry/protocol';
import { Counter, Gauge, Histogram, createRegistry, type Registry } from '@ferry/runtime';

export interface AgentMetricSources {
  containerStates: () => ContainerState[];
  /** ms left on the lease (negative once lapsed) */
  leaseRemainingMs: () => number;
}

/** What a host agent counts; container states and the lease are read when scraped. */
export class AgentMetrics {
  readonly registry: Registry = createRegistry('agent');
  readonly commands = new Counter({
    name: 'ferry_agent_commands_total',
    help: 'Commands from the scheduler, by command and result (ok, or the error code)',
    labelNames: ['command', 'result'] as const,
    registers: [this.registry],
  });
  readonly commandSeconds = new Histogram({
    name: 'ferry_agent_command_seconds',
    help: 'How long commands took, by command',
    labelNames: ['command'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
    registers: [this.registry],
  });
  readonly reports = new Counter({ name: 'ferry_agent_reports_total', help: 'Capacity reports published', registers: [this.registry] });
  readonly reportSeconds = new Histogram({
    name: 'ferry_agent_report_build_seconds',
    help: 'Time to build a capacity report (a slow one delays the lease renewal)',
    // fine between 10 ms and 1 s, where a host with hundreds of containers lands (bench/density reads p50/p99 from these)
    buckets: [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly fencing = new Counter({
    name: 'ferry_agent_fence_events_total',
    help: 'Times this host fenced its HA containers, by who acted (agent, guard)',
    labelNames: ['by'] as const,
    registers: [this.registry],
  });
  private sources: AgentMetricSources = { containerStates: () => [], leaseRemainingMs: () => 0 };

  constructor() {
    const sources = () => this.sources;
    new Gauge({
      name: 'ferry_agent_containers',
      help: 'Containers on this host by state',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        const counts = new Map<string, number>();
        for (const state of sources().containerStates()) counts.set(state, (counts.get(state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'ferry_agent_lease_remaining_seconds',
      help: 'Seconds left on the lease (negative: lapsed, HA containers fenced)',
      registers: [this.registry],
      collect() {
        this.set(sources().leaseRemainingMs() / 1000);
      },
    });
  }

  observe(sources: AgentMetricSources): void {
    this.sources = sources;
  }
}
