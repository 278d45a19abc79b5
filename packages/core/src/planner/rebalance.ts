import { firstRefusal } from '../feasibility.ts';
import { DestinationIndex } from './candidates.ts';
import { GAIN_EPSILON } from './gain.ts';
import { Heap } from './heap.ts';
import { moveBytes, stateOf, type PlanCluster, type PlanningState } from './model.ts';
import { findSwap } from './polish.ts';
import { pruneMoves, type Displacement } from './prune.ts';
import { ClusterScore, DEFAULT_WEIGHTS, type ScoreComponents, type ScoreWeights } from './score.ts';

export interface PlannedMove {
  workload: string;
  from: string;
  to: string;
  bytes: number;
  /** score after this move */
  score: number;
  reason: string;
}

export interface RebalanceOptions {
  /** the move budget: the plan stops there, converged or not */
  maxMoves: number;
  /** the time budget of the search, ms: the plan stops where it got to (and says so) */
  timeBudgetMs: number;
  /**
   * a move's net gain (gain − cost) must exceed this; 0 still requires a strictly positive gain,
   * so the search never takes a move that changes nothing (and never undoes its own last move)
   */
  minGain: number;
  /**
   * What any move costs (the orchestration, the freeze), subtracted from its gain when moves are
   * ranked, in score × accepting hosts: one move shifts a standard deviation over n hosts by about
   * 1/n, so the cost is divided by n and means the same at 10 hosts and at 10,000.
   */
  moveCost: number;
  /** what each GiB a move puts on the link costs, in the same unit */
  moveCostPerGiB: number;
  /** destinations scored per workload: the first this many hosts of each list of the destination index */
  candidates: number;
  /**
   * below this many workloads × hosts, every host is a destination (the index's lists are a
   * heuristic; at 100 hosts scoring them all costs ~0.1 s)
   */
  allDestinationsBelow: number;
  /**
   * below this many workloads × hosts, every source is scored again after every move: exact
   * steepest descent, as Ganeti hbal does (the lazy heap's older entries are estimates)
   */
  exactBelow: number;
  /**
   * weigh every move again at the end: drop those worth less than their cost, and move a workload
   * the search moved twice once, straight to where it ends (prune.ts)
   */
  prune: boolean;
  /** when no single move helps, try swapping two workloads between a loaded and a light host */
  polish: boolean;
  /**
   * the polish makes the plan better, not longer: when its swaps leave more moves than the
   * single-move search had made, the moves worth least are dropped down to that count (the plan
   * then ends lower than the single-move search did, in as many moves). Where that count cannot
   * be reached, the polish's extra moves stay only if each gains at least what the single-move
   * search's last move gained; otherwise the plan is the single-move search's
   */
  polishKeepsLength: boolean;
  weights: Partial<ScoreWeights>;
}

const GiB = 2 ** 30;
/** hosts per list of the destination index at each end that the polish pairs up */
const POLISH_HOSTS = 4;

/**
 * Runs to convergence by default: the move budget is the API's cap, and the time budget keeps a
 * 10,000-host plan from holding the scheduler. The move cost is small: it ranks a cheap move above
 * an expensive one of nearly the same gain and ends the tail of crumbs, without stopping short of
 * a balanced cluster (bench/RESULTS.md, "Planner", for what was measured).
 */
export const DEFAULT_REBALANCE: RebalanceOptions = {
  maxMoves: 1000,
  timeBudgetMs: 10_000,
  minGain: 0,
  moveCost: 0.0005,
  moveCostPerGiB: 0.00001,
  candidates: 8,
  allDestinationsBelow: 250_000,
  exactBelow: 25_000,
  polish: true,
  polishKeepsLength: true,
  prune: true,
  weights: DEFAULT_WEIGHTS,
};

export interface RebalancePlan {
  moves: PlannedMove[];
  scoreBefore: number;
  scoreAfter: number;
  /** the score's named terms before and after the plan (each weighted: they sum to the score) */
  components: { before: ScoreComponents; after: ScoreComponents };
  /** why the search stopped */
  stopped: string;
  /** the search's own figures (for the bench and the logs): moves scored, swaps made */
  stats: { steps: number; evaluations: number; swaps: number };
}

