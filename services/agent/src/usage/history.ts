import { USAGE_SAMPLE_MS, USAGE_SAMPLES, type CapacityReport, type UsageReply, type UsageSample } from '@ferry/protocol';

/**
 * The last hour of this host's usage and its containers', one sample a minute, in memory (an
 * agent restart starts it again: the charts are a view, not a record). Fed every capacity report;
 * keeps the first report of each minute, plus the latest report, so a chart has its newest point
 * at once. A container gone for an hour is forgotten.
 */
export class UsageHistory {
  private readonly host: UsageSample[] = [];
  private readonly containers = new Map<string, UsageSample[]>();
  private latest: { host: UsageSample; containers: Map<string, UsageSample> } | null = null;

  constructor(
    private readonly sampleMs = USAGE_SAMPLE_MS,
    private readonly samples = USAGE_SAMPLES,
  ) {}

  /** One capacity report (every second): the latest always, a kept sample once per `sampleMs`. */
  record(report: Pick<CapacityReport, 'sentAt' | 'memory' | 'containers'>): void {
    const at = report.sentAt;
    const containers = new Map<string, UsageSample>();
    for (const c of report.containers) {
      if (!c.usage) continue;
      containers.set(c.id, { at, cpuPercent: c.usage.cpuPercent, memoryBytes: c.usage.memoryBytes, diskBytes: c.usage.diskBytes, pids: c.usage.pids });
    }
    const sum = (pick: (s: UsageSample) => number) => [...containers.values()].reduce((total, s) => total + pick(s), 0);
    const host: UsageSample = {
      at,
      cpuPercent: round(sum((s) => s.cpuPercent)),
      memoryBytes: Math.max(0, report.memory.totalBytes - report.memory.availableBytes),
      diskBytes: sum((s) => s.diskBytes ?? 0),
      pids: sum((s) => s.pids),
    };
    this.latest = { host, containers };
    this.keep(this.host, host);
    for (const [id, sample] of containers) {
      const ring = this.containers.get(id) ?? [];
      this.keep(ring, sample);
      this.containers.set(id, ring);
    }
    const oldest = at - this.sampleMs * this.samples;
    for (const [id, ring] of this.containers) if ((ring.at(-1)?.at ?? 0) < oldest) this.containers.delete(id);
  }

  /** A series keeps its first sample, then one each `sampleMs`. */
  private keep(ring: UsageSample[], sample: UsageSample): void {
    const last = ring.at(-1);
    if (last && sample.at - last.at < this.sampleMs) return;
    push(ring, sample, this.samples);
  }

  /** The hour of the host, and of one container when asked (null when it had none here). */
  reply(hostId: string, workloadId?: string): UsageReply {
    const withLatest = (ring: UsageSample[], latest: UsageSample | undefined) => (latest && ring.at(-1)?.at !== latest.at ? [...ring, latest] : [...ring]);
    let workload: UsageSample[] | null = null;
    if (workloadId !== undefined) {
      const ring = this.containers.get(workloadId);
      const latest = this.latest?.containers.get(workloadId);
      workload = ring || latest ? withLatest(ring ?? [], latest) : null;
    }
    return { hostId, sampleMs: this.sampleMs, host: withLatest(this.host, this.latest?.host), workload };
  }
}

const round = (value: number) => Math.round(value * 100) / 100;

function push<T>(ring: T[], value: T, size: number): void {
  ring.push(value);
  if (ring.length > size) ring.splice(0, ring.length - size);
}
