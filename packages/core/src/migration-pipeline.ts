import { MIGRATION_PHASES, MIGRATION_STRATEGIES, type AgentCommand, type CriuReport, type MigrationPhase, type MigrationStrategy } from '@ferry/protocol';

/**
 * The declared migration pipeline: for every strategy, the phases it runs and, for each phase,
 * who runs it, with which agent command or scheduler step, its timeout, what undoes it, and when
 * it is skipped. The scheduler's runner walks this table (no per-strategy branches), the pure
 * decisions below (phasesFor, rollbackSteps, decideResume, chooseStrategy) derive from it, and
 * docs/migration.md shows it as `describePipeline()` prints it (a unit test keeps them equal).
 * Shaped like Nomad's stack.go (the checkers and iterators a scheduler runs, declared in one
 * place) and its BuiltinSchedulers (a registry of named implementations behind one interface).
 */

/** How long each agent step may take (scheduler settings; the table names them). */
export interface MigrationTimeouts {
  prepareMs: number;
  transferMs: number;
  dumpMs: number;
  restoreMs: number;
  finishMs: number;
  /** the destination's finish only stops its daemons and drops images: no reason to wait 10 min */
  finishDestinationMs: number;
  /**
   * how long a cleanup step (after the commit) is retried in the job, with backoff, before it is
   * handed to the deferred steps (which retry it on every leader tick until done)
   */
  cleanupRetryMs: number;
}

export const DEFAULT_MIGRATION_TIMEOUTS: MigrationTimeouts = {
  prepareMs: 30_000,
  transferMs: 600_000,
  dumpMs: 120_000,
  restoreMs: 120_000,
  finishMs: 600_000,
  finishDestinationMs: 60_000,
  cleanupRetryMs: 120_000,
};

export type MigrationTimeoutName = Exclude<keyof MigrationTimeouts, 'cleanupRetryMs'>;

export type PhaseSide = 'scheduler' | 'source' | 'destination';

/** The agent commands phases send (the runner has one request builder and result handler per command). */
export type PipelineCommand = Extract<AgentCommand, 'migration.prepare' | 'migration.presync' | 'migration.dump' | 'migration.transfer' | 'migration.restore' | 'container.status'>;

/** What the scheduler does by itself in a phase (the runner has one function per step). */
export type SchedulerStep = 'check-destination' | 'reserve' | 'precopy-rounds' | 'commit' | 'cleanup';

/**
 * Rollback steps, run in this order whatever order the phases ran in. The destination's copy is
 * removed before the source runs the workload again, so that it never runs twice (a restore that
 * ended after its request timed out would otherwise run until the abort landed); but first the
 * source makes sure it can run it again — it stops serving pages and takes its images back, from
 * the destination if the dump left them there — for until then the destination's copy may be the
 * only one.
 */
export const UNDO_ORDER = ['ready-source', 'abort-destination', 'resume-source'] as const;
export type UndoStep = (typeof UNDO_ORDER)[number];

export type CleanupStep = 'finish-source' | 'finish-destination';

/**
 * When a phase has nothing to do. `shared-rootfs`: the scheduler proved both hosts mount the
 * workload's pool, so the root filesystem stays where it is (the phase is recorded, with 0 bytes).
 */
export type SkipRule = 'shared-rootfs';

/** A request to one agent: which side, which command, how long it may take. */
export interface AgentStepDefinition {
  side: 'source' | 'destination';
  command: AgentCommand;
  timeout: MigrationTimeoutName;
  /** the request field that makes the command this step, when another step sends the same command */
  flag?: string;
}

interface PhaseCommon {
  phase: MigrationPhase;
  /** what a rollback must do once this phase started (none: nothing of it outlives a rollback); run in UNDO_ORDER */
  undo: readonly UndoStep[];
  skip: SkipRule | null;
  /**
   * When a cancel request is honoured: `before` the phase starts, also `during` it (the agent
   * call is abandoned), or `never` (the commit: the destination verified the workload by then).
   */
  cancel: 'before' | 'during' | 'never';
  /** the validate phase's checks run again first: the last moment before undoing costs a freeze */
  recheck: boolean;
}

