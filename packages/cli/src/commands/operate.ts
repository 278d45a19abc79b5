import type { Command } from 'commander';
import { TERMINAL_MIGRATION_STATES, type MaintenancePreview, type MaintenanceRecord, type MigrationDryRun, type MigrationRecord, type PlanRecord } from '@ferry/protocol';
import { EXIT, CliError, UsageError } from '../errors.ts';
import { size, print, seconds } from '../output.ts';
import { MigrationProgress } from '../progress.ts';
import type { Session } from '../session.ts';
import { componentLines, rebalanceBody } from '../limits.ts';
import { planColumns } from './read.ts';
import { notePage, pageRequest, withPaging } from '../pages.ts';

const TERMINAL_PLAN_STATES = new Set(['completed', 'failed', 'cancelled']);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Event = { type: string; [key: string]: unknown };

/**
 * A workload's migration events from the moment it is opened, so that nothing is missed while
 * the migration is being requested; they are kept until someone listens.
 */
class EventTap {
  private readonly abort = new AbortController();
  private readonly early: Event[] = [];
  private handler: ((event: Event) => void) | null = null;
  private readonly reading: Promise<void>;
  /** resolves once the stream is open (or could not be: then the poll alone follows) */
  readonly ready: Promise<void>;

  constructor(s: Session, query: string) {
    let opened!: () => void;
    this.ready = new Promise<void>((resolve) => (opened = resolve));
    const fallback = setTimeout(opened, 3000);
    this.reading = (async () => {
      for await (const e of s.api.events(query, this.abort.signal, opened)) {
        if (this.handler) this.handler(e);
        else this.early.push(e);
      }
    })()
      .catch(() => undefined)
      .finally(() => {
        clearTimeout(fallback);
        opened();
      });
  }

  listen(handler: (event: Event) => void): void {
    this.handler = handler;
    for (const e of this.early.splice(0)) handler(e);
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.reading;
  }
}

/** Follows one migration to its end: events for the bar, a poll every 2 s in case events are missed. */
async function followMigration(s: Session, migration: MigrationRecord, tap: EventTap): Promise<MigrationRecord> {
  const progress = new MigrationProgress();
  tap.listen((e) => {
    if (e.migrationId !== migration.id) return;
    // copy progress comes from the source agent (rsync's running total), phases from the scheduler
    if (e.type === 'migration.progress') progress.update(String(e.phase), `copying ${String(e.percent)}%`, { sent: Number(e.bytes), total: 0 });
    else progress.update(String(e.phase), String(e.status), e.bytes as { sent: number; total: number } | undefined);
  });
  try {
    for (;;) {
      const current = await s.api.get<MigrationRecord>(`/v1/migrations/${migration.id}`);
      if (TERMINAL_MIGRATION_STATES.has(current.state)) return current;
      progress.update(current.phase, current.completed.includes(current.phase) ? 'done' : 'started', current.bytes);
      await sleep(2000);
    }
  } finally {
    await tap.close();
    progress.end();
  }
}

function migrationSummary(m: MigrationRecord): string {
  const total = m.finishedAt === null ? null : m.finishedAt - m.createdAt;
  const head =
    m.state === 'completed' ? `migrated ${m.workloadId} ${m.source} → ${m.destination}` : `migration of ${m.workloadId} ${m.state}${m.error ? `: ${m.error.code} — ${m.error.message}` : ''}`;
  return [
    head,
    `  mode      ${m.strategy} (${m.strategyReason})`,
    `  freeze    ${seconds(m.freeze.agentMs)}`,
    `  total     ${seconds(total)}`,
    `  bytes     ${size(m.bytes.sent)}`,
    `  id        ${m.id}  (timeline: ferry migrations show ${m.id})`,
  ].join('\n');
}

export function dryRunSummary(d: MigrationDryRun): string {
  return [
    `dry run: ${d.workloadId} could move ${d.source ?? '—'} → ${d.destination} (${d.strategy}); nothing moved`,
    `  destination  ${d.destination} (${d.destinationReason})`,
    `  strategy     ${d.strategy} (${d.strategyReason})`,
    `  expect       freeze ${seconds(d.predicted.freezeMs)}, total ${seconds(d.predicted.seconds * 1000)}, ${size(d.predicted.bytes)} to send (${d.predicted.basis})`,
    // what planMigration checked (the migration's validate phase checks the same again)
    `  checks       passed: host up and allowed, CPU features, memory, vCPUs, disk, pool, networks, anti-affinity${d.strategy === 'cold' ? '' : ', CRIU on both hosts'}`,
  ].join('\n');
}