export const STOPPED = {
  converged: 'converged: no move or swap lowers the score by more than its cost',
  moves: 'move budget reached',
  time: 'time budget reached',
} as const;

/**
 * Steepest descent in the spirit of Ganeti hbal, made to scale: every host is a source, each with
 * its best move (every movable workload of it, against the destination index's candidates) in a
 * lazy max-heap by net gain (gain − the move's cost). A step pops the best; an entry made before
 * the last move is scored again and pushed back, so a step re-scores only the hosts that reach the
 * top, and the two hosts of each move right away. When the heap runs dry every host is scored
 * against the hosts moves touched since (they may be good destinations now), then the polish tries
 * swaps. It stops at convergence, at the move budget or at the time budget; then the prune. Every
 * move of the search gains strictly (no move that changes nothing, no ping-pong), the plan ends
 * lower than it started, and a balanced cluster gets no moves.
 */
export function planRebalance(input: PlanCluster | PlanningState, options: Partial<RebalanceOptions> = {}): RebalancePlan {
  const state = stateOf(input);
  const o: RebalanceOptions = { ...DEFAULT_REBALANCE, ...options, weights: { ...DEFAULT_WEIGHTS, ...options.weights } };
  return state.trial((move) => new Search(state, move, o).run());
}

interface Candidate {
  host: number;
  index: number;
  to: number;
  net: number;
  bytes: number;
  /** the step it was scored at: an older one is scored again before it is taken */
  step: number;
  /** the host's version it was scored against */
  stamp: number;
}

const first = (a: Candidate, b: Candidate) => a.net > b.net || (a.net === b.net && a.host < b.host);

class Search {
  private readonly cluster: PlanCluster;
  private readonly score: ClusterScore;
  private readonly index: DestinationIndex;
  private readonly heap = new Heap<Candidate>(first);
  private readonly stamp: Int32Array;
  private readonly hostById: Map<string, PlanCluster['hosts'][number]>;
  private readonly exact: boolean;
  private readonly k: number;
  private readonly sources: number[];
  private readonly moves: PlannedMove[] = [];
  /** every move made, in order (the plan, unless the prune changes it) */
  private readonly log: Array<{ index: number; to: number }> = [];
  /** where each moved workload started */
  private readonly origin = new Map<number, number>();
  /** hosts a move touched since every source was last scored */
  private readonly changed = new Set<number>();
  private step = 0;
  private current: number;
  private evaluations = 0;
  private swaps = 0;
  /**
   * the single-move search's plan when the polish first ran: each displaced workload once, to
   * where it then was (in the order of its last move), and the score it reached
   */
  private beforePolish: { sequence: Array<{ index: number; to: number }>; score: number; marginalGain: number } | null = null;
  /** what the single-move search's latest move gained (its marginal move, once it converged) */
  private lastSingleGain = 0;
  /** the workloads each swap exchanged */
  private readonly swapPairs: Array<readonly [number, number]> = [];
  /** per candidate list of the index, the verify pass's hosts in it (one pass) */
  private amongCache = new WeakMap<readonly number[], readonly number[]>();

  constructor(
    private readonly state: PlanningState,
    private readonly apply: (index: number, to: number) => void,
    private readonly o: RebalanceOptions,
  ) {
    this.cluster = state.cluster;
    this.score = new ClusterScore(this.cluster, state.usage, o.weights);
    this.index = new DestinationIndex(this.cluster, state.usage, this.score);
    this.stamp = new Int32Array(this.cluster.hosts.length);
    this.hostById = new Map(this.cluster.hosts.map((h) => [h.id, h]));
    // sources: hosts that take part in the spread, and draining hosts (everything must leave them)
    this.sources = this.cluster.hosts.flatMap((h, i) => (h.accepting || h.draining ? [i] : []));
    const size = this.cluster.workloads.length * this.score.n;
    this.exact = size < o.exactBelow;
    this.k = size < o.allDestinationsBelow ? this.cluster.hosts.length : o.candidates;
    this.current = this.score.value();
  }