export type PhaseDefinition =
  (PhaseCommon & { side: 'scheduler'; step: SchedulerStep; timeout: null }) | (PhaseCommon & { side: 'source' | 'destination'; command: PipelineCommand; timeout: MigrationTimeoutName });

/** One way of moving a workload, behind the one interface every strategy has. */
export interface MigrationStrategyDefinition {
  name: MigrationStrategy;
  /** a strategy that is not implemented is in the registry so that it can be refused by name; it is never chosen */
  implemented: boolean;
  /** refusal when asked for while not implemented: the code, and why (the refusal adds what to ask for instead) */
  unavailable: { code: string; reason: string } | null;
  /** live: the workload runs until the freeze and runs again after the restore; cold: it is stopped and moved */
  live: boolean;
  /** CRIU features both hosts need (a live strategy also needs a recent, working CRIU) */
  requires: Array<keyof CriuReport['features']>;
  /** refusal when asked for while a required feature is missing */
  unsupported: { code: string; message: string } | null;
  /** chosen automatically (lowest rank first among those both hosts support), with this reason; null: only on request */
  auto: { rank: number; reason: string } | null;
  phases: PhaseDefinition[];
  /**
   * From this phase on, an interrupted phase (its worker died or the job was retried mid-phase)
   * rolls back instead of running again: the source may be frozen or dumped, or (cold) the
   * destination may hold a started copy. Before it, every phase is idempotent.
   */
  frozenFrom: MigrationPhase;
  /** the source serves memory pages after the restore: its finish waits for the last page */
  postCopy: boolean;
  /**
   * Until when, before the commit, the source can still run the workload again. `commit`: its
   * frozen process or its images stay until the commit. `last-page` (post-copy): a lazy
   * checkpoint holds the frozen process only until the destination pulled its last page, then
   * CRIU ends it — a rollback after that (the restore succeeded but a later phase failed) stops at
   * ready-source, which refuses, and never aborts the destination: its copy is the only one.
   */
  sourceResumableUntil: 'commit' | 'last-page';
  /**
   * Whether the workload's open TCP connections survive a rollback after the dump. A restore
   * from images (stop-and-copy, page-server) brings them back out of repair mode. A lazy dump
   * does not: CRIU takes the sockets out of repair mode (network_unlock) only for a dump that
   * failed before its page server started, so ending a lazy dump — killed, or its page server
   * failed — leaves them in repair mode, and the thawed workload loses each of them (measured: the
   * client sees a reset, or no answer again; the process, its memory and its timers are intact,
   * and new connections are answered).
   */
  rollbackKeepsConnections: boolean;
  /**
   * Where the memory pages are once the dump ended, which is what a rollback after the dump
   * restores from: `source` (kept in memory by a lazy checkpoint, or image files here), or
   * `destination` (the page server wrote them there only: ready-source pulls them back through
   * the destination's transfer daemon before abort-destination stops it; should the destination
   * be lost between the dump and the commit, so is the workload — such a strategy is never chosen
   * automatically).
   */
  pagesAfterDump: 'source' | 'destination';
  /** after the commit, in order; each retried until done (or deferred) */
  cleanup: CleanupStep[];
  /** one line for the docs */
  summary: string;
}

/**
 * A rollback step, and what it becomes when its host is declared down: `defer` (run when the host
 * is back: DeferredSteps), or `skip` (it only prepares a later step on the same host, deferred in
 * turn).
 */
export interface UndoStepDefinition extends AgentStepDefinition {
  whenHostDown: 'defer' | 'skip';
}

export const UNDO_STEPS: Record<UndoStep, UndoStepDefinition> = {
  // `migration.resume` with readyOnly: may pull the pages back, hence the transfer's timeout
  'ready-source': { side: 'source', command: 'migration.resume', timeout: 'transferMs', flag: 'readyOnly', whenHostDown: 'skip' },
  'resume-source': { side: 'source', command: 'migration.resume', timeout: 'restoreMs', whenHostDown: 'defer' },
  'abort-destination': { side: 'destination', command: 'migration.abort', timeout: 'finishMs', whenHostDown: 'defer' },
};

