import type { z } from 'zod';
import { RebalanceRequest, SCORE_TERMS, type PlanRecord } from '@ferry/protocol';
import { UsageError } from './errors.ts';

/** The CLI's flag for each field of the API's rebalance request. */
const FLAGS = { maxMoves: '--max-moves', minGain: '--min-gain', moveCost: '--move-cost', moveCostPerGiB: '--move-cost-per-gib' } as const;

export type RebalanceFlags = Partial<Record<keyof typeof FLAGS | 'weights', string>>;
export type RebalanceBody = Partial<Pick<z.output<typeof RebalanceRequest>, keyof typeof FLAGS | 'weights'>>;

/** `--weights mem=1,cpu=0.5`: the score's weights by term (the API checks the names and bounds). */
function parseWeights(raw: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of raw.split(',')) {
    const [term, value, extra] = part.split('=').map((x) => x.trim());
    const n = Number(value);
    if (!term || value === undefined || value === '' || extra !== undefined || !Number.isFinite(n)) throw new UsageError(`--weights takes TERM=NUMBER,… (e.g. mem=1,cpu=0.5), not ${raw}`);
    out[term] = n;
  }
  return out;
}

function explain(issue: z.core.$ZodIssue): string {
  if (issue.code === 'too_big') return `must be ${issue.inclusive === false ? 'below' : 'at most'} ${String(issue.maximum)}`;
  if (issue.code === 'too_small') return `must be ${issue.inclusive === false ? 'above' : 'at least'} ${String(issue.minimum)}`;
  if (issue.code === 'invalid_type' && issue.expected === 'int') return 'must be a whole number';
  return issue.message;
}

/**
 * The body of POST /v1/rebalance from the command line's flags, checked here against the API's
 * own schema (RebalanceRequest: its bounds, not a copy of them), so that a value the API would
 * refuse is refused before anything is asked, naming the flag. Only the flags given are sent: the
 * API's defaults stay the API's.
 */
export function rebalanceBody(flags: RebalanceFlags): RebalanceBody {
  const body: Record<string, unknown> = {};
  for (const key of Object.keys(FLAGS) as Array<keyof typeof FLAGS>) {
    const raw = flags[key];
    if (raw === undefined) continue;
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value)) throw new UsageError(`${FLAGS[key]} must be a number, not ${raw}`);
    body[key] = value;
  }
  if (flags.weights !== undefined) body.weights = parseWeights(flags.weights);
  const parsed = RebalanceRequest.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.path[0] === 'weights') {
      const term = issue.path[1];
      const what = issue.code === 'unrecognized_keys' ? `has no term ${issue.keys.join(', ')} (terms: ${SCORE_TERMS.join(', ')})` : `${String(term)} ${explain(issue)} (the API's limit)`;
      throw new UsageError(`--weights ${what}, not ${flags.weights ?? ''}`);
    }
    const key = issue.path[0] as keyof typeof FLAGS;
    throw new UsageError(`${FLAGS[key] ?? String(key)} ${explain(issue)} (the API's limit), not ${flags[key] ?? ''}`.trim());
  }
  const out: RebalanceBody = {};
  for (const key of Object.keys(body) as Array<keyof RebalanceBody>) Object.assign(out, { [key]: parsed.data[key] });
  return out;
}

/**
 * The score's named components of a plan, when it has them (`components`: each term, weighted,
 * before and after), as lines for a terminal; none for a plan without.
 */
export function componentLines(plan: Pick<PlanRecord, 'id'> & { components?: unknown }): string[] {
  const c = plan.components;
  if (!c || typeof c !== 'object') return [];
  const record = (v: unknown): Record<string, number> | null => (v && typeof v === 'object' && Object.values(v).every((x) => typeof x === 'number') ? (v as Record<string, number>) : null);
  const { before, after } = c as { before?: unknown; after?: unknown };
  const b = record(before);
  const a = record(after);
  const rows: Array<[string, number | null, number | null]> =
    b || a
      ? [...new Set([...Object.keys(b ?? {}), ...Object.keys(a ?? {})])].map((k) => [k, b?.[k] ?? null, a?.[k] ?? null])
      : Object.entries(c as Record<string, unknown>).flatMap(([k, v]): Array<[string, number | null, number | null]> => {
          if (typeof v === 'number') return [[k, null, v]];
          const pair = v as { before?: unknown; after?: unknown } | null;
          return pair && (typeof pair.before === 'number' || typeof pair.after === 'number')
            ? [[k, typeof pair.before === 'number' ? pair.before : null, typeof pair.after === 'number' ? pair.after : null]]
            : [];
        });
  if (rows.length === 0) return [];
  const width = Math.max(...rows.map(([k]) => k.length));
  const n = (x: number | null) => (x === null ? '—' : x.toFixed(4));
  return ['score components (weighted; they add up to the score):', ...rows.map(([k, x, y]) => `  ${k.padEnd(width)}  ${x === null ? n(y) : `${n(x)} → ${n(y)}`}`)];
}
