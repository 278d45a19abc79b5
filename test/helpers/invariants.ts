import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FailoverRecord, HostListResponse, MigrationRecord, WorkloadView } from '@ferry/protocol';
import type { LabCluster } from './lab.ts';
import {
  analyzeTickLog,
  disagreements,
  duplicatesIn,
  migrationProcesses,
  reportedByFailovers,
  runningHosts,
  processCanRun,
  stateCanRun,
  statState,
  unaccounted,
  type Copy,
  type DuplicateRun,
  type ProcessLine,
  type RecordView,
  type Sample,
} from './invariants-analysis.ts';

export { analyzeTickLog } from './invariants-analysis.ts';

const V2 = existsSync('/sys/fs/cgroup/cgroup.controllers');

const readText = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};
const dirs = (path: string): string[] => {
  try {
    return readdirSync(path).filter((e) => {
      try {
        return statSync(join(path, e)).isDirectory();
      } catch {
        return false;
      }
    });
  } catch {
    return [];
  }
};

/** The runs and overlaps of a tick log file on disk (see analyzeTickLog). */
export function runsOf(file: string): ReturnType<typeof analyzeTickLog> {
  return analyzeTickLog(readFileSync(file, 'utf8'));
}

export interface CheckOptions {
  /** workloads the test deleted on purpose: no record after is fine */
  gone?: string[];
  /** workloads the test stopped on purpose */
  stopped?: string[];
  /** workloads allowed to run twice (a test of failed fencing shows two copies on purpose) */
  duplicatesAllowed?: string[];
  /** how long recovery may take before (b), (c) and (d) must hold (default 30 s) */
  recoverMs?: number;
}

export interface CheckSummary {
  samples: number;
  /** longest gap between two samples, ms */
  maxGapMs: number;
  workloads: string[];
  tickLogs: Record<string, { runs: number; ticks: number }>;
  recoveredInMs: number;
}

/**
 * Watches a lab cluster for the invariants of issue 13 while a test runs faults against it:
 *
 * (a) no workload runs on two hosts at any sampled moment — every ~150 ms each lab host's container
 *     cgroups (`/ferry-lab-<id>/<host>/<workload>`, what runc and the fence guard use) are read:
 *     pids, process states and the freezer; a copy whose processes are all stopped, traced (CRIU
 *     holding a dumped task) or frozen does not run. A sample that shows one workload on two hosts
 *     is read again at once and recorded only if it still does. For workloads with a tick log on
 *     the shared pool (`--tick-log`), the log is the proof: interleaved runs are two writers.
 * (b) every workload known when the checker started is running afterwards, or reported with a
 *     reason: `lost` / `failed` with an error, or — on a host that is down — listed by its failover
 *     as unrecoverable, unplaceable or unprotected (such a record keeps its phase and dead host).
 * (c) once recovered, records and reality agree: a running record runs on its host only, at the
 *     epoch its host reports; nothing else runs.
 * (d) nothing a migration started outlives it once every migration ended: no rsync daemon or push,
 *     CRIU page server or lazy-pages daemon, or lazy `runc checkpoint` of this lab; no staging
 *     directory (`<data>/migrations/<id>`), no checkpoint images (`<pool>/containers/<id>/ckpt-*`),
 *     and no copied root filesystem on a local pool of a host that does not own the workload.
 *
 * Start it once the workloads exist (`start()`), run the fault, then `await check()`.
 */
export class InvariantChecker {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private stopped = false;
  private readonly duplicates: DuplicateRun[] = [];
  private samples = 0;
  private lastSampleAt = 0;
  private maxGapMs = 0;
  private known: string[] = [];
  private records: RecordView[] = [];
  private specs = new Map<string, WorkloadView['spec']>();
  private recordsAt = 0;
  /** how long each tick log was at the start: only what was written since counts */
  private readonly tickOffsets = new Map<string, number>();
  /** staging directories there before the fault (an earlier fault's leftovers, checked by that fault's own check) */
  private readonly stagingBefore = new Set<string>();
  private readonly startedAt = Date.now();

  constructor(
    private readonly t: LabCluster,
    private readonly o: { everyMs?: number; recordsEveryMs?: number } = {},
  ) {}

  /** Reads the records (the workloads known "before the fault") and starts sampling. */
  async start(): Promise<this> {
    await this.refreshRecords(true);
    this.known = this.records.map((r) => r.id);
    for (const [id, file] of this.tickLogs()) this.tickOffsets.set(id, statSync(file).size);
    for (const host of this.t.lab.hosts) for (const id of dirs(join(host.dir, 'data', 'migrations'))) this.stagingBefore.add(`${host.id}/${id}`);
    this.schedule();
    return this;
  }

