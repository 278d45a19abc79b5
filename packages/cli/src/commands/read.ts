import type { Command } from 'commander';
import type {
  FailoverListResponse,
  FailoverRecord,
  HostHistoryEntry,
  HostListResponse,
  HostView,
  MigrationListResponse,
  MigrationRecord,
  PlanRecord,
  WorkloadListResponse,
  WorkloadView,
} from '@ferry/protocol';
import { notePage, pageRequest, withPaging } from '../pages.ts';
import type { Session } from '../session.ts';
import { details, gib, size, print, seconds, time } from '../output.ts';

/** A finished migration's duration from its first phase (the figure its prediction is of). */
const measuredMs = (m: MigrationRecord): number | null => (m.finishedAt === null ? null : m.finishedAt - (m.timeline.length > 0 ? Math.min(...m.timeline.map((e) => e.startedAt)) : m.createdAt));

/** The read-only views: hosts, workloads, migrations, plans, failovers. */
export function readCommands(program: Command, session: () => Session): void {
  const hosts = program.command('hosts').description('hosts, their state and capacity');
  withPaging(hosts.command('list', { isDefault: true }).description('every host').option('--state <state>', 'only hosts in this state (up, suspect, down, removed…)')).action(
    async (options: { state?: string; limit?: number; cursor?: string }) => {
      const s = session();
      const { items, nextCursor } = await s.api.list<HostView>('/v1/hosts', 'hosts', { state: options.state }, pageRequest(options));
      const data: HostListResponse = { hosts: items, nextCursor };
      print(s.format, data, data.hosts, [
        { header: 'host', value: (h) => h.id },
        { header: 'state', value: (h) => (h.isolated ? `${h.state} (isolated)` : h.state) },
        { header: 'address', value: (h) => h.capacity.address ?? '' },
        { header: 'cpus', value: (h) => h.capacity.cpu.count },
        { header: 'load', value: (h) => h.capacity.load.one.toFixed(2) },
        { header: 'memory free', value: (h) => `${gib(h.capacity.memory.availableBytes)} of ${gib(h.capacity.memory.totalBytes)}` },
        { header: 'containers', value: (h) => h.capacity.containers.length },
        { header: 'maintenance', value: (h) => h.maintenance?.state ?? '' },
      ]);
      notePage(nextCursor);
    },
  );
  hosts
    .command('show <host>')
    .description('one host')
    .action(async (id: string) => {
      const s = session();
      const h = await s.api.get<HostView>(`/v1/hosts/${encodeURIComponent(id)}`);
      print(s.format, h, h.capacity.containers, [
        { header: 'container', value: (c) => c.id },
        { header: 'state', value: (c) => c.state },
        { header: 'epoch', value: (c) => c.epoch },
        { header: 'memory', value: (c) => (c.usage ? size(c.usage.memoryBytes) : '') },
        { header: 'cpu', value: (c) => (c.usage ? `${c.usage.cpuPercent}%` : '') },
      ]);
    });
  hosts
    .command('history <host>')
    .description('state changes, fencing, failovers and restarts of a host')
    .action(async (id: string) => {
      const s = session();
      const data = await s.api.get<{ history: HostHistoryEntry[] }>(`/v1/hosts/${encodeURIComponent(id)}/history`);
      print(s.format, data, data.history, [
        { header: 'at', value: (e) => time(e.at) },
        { header: 'kind', value: (e) => e.kind },
        { header: 'what', value: (e) => e.message },
      ]);
    });

  const workloads = program.command('workloads').description('workloads, where they run, their usage');
  withPaging(
    workloads
      .command('list', { isDefault: true })
      .description('every workload')
      .option('--host <host>', 'only those on this host')
      .option('--phase <phase>', 'only those in this phase (running, stopped, pending…)')
      .option('--label <selector>', 'only those with these labels: key=value or key, comma-separated'),
  ).action(async (options: { host?: string; phase?: string; label?: string; limit?: number; cursor?: string }) => {
    const s = session();
    const { items, nextCursor } = await s.api.list<WorkloadView>('/v1/workloads', 'workloads', { host: options.host, phase: options.phase, label: options.label }, pageRequest(options));
    const data: WorkloadListResponse = { workloads: items, nextCursor };
    print(s.format, data, data.workloads, [
      { header: 'workload', value: (w) => w.spec.id },
      { header: 'host', value: (w) => w.hostId ?? '—' },
      { header: 'phase', value: (w) => w.phase },
      { header: 'epoch', value: (w) => w.epoch },
      { header: 'ha', value: (w) => (w.spec.ha.enabled ? `yes (${w.spec.ha.priority})` : 'no') },
      { header: 'memory', value: (w) => (w.observed?.usage ? `${size(w.observed.usage.memoryBytes)} of ${size(w.observed.usage.memoryLimitBytes)}` : '') },
      { header: 'cpu', value: (w) => (w.observed?.usage ? `${w.observed.usage.cpuPercent}%` : '') },
    ]);
    notePage(nextCursor);
  });
  workloads
    .command('show <workload>')
    .description('one workload')
    .action(async (id: string) => {
      const s = session();
      const w = await s.api.get<WorkloadView>(`/v1/workloads/${encodeURIComponent(id)}`);
      if (s.format === 'table') process.stdout.write(`${workloadDetails(w)}\n`);
      else print(s.format, w, [], []);
    });

  const migrations = program.command('migrations').description('migrations and their timelines');
  withPaging(
    migrations
      .command('list', { isDefault: true })
      .description('every migration, newest first')
      .option('--workload <workload>', 'only this workload’s')
      .option('--state <state>', 'only those in this state (running, completed, rolled-back…)'),
  ).action(async (options: { workload?: string; state?: string; limit?: number; cursor?: string }) => {
    const s = session();
    const { items, nextCursor } = await s.api.list<MigrationRecord>('/v1/migrations', 'migrations', { workload: options.workload, state: options.state }, pageRequest(options));
    const data: MigrationListResponse = { migrations: items, nextCursor };
    print(s.format, data, data.migrations, [
      { header: 'migration', value: (m) => m.id },
      { header: 'workload', value: (m) => m.workloadId },
      { header: 'from → to', value: (m) => `${m.source} → ${m.destination}` },
      { header: 'strategy', value: (m) => m.strategy },
      { header: 'state', value: (m) => m.state },
      { header: 'phase', value: (m) => m.phase },
      // measured next to what was predicted when it was asked for (— where either is missing)
      { header: 'freeze (predicted)', value: (m) => `${seconds(m.freeze.agentMs)} (${seconds(m.predicted?.freezeMs)})` },
      { header: 'total (predicted)', value: (m) => `${seconds(measuredMs(m))} (${seconds(m.predicted ? m.predicted.seconds * 1000 : null)})` },
    ]);
    notePage(nextCursor);
  });
  migrations
    .command('show <migration>')
    .description('one migration: its timeline, phase by phase')
    .action(async (id: string) => {
      const s = session();
      const m = await s.api.get<MigrationRecord>(`/v1/migrations/${encodeURIComponent(id)}`);
      if (s.format === 'table') {
        process.stdout.write(`${m.id}: ${m.workloadId} ${m.source} → ${m.destination}, ${m.strategy} (${m.strategyReason}), ${m.state}${m.error ? ` — ${m.error.code}: ${m.error.message}` : ''}\n`);
        if (m.predicted) {
          process.stdout.write(
            `predicted: freeze ${seconds(m.predicted.freezeMs)}, total ${seconds(m.predicted.seconds * 1000)} (${m.predicted.basis}); measured: freeze ${seconds(m.freeze.agentMs)}, total ${seconds(measuredMs(m))}\n`,
          );
        }
      }
      print(s.format, m, m.timeline, [
        { header: 'started', value: (e) => time(e.startedAt) },
        { header: 'phase', value: (e) => e.phase },
        { header: 'took', value: (e) => (e.endedAt === null ? 'running' : seconds(e.ms)) },
        { header: 'bytes', value: (e) => (e.bytes ? size(e.bytes) : '') },
        { header: 'note', value: (e) => e.note ?? '' },
      ]);
    });

  withPaging(
    program.command('failovers').description('failovers of dead hosts, newest first: what was restarted where, and what could not be').option('--host <host>', 'only failovers of this host'),
  ).action(async (options: { host?: string; limit?: number; cursor?: string }) => {
    const s = session();
    const { items, nextCursor } = await s.api.list<FailoverRecord>('/v1/failovers', 'failovers', { host: options.host }, pageRequest(options));
    const data: FailoverListResponse = { failovers: items, nextCursor };
    print(s.format, data, data.failovers, [
      { header: 'failover', value: (f) => f.id },
      { header: 'host', value: (f) => f.hostId },
      { header: 'detected', value: (f) => time(f.detectedAt) },
      { header: 'state', value: (f) => f.state },
      {
        header: 'restarted',
        value: (f) =>
          f.restarts
            .filter((r) => r.status === 'restarted')
            .map((r) => `${r.workload}→${r.to}`)
            .join(' '),
      },
      {
        header: 'not restarted',
        value: (f) =>
          f.restarts
            .filter((r) => r.status !== 'restarted')
            .map((r) => `${r.workload} (${r.status})`)
            .join(' '),
      },
    ]);
    notePage(nextCursor);
  });
}

