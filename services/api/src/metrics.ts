import { Counter, Gauge, Histogram, createRegistry, planScoreMetric, type Registry } from '@ferry/runtime';

/** What the API counts: requests, event streams, plans made, admission refusals. */
export class ApiMetrics {
  readonly registry: Registry = createRegistry('api');
  readonly requests = new Counter({
    name: 'ferry_api_requests_total',
    help: 'HTTP requests by method, route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly requestSeconds = new Histogram({
    name: 'ferry_api_request_seconds',
    help: 'HTTP request durations by route pattern',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly eventsRejected = new Counter({
    name: 'ferry_api_events_rejected_total',
    help: 'Messages on ferry.events.> that were not a known event (dropped, never streamed)',
    registers: [this.registry],
  });
  readonly admissionRefusals = new Counter({
    name: 'ferry_admission_refusals_total',
    help: 'Workload creations refused by HA admission control',
    registers: [this.registry],
  });
  readonly auditFailures = new Counter({
    name: 'ferry_api_audit_write_failures_total',
    help: 'Audit entries that could not be written to Redis (the request was answered; the entry is in the API log)',
    registers: [this.registry],
  });
  /** records the scores of a plan just made */
  readonly planMade = planScoreMetric(this.registry);

  constructor(streams: () => number) {
    new Gauge({
      name: 'ferry_api_event_streams',
      help: 'Clients streaming events now (GET /v1/events)',
      registers: [this.registry],
      collect() {
        this.set(streams());
      },
    });
  }
}