export const CLEANUP_STEPS: Record<CleanupStep, AgentStepDefinition> = {
  'finish-source': { side: 'source', command: 'migration.finish', timeout: 'finishMs' },
  'finish-destination': { side: 'destination', command: 'migration.finish', timeout: 'finishDestinationMs' },
};

const common = { undo: [], skip: null, cancel: 'before', recheck: false } as const;

/** The phases as every strategy runs them today; a strategy lists those it needs. */
const PHASES = {
  validate: { ...common, phase: 'validate', side: 'scheduler', step: 'check-destination', timeout: null },
  // the reservation (the workload record's migratingTo) is always put back at the end of a rollback
  reserve: { ...common, phase: 'reserve', side: 'scheduler', step: 'reserve', timeout: null },
  prepare: { ...common, phase: 'prepare', side: 'destination', command: 'migration.prepare', timeout: 'prepareMs', undo: ['abort-destination'] },
  // before the freeze resume-source only clears what the presync staged on the source
  presync: { ...common, phase: 'presync', side: 'source', command: 'migration.presync', timeout: 'transferMs', undo: ['resume-source'], skip: 'shared-rootfs', cancel: 'during' },
  precopy: { ...common, phase: 'precopy', side: 'scheduler', step: 'precopy-rounds', timeout: null, undo: ['resume-source'] },
  // from the dump on the source must be made ready (pages back, lazy serving stopped) before the destination is aborted
  freeze: { ...common, phase: 'freeze', side: 'source', command: 'migration.dump', timeout: 'dumpMs', undo: ['ready-source', 'resume-source'], recheck: true },
  transfer: { ...common, phase: 'transfer', side: 'source', command: 'migration.transfer', timeout: 'transferMs', undo: ['ready-source', 'resume-source'] },
  restore: { ...common, phase: 'restore', side: 'destination', command: 'migration.restore', timeout: 'restoreMs', undo: ['abort-destination'] },
  verify: { ...common, phase: 'verify', side: 'destination', command: 'container.status', timeout: 'prepareMs' },
  commit: { ...common, phase: 'commit', side: 'scheduler', step: 'commit', timeout: null, cancel: 'never' },
  cleanup: { ...common, phase: 'cleanup', side: 'scheduler', step: 'cleanup', timeout: null, cancel: 'never' },
} satisfies Record<MigrationPhase, PhaseDefinition>;

const pick = (...phases: MigrationPhase[]): PhaseDefinition[] => phases.map((p) => PHASES[p]);
const LIVE = pick('validate', 'reserve', 'prepare', 'presync', 'freeze', 'transfer', 'restore', 'verify', 'commit', 'cleanup');
const CLEANUP: CleanupStep[] = ['finish-source', 'finish-destination'];