  /** Starts a checker on a lab cluster. */
  static async start(t: LabCluster, o: { everyMs?: number } = {}): Promise<InvariantChecker> {
    return new InvariantChecker(t, o).start();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.o.everyMs ?? 150);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const sample = this.sample();
      for (const dup of duplicatesIn(sample)) {
        if (this.confirm(dup)) this.duplicates.push(dup);
      }
      const now = Date.now();
      if (this.lastSampleAt) this.maxGapMs = Math.max(this.maxGapMs, now - this.lastSampleAt);
      this.lastSampleAt = now;
      this.samples++;
      if (now - this.recordsAt >= (this.o.recordsEveryMs ?? 1_000)) await this.refreshRecords(false);
    } finally {
      this.running = false;
      this.schedule();
    }
  }

  /** A duplicate seen again when read a second time, right away (with what was seen then). */
  private confirm(dup: DuplicateRun): boolean {
    const again = dup.hosts.map((host) => this.inspect(host, dup.workload));
    dup.seen = again.map((a) => a.seen).join('; ');
    return again.filter((a) => a.copy.running).length > 1;
  }

  private cgroupDir(host: string): string {
    return V2 ? `/sys/fs/cgroup/ferry-lab-${this.t.lab.id}/${host}` : `/sys/fs/cgroup/freezer/ferry-lab-${this.t.lab.id}/${host}`;
  }

  private copyOf(host: string, workload: string): Copy {
    return this.inspect(host, workload).copy;
  }

  /** A copy, and how it looked (each pid's state letter, `k` when dying; `frozen`): printed with a duplicate. */
  private inspect(host: string, workload: string): { copy: Copy; seen: string } {
    const dir = join(this.cgroupDir(host), workload);
    const pids = (readText(join(dir, 'cgroup.procs')) ?? '').split('\n').filter(Boolean).map(Number);
    const frozen = V2 ? /\bfrozen 1\b/.test(readText(join(dir, 'cgroup.events')) ?? '') : /FROZEN|FREEZING/.test(readText(join(dir, 'freezer.state')) ?? '');
    const states = pids.map((pid) => {
      const stat = readText(`/proc/${pid}/stat`) ?? '';
      const canRun = processCanRun(stat, readText(`/proc/${pid}/status`) ?? '');
      return { pid, canRun, letter: statState(stat) ?? '?' };
    });
    const running = !frozen && states.some((s) => s.canRun);
    const seen = `${host}: ${frozen ? 'frozen, ' : ''}${states.map((s) => `${s.pid}${s.letter}${s.canRun || !stateCanRun(s.letter) ? '' : '(dying)'}`).join(' ')}`;
    return { copy: { host, workload, pids, running }, seen };
  }

  /** Every workload's container on every lab host, now. */
  sample(): Sample {
    const copies: Copy[] = [];
    const at = Date.now();
    for (const host of this.t.lab.hosts) {
      for (const workload of dirs(this.cgroupDir(host.id))) {
        const copy = this.copyOf(host.id, workload);
        if (copy.pids.length > 0) copies.push(copy);
      }
    }
    return { at, copies };
  }

  private async refreshRecords(required: boolean): Promise<void> {
    try {
      const workloads = await this.t.cluster.list<WorkloadView>('/v1/workloads', 'workloads');
      this.records = workloads.map(viewOf);
      for (const w of workloads) this.specs.set(w.spec.id, w.spec);
      this.recordsAt = Date.now();
    } catch (err) {
      if (required) throw err;
      this.recordsAt = Date.now(); // Redis or the API away (a fault under test): try again later
    }
  }

  /** Tick logs on the shared pool of the workloads that write one (`--tick-log PATH`). */
  private tickLogs(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [id, spec] of this.specs) {
      const at = spec.command.indexOf('--tick-log');
      if (spec.pool !== 'shared' || at < 0 || !spec.command[at + 1]) continue;
      const file = join(this.t.lab.sharedPool, 'containers', id, 'rootfs', spec.command[at + 1]!);
      if (existsSync(file)) out.set(id, file);
    }
    return out;
  }

  /** (d): what migrations left behind, now (empty while none is in flight and all cleaned up). */
  leftovers(migrations: MigrationRecord[]): string[] {
    const problems: string[] = [];
    const active = migrations.filter((m) => !['completed', 'rolled-back', 'failed'].includes(m.state));
    for (const m of active) problems.push(`migration ${m.id} not ended (${m.state}, ${m.phase})`);
    const processes: ProcessLine[] = [];
    for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
      const cmdline = readText(`/proc/${entry}/cmdline`);
      if (cmdline) processes.push({ pid: Number(entry), cmdline: cmdline.split('\0').filter(Boolean) });
    }
    for (const p of migrationProcesses(processes, this.t.lab.dir)) problems.push(`pid ${p.pid} outlives its migration: ${p.cmdline.join(' ').slice(0, 300)}`);
    const owner = new Map(this.records.map((r) => [r.id, r.hostId]));
    for (const host of this.t.lab.hosts) {
      for (const id of dirs(join(host.dir, 'data', 'migrations'))) if (!this.stagingBefore.has(`${host.id}/${id}`)) problems.push(`${host.id}: staging directory ${id} left`);
      const local = join(host.dir, 'pool', 'containers');
      for (const id of dirs(local)) {
        for (const ckpt of dirs(join(local, id)).filter((d) => d.startsWith('ckpt-'))) problems.push(`${host.id}: checkpoint images ${id}/${ckpt} left`);
        const spec = this.specs.get(id);
        if (spec?.pool === 'local' && owner.has(id) && owner.get(id) !== host.id) problems.push(`${host.id}: a copy of ${id}'s root filesystem left (owner ${owner.get(id)})`);
      }
    }
    const shared = join(this.t.lab.sharedPool, 'containers');
    for (const id of dirs(shared)) for (const ckpt of dirs(join(shared, id)).filter((d) => d.startsWith('ckpt-'))) problems.push(`shared pool: checkpoint images ${id}/${ckpt} left`);
    return problems;
  }

  /** Stops sampling (check() does it too). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /**
   * Asserts (a)–(d); throws one error listing every violation. (b)–(d) may take until `recoverMs`
   * to hold (a failover, a deferred cleanup); (a) must have held at every sample.
   */
  async check(options: CheckOptions = {}): Promise<CheckSummary> {
    this.stop();
    while (this.running) await sleep(10);
    const allowed = new Set(options.duplicatesAllowed ?? []);
    const problems: string[] = [];
    for (const d of this.duplicates.filter((x) => !allowed.has(x.workload))) problems.push(`(a) ${d.workload} ran on ${d.hosts.join(' and ')} at ${new Date(d.at).toISOString()} (${d.seen ?? ''})`);
    const tickLogs: CheckSummary['tickLogs'] = {};
    await this.refreshRecords(false);
    for (const [id, file] of this.tickLogs()) {
      // from the first whole line written since the start (earlier faults are earlier tests' business)
      const text = readFileSync(file, 'utf8');
      const offset = this.tickOffsets.get(id) ?? 0;
      const { runs, overlaps } = analyzeTickLog(offset === 0 ? text : text.slice(text.indexOf('\n', offset - 1) + 1));
      tickLogs[id] = { runs: runs.length, ticks: runs.reduce((s, r) => s + r.ticks, 0) };
      if (!allowed.has(id)) for (const o of overlaps.slice(0, 3)) problems.push(`(a) ${id}'s tick log: ${o}`);
    }
    const deadline = Date.now() + (options.recoverMs ?? 30_000);
    const recoverFrom = Date.now();
    let last: string[] = [];
    for (;;) {
      last = [];
      try {
        const workloads = await this.t.cluster.list<WorkloadView>('/v1/workloads', 'workloads');
        const { hosts } = await this.t.cluster.get<HostListResponse>('/v1/hosts');
        const { failovers } = await this.t.cluster.get<{ failovers: FailoverRecord[] }>('/v1/failovers');
        const reported = reportedByFailovers(failovers, new Set(hosts.filter((h) => h.state === 'down').map((h) => h.id)));
        this.records = workloads.map((w) => ({ ...viewOf(w), reported: w.hostId && reported.has(w.spec.id) ? reported.get(w.spec.id) : undefined }));
        for (const w of workloads) this.specs.set(w.spec.id, w.spec);
        const { migrations } = await this.t.cluster.get<{ migrations: MigrationRecord[] }>('/v1/migrations');
        const where = runningHosts(this.sample());
        for (const id of allowed) where.delete(id);
        last.push(...unaccounted(this.known, this.records, options).map((p) => `(b) ${p}`));
        last.push(
          ...disagreements(
            this.records.filter((r) => !allowed.has(r.id)),
            where,
          ).map((p) => `(c) ${p}`),
        );
        last.push(...this.leftovers(migrations).map((p) => `(d) ${p}`));
      } catch (err) {
        last.push(`the cluster did not answer: ${(err as Error).message}`);
      }
      if (last.length === 0 || Date.now() > deadline) break;
      await sleep(250);
    }
    problems.push(...last);
    if (problems.length > 0) throw new Error(`invariants violated (${this.samples} samples since ${new Date(this.startedAt).toISOString()}):\n  ${problems.join('\n  ')}`);
    return { samples: this.samples, maxGapMs: this.maxGapMs, workloads: this.known, tickLogs, recoveredInMs: Date.now() - recoverFrom };
  }
}

function viewOf(w: WorkloadView): RecordView {
  return {
    id: w.spec.id,
    hostId: w.hostId,
    phase: w.phase,
    epoch: w.epoch,
    error: w.error ? { code: w.error.code, message: w.error.message } : null,
    observed: w.observed ? { state: w.observed.state, epoch: w.observed.epoch } : null,
  };
}