  private cost(bytes: number): number {
    return (this.o.moveCost + (this.o.moveCostPerGiB * bytes) / GiB) / Math.max(1, this.score.n);
  }

  /** The best move out of `host` now, or null when none gains more than its cost. */
  private bestFrom(host: number, only?: readonly number[]): Candidate | null {
    const { cluster, score, state } = this;
    const floor = this.cost(0);
    let best: Candidate | null = null;
    let bestNet = this.o.minGain;
    for (const index of state.usage.residents[host]!) {
      if (cluster.workloads[index]!.pinned) continue;
      // its leaving half once, then each destination's arriving half (the same sum as score.after)
      score.prepare(index);
      for (const to of only ? this.among(only, index) : this.index.destinations(index, this.k)) {
        if (to === host) continue;
        this.evaluations++;
        const gain = this.current - score.afterTo(to);
        if (gain <= GAIN_EPSILON || gain - floor < bestNet) continue;
        const bytes = moveBytes(cluster, index, to);
        const net = gain - this.cost(bytes);
        // ties go to the lower workload, then the lower host: residents' order changes as moves are undone
        const better = net > bestNet || (best !== null && net === bestNet && (index < best.index || (index === best.index && to < best.to)));
        if (!better || firstRefusal(cluster, state.usage, index, to) !== null) continue;
        best = { host, index, to, net, bytes, step: this.step, stamp: this.stamp[host]! };
        bestNet = net;
      }
    }
    return best;
  }

  /**
   * `hosts` that are among workload `index`'s destinations: a verify pass looks at the hosts moves
   * touched, but only where the search itself would (the index's candidates of the workload's
   * class). Every host is a candidate on a small cluster, so there this changes nothing. At
   * 10,000 hosts the verify passes (one after each swap) scored 68 million moves, a third of the
   * search; now 0.6 million (bench/RESULTS.md, "Planner, 20 containers per host").
   */
  private among(hosts: readonly number[], index: number): readonly number[] {
    if (this.k >= this.cluster.hosts.length) return hosts;
    const candidates = this.index.destinations(index, this.k);
    let out = this.amongCache.get(candidates);
    if (!out) {
      const mine = new Set(candidates);
      out = hosts.filter((h) => mine.has(h));
      this.amongCache.set(candidates, out);
    }
    return out;
  }

  private rescore(host: number, only?: readonly number[]): void {
    const best = this.bestFrom(host, only);
    if (best) this.heap.push(best);
  }

  private record(index: number, to: number, bytes: number, reason: (from: string, before: number, after: number) => string): void {
    const w = this.cluster.workloads[index]!;
    const from = w.host;
    const before = this.current;
    if (!this.origin.has(index)) this.origin.set(index, from);
    this.log.push({ index, to });
    this.score.apply(index, to, this.apply);
    this.current = this.score.value();
    if (!this.beforePolish) this.lastSingleGain = before - this.current;
    const fromId = this.cluster.hosts[from]!.id;
    this.moves.push({ workload: w.id, from: fromId, to: this.cluster.hosts[to]!.id, bytes, score: this.current, reason: reason(fromId, before, this.current) });
    this.stamp[from]!++;
    this.stamp[to]!++;
    this.changed.add(from);
    this.changed.add(to);
    this.index.update(from);
    this.index.update(to);
    this.step++;
    this.index.refreshIfDrifted();
  }

  private lowers(from: string, before: number, after: number): string {
    const draining = this.hostById.get(from)?.draining;
    return `lowers the cluster score ${before.toFixed(4)} → ${after.toFixed(4)}${draining ? ` and empties draining host ${from}` : ''}`;
  }