/** Follows a plan's moves, printing each workload's status as it changes. */
async function followPlan(s: Session, plan: PlanRecord): Promise<PlanRecord> {
  const seen = new Map<string, string>();
  for (;;) {
    const current = await s.api.get<PlanRecord>(`/v1/plans/${plan.id}`);
    for (const move of current.moves) {
      if (seen.get(move.workload) === move.status) continue;
      seen.set(move.workload, move.status);
      process.stderr.write(`  ${move.workload.padEnd(20)} ${move.from} → ${move.to}  ${move.status}${move.stage && move.stage > 1 ? `  (stage ${move.stage})` : ''}\n`);
    }
    if (TERMINAL_PLAN_STATES.has(current.state)) return current;
    await sleep(1000);
  }
}

const planExit = (plan: PlanRecord) => (plan.state === 'completed' ? EXIT.ok : EXIT.failed);

/** "2 (after 1)": the move's stage, and the moves (numbered from 1) it waits for. */
const stageColumn = (m: PlanRecord['moves'][number]) => `${m.stage ?? 1}${m.dependsOn?.length ? ` (after ${m.dependsOn.map((k) => k + 1).join(', ')})` : ''}`;

/** What stays on a host a partial evacuation leaves, and why (to stderr: the table stays the moves). */
function writeUnplaced(plan: Pick<PlanRecord, 'unplaced' | 'hostId'>): void {
  for (const u of plan.unplaced ?? []) process.stderr.write(`  ${u.workload.padEnd(20)} stays on ${plan.hostId ?? 'the host'}: ${u.reason}\n`);
}

