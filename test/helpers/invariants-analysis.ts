/**
 * The pure half of the invariant checker (test/helpers/invariants.ts): what a sample of the lab's
 * processes, the cluster's records and a workload's tick log mean. No I/O here, so every rule is
 * unit-tested (invariants-analysis.unit.test.ts) apart from the lab that feeds it.
 */

/** One workload's container on one lab host at one sample, from its cgroup. */
export interface Copy {
  host: string;
  workload: string;
  /** pids in the container's cgroup */
  pids: number[];
  /**
   * Whether any of them can run: the cgroup is not frozen and at least one process is not stopped
   * (`T`), traced (`t`: CRIU holds a dumped or lazily served task that way) or dead (`Z`, `X`).
   */
  running: boolean;
}

export interface Sample {
  at: number;
  copies: Copy[];
}

/** A workload seen running on two hosts (or more) at one sample. */
export interface DuplicateRun {
  at: number;
  workload: string;
  hosts: string[];
  /** what each copy's processes were when seen (state letters, frozen): the failure prints it */
  seen?: string;
}

/** A process state letter (the third field of /proc/<pid>/stat) that can still execute the workload. */
export function stateCanRun(state: string): boolean {
  return !['T', 't', 'Z', 'X', 'x'].includes(state);
}

/** PF_EXITING in the flags of /proc/<pid>/stat: the task is in do_exit. */
const PF_EXITING = 0x4;
/** SIGKILL's bit in the SigPnd / ShdPnd masks of /proc/<pid>/status. */
const SIGKILL_BIT = 1n << 8n;

/**
 * Whether a process (its /proc/<pid>/stat and /proc/<pid>/status) can still execute the
 * workload's code: a runnable state letter, and not dying — a task with SIGKILL pending or already
 * exiting never returns to user space. (runc destroys a lazily dumped source that way once the
 * destination took every page: the tasks show `R` for a moment on their way out, while the
 * destination already runs the workload.)
 */
export function processCanRun(stat: string, status: string): boolean {
  const state = statState(stat);
  if (state === null || !stateCanRun(state)) return false;
  const flags = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[6]);
  if (Number.isFinite(flags) && (flags & PF_EXITING) !== 0) return false;
  for (const field of ['SigPnd', 'ShdPnd']) {
    const mask = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1];
    if (mask && (BigInt(`0x${mask}`) & SIGKILL_BIT) !== 0n) return false;
  }
  return true;
}

/** Parses the state letter out of /proc/<pid>/stat (the command may hold spaces and parentheses). */
export function statState(stat: string): string | null {
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  return stat.slice(close + 2, close + 3) || null;
}

/** Workloads that run on more than one host in the same sample. */
export function duplicatesIn(sample: Sample): DuplicateRun[] {
  const hostsOf = new Map<string, string[]>();
  for (const copy of sample.copies) {
    if (!copy.running) continue;
    hostsOf.set(copy.workload, [...(hostsOf.get(copy.workload) ?? []), copy.host]);
  }
  const out: DuplicateRun[] = [];
  for (const [workload, hosts] of hostsOf) if (new Set(hosts).size > 1) out.push({ at: sample.at, workload, hosts: [...new Set(hosts)].sort() });
  return out;
}

/** Where each workload runs in a sample: workload → hosts with a running copy. */
export function runningHosts(sample: Sample): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const copy of sample.copies) if (copy.running) out.set(copy.workload, [...new Set([...(out.get(copy.workload) ?? []), copy.host])].sort());
  return out;
}

export interface TickRun {
  /** microseconds (the workload's wall clock) of its first and last line */
  from: number;
  to: number;
  /** the last tick number of the run */
  ticks: number;
}

/**
 * The workload's tick log on shared storage: one line per 10 ms, "<microseconds> <tick>", ticks
 * counting from 1 in every run. Two copies running at once would interleave their lines; this
 * returns the runs and every place where that happened (or time went backwards between runs).
 * A torn last line (a copy killed mid-write) is ignored.
 */
export function analyzeTickLog(text: string): { runs: TickRun[]; overlaps: string[] } {
  const lines = text
    .trim()
    .split('\n')
    .filter((l) => /^\d+ \d+$/.test(l))
    .map((l) => l.split(' ').map(Number) as [number, number]);
  const runs: TickRun[] = [];
  const overlaps: string[] = [];
  let previous: [number, number] | null = null;
  for (const [ts, tick] of lines) {
    if (!previous || tick === 1) {
      if (previous && ts <= previous[0]) overlaps.push(`a run starting at ${ts} began before the previous line (${previous[0]})`);
      runs.push({ from: ts, to: ts, ticks: 1 });
    } else if (tick !== previous[1] + 1) {
      overlaps.push(`tick ${tick} after tick ${previous[1]}: two writers at once`);
    }
    const run = runs[runs.length - 1]!;
    run.to = ts;
    run.ticks = tick;
    previous = [ts, tick];
  }
  return { runs, overlaps };
}