/** Every strategy, by name: the only place a strategy's behaviour is declared on the scheduler's side. */
export const MIGRATION_STRATEGY_REGISTRY: { readonly [S in MigrationStrategy]: MigrationStrategyDefinition } = {
  lazy: {
    name: 'lazy',
    implemented: true,
    unavailable: null,
    live: true,
    requires: ['uffdNoncoop'],
    unsupported: { code: 'LAZY_UNSUPPORTED', message: 'post-copy needs userfaultfd (criu check --feature uffd-noncoop) on both hosts' },
    auto: { rank: 2, reason: 'no dirty-memory tracking here, but userfaultfd on both hosts: post-copy (lazy pages), the freeze does not grow with memory size' },
    phases: LIVE,
    frozenFrom: 'freeze',
    postCopy: true,
    sourceResumableUntil: 'last-page',
    rollbackKeepsConnections: false,
    pagesAfterDump: 'source',
    cleanup: CLEANUP,
    summary: 'post-copy: dump without memory, restore, the destination pulls the pages from the source',
  },
  'page-server': {
    name: 'page-server',
    implemented: true,
    unavailable: null,
    live: true,
    requires: [],
    unsupported: null,
    // after its dump the pages exist on the destination only (see pagesAfterDump): on request
    auto: null,
    phases: LIVE,
    frozenFrom: 'freeze',
    postCopy: false,
    sourceResumableUntil: 'commit',
    rollbackKeepsConnections: true,
    pagesAfterDump: 'destination',
    cleanup: CLEANUP,
    summary: "stop-and-copy straight into the destination's CRIU page server; its rollback pulls the pages back, so it needs the destination alive until the commit (on request only)",
  },
  precopy: {
    name: 'precopy',
    implemented: false,
    unavailable: { code: 'PRECOPY_UNSUPPORTED', reason: 'iterative pre-copy is not implemented in this version of Ferry' },
    live: true,
    requires: ['memDirtyTrack'],
    unsupported: { code: 'PRECOPY_UNSUPPORTED', message: 'iterative pre-copy needs soft-dirty memory tracking (criu check --feature mem_dirty_track) on both hosts' },
    auto: { rank: 1, reason: 'both kernels track dirty memory: iterative pre-copy rounds, then a short final dump' },
    phases: pick('validate', 'reserve', 'prepare', 'presync', 'precopy', 'freeze', 'transfer', 'restore', 'verify', 'commit', 'cleanup'),
    frozenFrom: 'freeze',
    postCopy: false,
    sourceResumableUntil: 'commit',
    rollbackKeepsConnections: true,
    pagesAfterDump: 'source',
    cleanup: CLEANUP,
    summary: 'iterative pre-dumps while running, then a short final dump (needs mem_dirty_track)',
  },
  'stop-and-copy': {
    name: 'stop-and-copy',
    implemented: true,
    unavailable: null,
    live: true,
    requires: [],
    unsupported: null,
    auto: { rank: 3, reason: 'no userfaultfd on both hosts: stop-and-copy (dump to files, then copy them); the images stay here until the commit, so a rollback restores from them' },
    phases: LIVE,
    frozenFrom: 'freeze',
    postCopy: false,
    sourceResumableUntil: 'commit',
    rollbackKeepsConnections: true,
    pagesAfterDump: 'source',
    cleanup: CLEANUP,
    summary: 'dump to files, rsync them with the root-filesystem delta, restore',
  },
  cold: {
    name: 'cold',
    implemented: true,
    unavailable: null,
    live: false,
    requires: [],
    unsupported: null,
    auto: null,
    // nothing to freeze or transfer once the root filesystem moved
    phases: pick('validate', 'reserve', 'prepare', 'presync', 'restore', 'verify', 'commit', 'cleanup'),
    // a stopped workload is never frozen; from the restore on the destination may hold a copy
    frozenFrom: 'restore',
    postCopy: false,
    sourceResumableUntil: 'commit',
    rollbackKeepsConnections: true,
    pagesAfterDump: 'source',
    cleanup: CLEANUP,
    summary: 'the workload is stopped: its root filesystem moves, nothing else',
  },
};

/** The implemented live strategies, as a refusal names them: "lazy, page-server or stop-and-copy". */
function alternatives(): string {
  const names = MIGRATION_STRATEGIES.filter((s) => MIGRATION_STRATEGY_REGISTRY[s].implemented && MIGRATION_STRATEGY_REGISTRY[s].live);
  return names.length <= 1 ? names.join('') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
}

export function strategyDefinition(strategy: MigrationStrategy): MigrationStrategyDefinition {
  return MIGRATION_STRATEGY_REGISTRY[strategy];
}

/** Why a strategy cannot be chosen at all (not implemented), or null. */
export function strategyUnavailable(strategy: MigrationStrategy): { code: string; message: string } | null {
  const definition = MIGRATION_STRATEGY_REGISTRY[strategy];
  if (definition.implemented) return null;
  const { code, reason } = definition.unavailable ?? { code: 'STRATEGY_NOT_IMPLEMENTED', reason: `the ${strategy} strategy is not implemented in this version of Ferry` };
  return { code, message: `${reason}: ask for ${alternatives()}, or let Ferry pick` };
}

export function implementedStrategies(): MigrationStrategyDefinition[] {
  return MIGRATION_STRATEGIES.map((s) => MIGRATION_STRATEGY_REGISTRY[s]).filter((d) => d.implemented);
}

/** A phase's declaration in a strategy's pipeline, or undefined when the strategy does not run it. */
export function phaseDefinition(strategy: MigrationStrategy, phase: MigrationPhase): PhaseDefinition | undefined {
  return MIGRATION_STRATEGY_REGISTRY[strategy].phases.find((p) => p.phase === phase);
}