  /**
   * Before calling the search converged: the hosts moves touched since the last full scoring may
   * now be good destinations for workloads anywhere, which no entry of the heap knows. Every
   * source is scored against those hosts only (and fully, once that is cheaper).
   */
  private verify(): void {
    if (this.changed.size >= this.k * 4) return this.rescoreAll();
    const only = [...this.changed].filter((h) => this.cluster.hosts[h]!.accepting).sort((a, b) => a - b);
    this.changed.clear();
    // nothing moves during the pass: the index's candidate lists stay as they are
    this.amongCache = new WeakMap();
    for (const host of this.sources) this.rescore(host, only);
  }

  /** Scores every source again at this step: the heap then holds every host that has a move. */
  private rescoreAll(): void {
    this.changed.clear();
    for (const host of this.sources) {
      this.stamp[host]!++;
      this.rescore(host);
    }
  }

  run(): RebalancePlan {
    const started = performance.now();
    const scoreBefore = this.current;
    const before = this.score.components();
    let stopped: string = STOPPED.converged;
    // after a full rescore nothing is left unseen until the next move
    let complete = true;
    if (this.score.n > 0) this.rescoreAll();
    for (;;) {
      if (this.moves.length >= this.o.maxMoves) {
        stopped = STOPPED.moves;
        break;
      }
      if (performance.now() - started > this.o.timeBudgetMs) {
        stopped = STOPPED.time;
        break;
      }
      const top = this.heap.pop();
      if (!top) {
        if (!complete) {
          this.verify();
          complete = true;
          continue;
        }
        if (this.o.polish && this.moves.length + 2 <= this.o.maxMoves && this.polish()) {
          complete = false;
          continue;
        }
        break;
      }
      if (top.stamp !== this.stamp[top.host]) continue; // the host changed: a fresh entry is in the heap
      if (top.step !== this.step && this.exact) {
        this.rescoreAll();
        continue;
      }
      if (top.step !== this.step) {
        this.rescore(top.host);
        continue;
      }
      const from = this.cluster.workloads[top.index]!.host;
      this.record(top.index, top.to, top.bytes, (f, b, a) => this.lowers(f, b, a));
      complete = false;
      this.rescore(from);
      this.rescore(top.to);
    }
    const moves = this.o.prune ? this.pruned(scoreBefore) : this.moves;
    return {
      moves,
      scoreBefore,
      scoreAfter: this.current,
      components: { before, after: this.score.components() },
      stopped,
      stats: { steps: this.step, evaluations: this.evaluations, swaps: this.swaps },
    };
  }

