import type { WorkloadView } from '@ferry/protocol';
import { size, table, type Column } from './output.ts';

export const TOP_SORTS = ['cpu', 'memory', 'pids', 'disk', 'name', 'host'] as const;
export type TopSort = (typeof TOP_SORTS)[number];

/** One line of `ferry top`: a workload's latest usage, as its host's last report has it. */
export interface TopRow {
  id: string;
  host: string;
  state: string;
  cpuPercent: number | null;
  cpuLimit: number;
  memoryBytes: number | null;
  memoryLimitBytes: number;
  pids: number | null;
  pidsLimit: number;
  diskBytes: number | null;
  diskLimitBytes: number;
}

export function topRow(w: WorkloadView): TopRow {
  const usage = w.observed?.usage ?? null;
  return {
    id: w.spec.id,
    host: w.hostId ?? '',
    state: w.observed?.state ?? w.phase,
    cpuPercent: usage?.cpuPercent ?? null,
    cpuLimit: w.spec.resources.vcpus,
    memoryBytes: usage?.memoryBytes ?? null,
    memoryLimitBytes: usage?.memoryLimitBytes || w.spec.resources.memoryMiB * 2 ** 20,
    pids: usage?.pids ?? null,
    pidsLimit: w.spec.resources.pids,
    diskBytes: usage?.diskBytes ?? null,
    diskLimitBytes: w.spec.resources.diskMiB * 2 ** 20,
  };
}

/** Busiest first for the usage columns (rows without a figure last), a–z for name and host. */
export function sortTop(rows: TopRow[], by: TopSort): TopRow[] {
  const key: Record<TopSort, (r: TopRow) => number | string | null> = {
    cpu: (r) => r.cpuPercent,
    memory: (r) => r.memoryBytes,
    pids: (r) => r.pids,
    disk: (r) => r.diskBytes,
    name: (r) => r.id,
    host: (r) => r.host,
  };
  const k = key[by];
  return [...rows].sort((a, b) => {
    const x = k(a);
    const y = k(b);
    if (typeof x === 'string' || typeof y === 'string') return String(x).localeCompare(String(y)) || a.id.localeCompare(b.id);
    if (x === y) return a.id.localeCompare(b.id);
    if (x === null) return 1;
    if (y === null) return -1;
    return y - x;
  });
}

const dash = '—';
const of = (used: number | null, limit: number) => `${used === null ? dash : size(used)} / ${size(limit)}`;

export const TOP_COLUMNS: Array<Column<TopRow>> = [
  { header: 'workload', value: (r) => r.id },
  { header: 'host', value: (r) => r.host },
  { header: 'state', value: (r) => r.state },
  // percent of one core, and the quota in cores (like top: 100% is one core busy)
  { header: 'cpu%', value: (r) => (r.cpuPercent === null ? dash : `${r.cpuPercent.toFixed(1)} / ${Math.round(r.cpuLimit * 100)}`) },
  { header: 'memory', value: (r) => of(r.memoryBytes, r.memoryLimitBytes) },
  { header: 'pids', value: (r) => `${r.pids ?? dash} / ${r.pidsLimit}` },
  { header: 'disk', value: (r) => of(r.diskBytes, r.diskLimitBytes) },
];

/** The table `ferry top` prints, with a totals line when there is more than one row. */
export function topTable(rows: TopRow[]): string {
  if (rows.length === 0) return '(no workloads)';
  const sum = (f: (r: TopRow) => number | null) => rows.reduce((acc, r) => acc + (f(r) ?? 0), 0);
  const text = table(rows, TOP_COLUMNS);
  if (rows.length < 2) return text;
  return `${text}\n${rows.length} workloads: cpu ${sum((r) => r.cpuPercent).toFixed(1)}%, memory ${size(sum((r) => r.memoryBytes))}, pids ${sum((r) => r.pids)}, disk ${size(sum((r) => r.diskBytes))}`;
}