/** `ferry workloads show`: where it runs now and what its host reports, not only what was decided at creation. */
export function workloadDetails(w: WorkloadView): string {
  const o = w.observed;
  const observed = o
    ? [
        o.state,
        o.pid ? `pid ${o.pid}` : null,
        `epoch ${o.epoch}`,
        o.usage ? `memory ${size(o.usage.memoryBytes)} of ${size(o.usage.memoryLimitBytes)}` : null,
        o.usage ? `cpu ${o.usage.cpuPercent}%` : null,
        o.usage ? `${o.usage.pids} pids` : null,
      ]
        .filter(Boolean)
        .join(', ')
    : w.hostId
      ? `not reported by ${w.hostId}`
      : '—';
  // The placement reason is from when the scheduler placed it (at creation) and names the
  // hosts as they were then: shown as such while it still runs there, dropped once it moved.
  const placed = w.placement && w.placement.hostId === w.hostId ? `${w.placement.reason} (why ${w.placement.hostId}, when it was placed)` : null;
  const exit = w.lastExit ? `${w.lastExit.reason} at ${time(w.lastExit.at)}` : null;
  return details([
    ['workload', w.spec.id],
    ['host', w.hostId ?? '—'],
    ['phase', `${w.phase} (desired ${w.desired})`],
    ['epoch', w.epoch],
    ['migrating to', w.migratingTo],
    ['observed', observed],
    ['resources', `${w.spec.resources.vcpus} vCPU, ${w.spec.resources.memoryMiB} MiB memory, ${w.spec.resources.diskMiB} MiB disk in pool ${w.spec.pool}`],
    ['ha', w.spec.ha.enabled ? `yes (priority ${w.spec.ha.priority})` : 'no'],
    ['networks', w.spec.networks.map((n) => `${n.network} ${n.address}`).join(', ')],
    ['placed', placed],
    ['last exit', exit],
    ['error', w.error ? `${w.error.code}: ${w.error.message}` : null],
    ['updated', time(w.updatedAt)],
  ]);
}

export const planColumns = [
  { header: 'plan', value: (p: PlanRecord) => p.id },
  { header: 'kind', value: (p: PlanRecord) => p.kind },
  { header: 'state', value: (p: PlanRecord) => p.state },
  { header: 'score', value: (p: PlanRecord) => `${p.scoreBefore?.toFixed(4) ?? '—'} → ${p.scoreAfter?.toFixed(4) ?? '—'}` },
  { header: 'moves', value: (p: PlanRecord) => `${p.moves.filter((m) => m.status === 'completed').length}/${p.moves.length}` },
  { header: 'created', value: (p: PlanRecord) => time(p.createdAt) },
];