  /**
   * The plan after the prune: each workload that still moves, once, from where it started to where
   * it ends, in the order of its last move in the search; a move not feasible yet waits for the
   * others. Unchanged when nothing was dropped and no workload moved twice; the search's own
   * sequence when no order is feasible.
   */
  private pruned(scoreBefore: number): PlannedMove[] {
    if (this.moves.length === 0) return this.moves;
    const last = new Map<number, number>();
    this.log.forEach((m, at) => last.set(m.index, at));
    const moved: Displacement[] = [...last.keys()].sort((a, b) => last.get(a)! - last.get(b)!).map((index) => ({ index, origin: this.origin.get(index)! }));
    const greedy = this.o.polishKeepsLength ? this.beforePolish : null;
    const lengthCap = greedy ? { moves: greedy.sequence.length, score: greedy.score, pairs: this.swapPairs } : undefined;
    const keep = pruneMoves({ cluster: this.cluster, usage: this.state.usage, score: this.score, move: this.apply, cost: (bytes) => this.cost(bytes) }, moved, lengthCap);
    if (keep.length === this.log.length && this.log.length <= this.o.maxMoves) return this.moves; // nothing dropped, nothing moved twice
    const final = new Map(keep.map((d) => [d.index, this.cluster.workloads[d.index]!.host]));
    const replay = (sequence: Array<{ index: number; to: number }>): PlannedMove[] | null => {
      for (const d of moved) if (this.cluster.workloads[d.index]!.host !== d.origin) this.score.apply(d.index, d.origin, this.apply);
      const out: PlannedMove[] = [];
      let pending = sequence;
      while (pending.length > 0) {
        const waiting: typeof pending = [];
        for (const m of pending) {
          if (firstRefusal(this.cluster, this.state.usage, m.index, m.to) !== null) {
            waiting.push(m);
            continue;
          }
          const w = this.cluster.workloads[m.index]!;
          const from = w.host;
          const before = this.score.value();
          const bytes = moveBytes(this.cluster, m.index, m.to);
          this.score.apply(m.index, m.to, this.apply);
          const after = this.score.value();
          const fromId = this.cluster.hosts[from]!.id;
          const reason =
            after < before
              ? this.lowers(fromId, before, after)
              : `makes room on the way (${before.toFixed(4)} → ${after.toFixed(4)}): the plan as a whole lowers the cluster score from ${scoreBefore.toFixed(4)}`;
          out.push({ workload: w.id, from: fromId, to: this.cluster.hosts[m.to]!.id, bytes, score: after, reason });
        }
        if (waiting.length === pending.length) return null;
        pending = waiting;
      }
      return out;
    };
    const current = this.current;
    const extraMoves = greedy ? keep.length - greedy.sequence.length : 0;
    if (greedy && (this.score.value() > greedy.score || (extraMoves > 0 && (greedy.score - this.score.value()) / extraMoves < greedy.marginalGain))) {
      // the polish could not make the plan better in as many moves, and the moves it adds gain
      // less each than the single-move search's last move did: the single-move search's plan
      const plan = replay(greedy.sequence);
      if (plan) {
        this.current = this.score.value();
        return plan;
      }
    }
    const plan = replay(keep.map((d) => ({ index: d.index, to: final.get(d.index)! })));
    if (plan && plan.length <= this.o.maxMoves) {
      this.current = this.score.value();
      return plan;
    }
    // no feasible order for the shorter plan: the search's own, which was feasible step by step,
    // within the budget
    const prefix = replay(this.log.slice(0, this.o.maxMoves));
    this.current = prefix ? this.score.value() : current;
    return prefix ?? this.moves;
  }

  /** the workloads away from where they started, each once to where it is, in the order of its last move */
  private displacements(): Array<{ index: number; to: number }> {
    const last = new Map<number, number>();
    this.log.forEach((m, at) => last.set(m.index, at));
    return [...last.keys()]
      .sort((a, b) => last.get(a)! - last.get(b)!)
      .filter((index) => this.cluster.workloads[index]!.host !== this.origin.get(index))
      .map((index) => ({ index, to: this.cluster.workloads[index]!.host }));
  }

  /** One swap, when one lowers the score by more than the cost of its two moves. */
  private polish(): boolean {
    this.beforePolish ??= { sequence: this.displacements(), score: this.current, marginalGain: this.lastSingleGain };
    const swap = findSwap({
      cluster: this.cluster,
      usage: this.state.usage,
      score: this.score,
      // a few hosts at each end: every pair of their workloads is scored
      sources: this.index.mostLoaded(POLISH_HOSTS),
      destinations: this.index.leastLoaded(POLISH_HOSTS),
      cost: (bytes) => this.cost(bytes),
      minGain: this.o.minGain,
    });
    if (!swap) return false;
    this.swaps++;
    this.swapPairs.push([swap.first.index, swap.second.index]);
    const a = this.cluster.workloads[swap.first.index]!;
    const b = this.cluster.workloads[swap.second.index]!;
    const start = this.current;
    this.record(swap.first.index, swap.first.to, swap.first.bytes, () => `first half of a swap with ${b.id}, which lowers the cluster score ${start.toFixed(4)} → ${swap.after.toFixed(4)}`);
    this.record(swap.second.index, swap.second.to, swap.second.bytes, () => `second half of a swap with ${a.id}: lowers the cluster score ${start.toFixed(4)} → ${this.current.toFixed(4)}`);
    this.rescore(swap.first.to);
    this.rescore(swap.second.to);
    return true;
  }
}