const seconds = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`);

/** The pipeline as docs/migration.md shows it (between its `pipeline` markers): strategies × phases, then each phase. */
export function describePipeline(timeouts: MigrationTimeouts = DEFAULT_MIGRATION_TIMEOUTS): string {
  const strategies = MIGRATION_STRATEGIES.map((s) => MIGRATION_STRATEGY_REGISTRY[s]);
  const runs = (p: PhaseDefinition) => (p.side === 'scheduler' ? `scheduler: ${p.step}` : `${p.side}: \`${p.command}\``);
  const lines = [
    `| phase | ${strategies.map((s) => `\`${s.name}\``).join(' | ')} |`,
    `|---|${strategies.map(() => '---').join('|')}|`,
    ...MIGRATION_PHASES.map(
      (phase) =>
        `| ${phase} | ${strategies
          .map((s) => {
            const p = s.phases.find((d) => d.phase === phase);
            if (!p) return '—';
            return `✓${phase === s.frozenFrom ? ' ❄' : ''}`;
          })
          .join(' | ')} |`,
    ),
    `| implemented | ${strategies.map((s) => (s.implemented ? 'yes' : '**no**: refused')).join(' | ')} |`,
    `| chosen | ${strategies.map((s) => (!s.live ? 'stopped workload, or asked' : s.auto ? `auto (rank ${s.auto.rank})${s.requires.length ? `, needs ${s.requires.join(', ')}` : ''}` : 'on request')).join(' | ')} |`,
    `| after the restore | ${strategies.map((s) => (s.postCopy ? 'source serves pages until the last one' : '—')).join(' | ')} |`,
    `| rollback after the dump | ${strategies.map((s) => (!s.live ? '—' : s.pagesAfterDump === 'destination' ? 'pulls the pages back from the destination' : 'from the source')).join(' | ')} |`,
    `| open connections after a rollback | ${strategies.map((s) => (!s.live ? '—' : s.rollbackKeepsConnections ? 'kept' : "**reset** (CRIU leaves a lazy dump's sockets in repair mode)")).join(' | ')} |`,
    `| rollback after the restore | ${strategies.map((s) => (!s.live ? 'yes' : s.sourceResumableUntil === 'last-page' ? 'only until the destination pulled the last page' : 'yes')).join(' | ')} |`,
    '',
    '| phase | runs | timeout | undo | skipped when | cancel |',
    '|---|---|---|---|---|---|',
  ];
  // one row per distinct declaration of a phase (today every strategy shares them)
  for (const phase of MIGRATION_PHASES) {
    const variants = new Map<PhaseDefinition, MigrationStrategy[]>();
    for (const s of strategies) {
      const p = s.phases.find((d) => d.phase === phase);
      if (p) variants.set(p, [...(variants.get(p) ?? []), s.name]);
    }
    for (const [p, users] of variants) {
      const label = variants.size > 1 ? `${phase} (${users.join(', ')})` : phase;
      const timeout = p.timeout === null ? '—' : `${seconds(timeouts[p.timeout])} (\`${p.timeout}\`)`;
      const check = p.recheck ? ', after the validate checks again' : '';
      lines.push(`| ${label} | ${runs(p)}${check} | ${timeout} | ${p.undo.length ? p.undo.join(', ') : '—'} | ${p.skip ?? '—'} | ${p.cancel} |`);
    }
  }
  lines.push(
    '',
    '| step | runs | timeout |',
    '|---|---|---|',
    ...UNDO_ORDER.map((u) => {
      const { side, command, flag, timeout } = UNDO_STEPS[u];
      return `| ${u} (rollback) | ${side}: \`${command}\`${flag ? ` with \`${flag}\`` : ''} | ${seconds(timeouts[timeout])} |`;
    }),
    ...(Object.keys(CLEANUP_STEPS) as CleanupStep[]).map((c) => `| ${c} (cleanup) | ${CLEANUP_STEPS[c].side}: \`${CLEANUP_STEPS[c].command}\` | ${seconds(timeouts[CLEANUP_STEPS[c].timeout])} |`),
  );
  return lines.join('\n');
}