/** What changes the cluster: migrate, maintenance, rebalance, plans. */
export function operateCommands(program: Command, session: () => Session): void {
  program
    .command('migrate <workload>')
    .description('move a running workload to another host, live; shows its progress, then the result')
    .option('--to <host>', 'destination (default: the best host placement finds)')
    .option('--strategy <strategy>', 'lazy | page-server | stop-and-copy | precopy | cold (default: Ferry picks)')
    .option('--dry-run', 'only check: every reason it could not go')
    .option('--no-wait', 'start it and return')
    .action(async (workload: string, options: { to?: string; strategy?: string; dryRun?: boolean; wait: boolean }) => {
      const s = session();
      const body = { ...(options.to ? { destination: options.to } : {}), ...(options.strategy ? { strategy: options.strategy } : {}) };
      if (options.dryRun) {
        // a dry run answers where and how it would go (a refusal is an error, every reason in it)
        const dry = await s.api.request<MigrationDryRun>('POST', `/v1/workloads/${encodeURIComponent(workload)}/migrate?dryRun=true`, body);
        if (s.format === 'table') process.stdout.write(`${dryRunSummary(dry)}\n`);
        else print(s.format, dry, [], []);
        return;
      }
      const follow = options.wait;
      const tap = follow ? new EventTap(s, `kinds=migration&workload=${encodeURIComponent(workload)}`) : null;
      await tap?.ready;
      let started: { migration: MigrationRecord };
      try {
        started = await s.api.request<{ migration: MigrationRecord }>('POST', `/v1/workloads/${encodeURIComponent(workload)}/migrate`, body);
      } catch (err) {
        await tap?.close();
        throw err;
      }
      if (!tap) {
        print(
          s.format,
          started,
          [started.migration],
          [
            { header: 'migration', value: (m) => m.id },
            { header: 'from → to', value: (m) => `${m.source} → ${m.destination}` },
            { header: 'strategy', value: (m) => m.strategy },
            { header: 'state', value: (m) => m.state },
          ],
        );
        return;
      }
      process.stderr.write(`migrating ${workload} ${started.migration.source} → ${started.migration.destination} (${started.migration.strategy})\n`);
      const done = await followMigration(s, started.migration, tap);
      if (s.format === 'table') process.stdout.write(`${migrationSummary(done)}\n`);
      else print(s.format, done, [], []);
      if (done.state !== 'completed') process.exitCode = EXIT.failed;
    });

  const maintenance = program.command('maintenance').description('planned maintenance: drain a host live and keep it out of placement');
  maintenance
    .command('enter <host>')
    .description('take the host out of placement and live-migrate every workload away (per-workload progress)')
    .option('--partial', 'move the workloads that can leave and leave the rest, listed with why (default: all or nothing)')
    .option('--dry-run', 'show the evacuation plan it would run; nothing changes')
    .option('--no-wait', 'start it and return')
    .action(async (host: string, options: { wait: boolean; partial?: boolean; dryRun?: boolean }) => {
      const s = session();
      if (options.dryRun) {
        const query = new URLSearchParams({ dryRun: 'true', ...(options.partial ? { partial: 'true' } : {}) });
        const preview = await s.api.request<MaintenancePreview>('POST', `/v1/hosts/${encodeURIComponent(host)}/maintenance?${query}`, {});
        process.stderr.write(`${host}: ${preview.plan.moves.length} workload(s) would move (dry run: nothing changed)\n`);
        writeUnplaced(preview.plan);
        print(s.format, preview, preview.plan.moves, [
          { header: 'workload', value: (m) => m.workload },
          { header: 'from → to', value: (m) => `${m.from} → ${m.to}` },
          { header: 'strategy', value: (m) => m.strategy },
          { header: 'stage', value: stageColumn },
          { header: 'why', value: (m) => m.reason },
        ]);
        return;
      }
      const started = await s.api.request<{ maintenance: MaintenanceRecord | null; plan: PlanRecord }>(
        'POST',
        `/v1/hosts/${encodeURIComponent(host)}/maintenance${options.partial ? '?partial=true' : ''}`,
        {},
      );
      process.stderr.write(`${host}: maintenance ${started.maintenance?.state ?? 'entered'}, ${started.plan.moves.length} workload(s) to move (plan ${started.plan.id})\n`);
      if (started.plan.unplaced?.length) process.stderr.write(`${started.plan.unplaced.length} workload(s) cannot leave and stay:\n`);
      writeUnplaced(started.plan);
      const plan = options.wait && started.plan.moves.length > 0 ? await followPlan(s, started.plan) : started.plan;
      print(s.format, { ...started, plan }, plan.moves, [
        { header: 'workload', value: (m) => m.workload },
        { header: 'from → to', value: (m) => `${m.from} → ${m.to}` },
        { header: 'status', value: (m) => m.status },
      ]);
      if (options.wait) process.exitCode = planExit(plan);
    });
  maintenance
    .command('exit <host>')
    .description('put the host back into placement')
    .action(async (host: string) => {
      const s = session();
      const data = await s.api.request<{ hostId: string }>('DELETE', `/v1/hosts/${encodeURIComponent(host)}/maintenance`);
      if (s.format === 'table') process.stdout.write(`${host}: out of maintenance, taking workloads again\n`);
      else print(s.format, data, [], []);
    });

  program
    .command('rebalance')
    .description('even out load with as few moves as possible')
    .option('--dry-run', 'plan only and show the moves (the default)')
    .option('--apply', 'plan and run the moves, following their progress')
    .option('--max-moves <n>', 'at most this many moves (the API takes up to its limit)')
    .option('--min-gain <x>', 'a move must lower the score at least this much')
    .option('--move-cost <x>', "what any move costs, in score, subtracted from its gain (the planner's default otherwise)")
    .option('--move-cost-per-gib <x>', 'what each GiB a move copies costs, in score')
    .option('--weights <term=x,…>', 'the score weights to change, e.g. cpu=0.5,instances=0.1 (terms: mem, cpu, disk, instances, overcommit, antiAffinity, draining)')
    .action(async (options: { dryRun?: boolean; apply?: boolean; maxMoves?: string; minGain?: string; moveCost?: string; moveCostPerGib?: string; weights?: string }) => {
      if (options.dryRun && options.apply) throw new UsageError('--dry-run and --apply exclude each other');
      // the API's bounds, checked before anything is asked
      const body = rebalanceBody({ maxMoves: options.maxMoves, minGain: options.minGain, moveCost: options.moveCost, moveCostPerGiB: options.moveCostPerGib, weights: options.weights });
      const s = session();
      const plan = await s.api.request<PlanRecord>('POST', `/v1/rebalance${options.apply ? '' : '?dryRun=true'}`, body);
      process.stderr.write(
        `plan ${plan.id}: ${plan.moves.length} move(s), score ${plan.scoreBefore?.toFixed(4) ?? '—'} → ${plan.scoreAfter?.toFixed(4) ?? '—'}${options.apply ? '' : ' (dry run: apply with ferry plans execute ' + plan.id + ')'}\n`,
      );
      if (s.format === 'table') for (const line of componentLines(plan)) process.stderr.write(`${line}\n`);
      const final = options.apply && plan.moves.length > 0 ? await followPlan(s, plan) : plan;
      print(s.format, final, final.moves, [
        { header: 'workload', value: (m) => m.workload },
        { header: 'from → to', value: (m) => `${m.from} → ${m.to}` },
        { header: 'strategy', value: (m) => m.strategy },
        { header: 'stage', value: stageColumn },
        { header: 'status', value: (m) => m.status },
        { header: 'why', value: (m) => m.reason },
      ]);
      if (options.apply) process.exitCode = planExit(final);
    });

  const plans = program.command('plans').description('rebalance and evacuation plans');
  withPaging(plans.command('list', { isDefault: true }).description('every plan, newest first').option('--state <state>', 'only plans in this state')).action(
    async (options: { state?: string; limit?: number; cursor?: string }) => {
      const s = session();
      const { items, nextCursor } = await s.api.list<PlanRecord>('/v1/plans', 'plans', { state: options.state }, pageRequest(options));
      print(s.format, { plans: items, nextCursor }, items, planColumns);
      notePage(nextCursor);
    },
  );
  plans
    .command('show <plan>')
    .description('one plan, move by move')
    .action(async (id: string) => {
      const s = session();
      const plan = await s.api.get<PlanRecord>(`/v1/plans/${encodeURIComponent(id)}`);
      if (s.format === 'table') {
        process.stdout.write(`${plan.id}: ${plan.kind}, ${plan.state}, score ${plan.scoreBefore?.toFixed(4) ?? '—'} → ${plan.scoreAfter?.toFixed(4) ?? '—'}\n`);
        for (const line of componentLines(plan)) process.stdout.write(`${line}\n`);
        writeUnplaced(plan);
      }
      print(s.format, plan, plan.moves, [
        { header: 'workload', value: (m) => m.workload },
        { header: 'from → to', value: (m) => `${m.from} → ${m.to}` },
        { header: 'strategy', value: (m) => m.strategy },
        { header: 'stage', value: stageColumn },
        { header: 'status', value: (m) => m.status },
      ]);
    });
  plans
    .command('execute <plan>')
    .description('run a planned plan (refused when the cluster changed since it was made)')
    .option('--no-wait', 'start it and return')
    .action(async (id: string, options: { wait: boolean }) => {
      const s = session();
      const plan = await s.api.request<PlanRecord>('POST', `/v1/plans/${encodeURIComponent(id)}/execute`);
      const final = options.wait ? await followPlan(s, plan) : plan;
      print(s.format, final, [final], planColumns);
      if (options.wait) process.exitCode = planExit(final);
    });
  plans
    .command('cancel <plan>')
    .description('cancel a plan: moves not started never start')
    .action(async (id: string) => {
      const s = session();
      const plan = await s.api.request<PlanRecord>('DELETE', `/v1/plans/${encodeURIComponent(id)}`);
      print(s.format, plan, [plan], planColumns);
    });

  program
    .command('events')
    .description('cluster events as they happen (host, workload, migration, failover)')
    .option('-f, --follow', 'keep streaming until interrupted')
    .option('--kinds <kinds>', 'comma-separated: host,workload,migration,failover')
    .action(async (options: { follow?: boolean; kinds?: string }) => {
      if (!options.follow) throw new UsageError("ferry events streams live events: add --follow (Ctrl-C stops it). Past events of a host: 'ferry hosts history HOST'.");
      const s = session();
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      process.once('SIGTERM', () => abort.abort());
      for await (const e of s.api.events(options.kinds ? `kinds=${encodeURIComponent(options.kinds)}` : '', abort.signal)) {
        if (s.format !== 'table') process.stdout.write(`${JSON.stringify(e)}\n`);
        else process.stdout.write(`${new Date(Number(e.at)).toISOString().slice(11, 23)}  ${eventLine(e)}\n`);
      }
      if (!abort.signal.aborted) throw new CliError('the event stream ended (the API stopped?)', EXIT.unreachable);
    });
}

function eventLine(e: { type: string; [key: string]: unknown }): string {
  const f = (k: string) => String(e[k] ?? '');
  if (e.type === 'host.state') return `host ${f('hostId')}: ${e.from ?? 'new'} → ${f('to')}`;
  if (e.type.startsWith('workload.')) return `workload ${f('workloadId')}: ${e.phase ?? 'destroyed'}${e.hostId ? ` on ${f('hostId')}` : ''}`;
  if (e.type === 'migration.progress') return `migration ${f('migrationId')} (${f('workloadId')}): ${f('phase')} copying ${f('percent')}%, ${size(Number(e.bytes))}`;
  if (e.type.startsWith('migration.')) return `migration ${f('migrationId')} (${f('workloadId')}): ${f('phase')} ${f('status')}`;
  const failover = e.failover as { hostId: string; state: string } | undefined;
  return `failover of ${failover?.hostId}: ${failover?.state}`;
}