/** What the checker needs of a workload record (a subset of the API's WorkloadView). */
export interface RecordView {
  id: string;
  hostId: string | null;
  phase: string;
  epoch: number;
  error: { code: string; message: string } | null;
  observed: { state: string; epoch: number } | null;
  /**
   * why it does not run, when its host is down and a failover reported it (unrecoverable on a
   * local pool, unplaceable, unprotected): the record keeps its phase and dead host then
   */
  reported?: string | undefined;
}

/** The failover's word on a dead host's workloads that it did not restart, by workload. */
export function reportedByFailovers(
  failovers: Array<{
    hostId: string;
    restarts: Array<{ workload: string; status: string; reason?: string | null | undefined }>;
    unrecoverable: Array<{ workload: string; reason: string }>;
    unprotected: string[];
  }>,
  downHosts: Set<string>,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of failovers) {
    if (!downHosts.has(f.hostId)) continue;
    for (const r of f.restarts) if (r.status !== 'restarted' && r.status !== 'pending') out.set(r.workload, `${r.status} after ${f.hostId} failed: ${r.reason ?? ''}`);
    for (const u of f.unrecoverable) out.set(u.workload, `unrecoverable: ${u.reason}`);
    for (const w of f.unprotected) out.set(w, `unprotected (no HA) on ${f.hostId}, which failed`);
  }
  return out;
}

/**
 * (b) every workload known before the fault is running, or reported with a reason: `lost` or
 * `failed` with an error. `gone` are workloads the test itself deleted or stopped on purpose.
 */
export function unaccounted(before: string[], records: RecordView[], allowed: { gone?: string[]; stopped?: string[] } = {}): string[] {
  const byId = new Map(records.map((r) => [r.id, r]));
  const problems: string[] = [];
  for (const id of before) {
    const r = byId.get(id);
    if (!r) {
      if (!allowed.gone?.includes(id)) problems.push(`${id}: known before, no record after`);
      continue;
    }
    if (r.reported) continue;
    if (r.phase === 'running') continue;
    if ((r.phase === 'lost' || r.phase === 'failed') && r.error) continue;
    if (r.phase === 'stopped' && allowed.stopped?.includes(id)) continue;
    problems.push(`${id}: ${r.phase}${r.error ? ` (${r.error.code})` : ''}, neither running nor reported with a reason`);
  }
  return problems;
}

/**
 * (c) records and reality agree: a running record runs on exactly its host and the host reports it
 * running at the record's epoch; any other record runs nowhere; nothing runs without a record.
 */
export function disagreements(records: RecordView[], where: Map<string, string[]>): string[] {
  const problems: string[] = [];
  const known = new Set(records.map((r) => r.id));
  for (const r of records) {
    const hosts = where.get(r.id) ?? [];
    if (r.reported) {
      if (hosts.length > 0) problems.push(`${r.id}: reported as not running (${r.reported}), runs on [${hosts.join(', ')}]`);
    } else if (r.phase === 'running') {
      if (hosts.length !== 1 || hosts[0] !== r.hostId) problems.push(`${r.id}: record says running on ${r.hostId}, runs on [${hosts.join(', ')}]`);
      if (r.observed?.state !== 'running') problems.push(`${r.id}: record says running, its host reports ${r.observed?.state ?? 'nothing'}`);
      else if (r.observed.epoch !== r.epoch) problems.push(`${r.id}: record at epoch ${r.epoch}, its host reports epoch ${r.observed.epoch}`);
    } else if (hosts.length > 0) {
      problems.push(`${r.id}: record says ${r.phase}, runs on [${hosts.join(', ')}]`);
    }
  }
  for (const [id, hosts] of where) if (!known.has(id)) problems.push(`${id}: runs on [${hosts.join(', ')}] without a record`);
  return problems;
}

/** A process a migration started, as /proc shows it. */
export interface ProcessLine {
  pid: number;
  cmdline: string[];
}

/**
 * (d) processes a migration starts, scoped to one lab (every path they name is under `labDir`):
 * the destination's one-time rsync daemon (its config in `<data>/migrations/<id>/`), the source's
 * rsync pushes (`rsync://…`, from a container directory), CRIU page servers and lazy-pages
 * daemons, and a source's `runc checkpoint` still serving pages (`ckpt-<migration>` images).
 */
export function migrationProcesses(processes: ProcessLine[], labDir: string): ProcessLine[] {
  const prefix = labDir.replace(/\/$/, '') + '/';
  return processes.filter(({ cmdline }) => {
    if (!cmdline.some((a) => a.includes(prefix))) return false;
    const binary = (cmdline[0] ?? '').split('/').pop() ?? '';
    const migrationPath = cmdline.some((a) => /\/migrations\/m-[^/]+/.test(a) || /\/ckpt-m-/.test(a));
    if (binary === 'rsync') return migrationPath || cmdline.some((a) => a.startsWith('rsync://'));
    if (binary === 'criu') return cmdline.includes('page-server') || cmdline.includes('lazy-pages') || migrationPath;
    if (binary === 'runc') return cmdline.includes('checkpoint') && migrationPath;
    return false;
  });
}
