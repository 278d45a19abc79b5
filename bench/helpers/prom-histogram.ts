/**
 * A Prometheus histogram read from a scrape (text format), and its quantiles between two scrapes,
 * interpolated linearly inside the bucket as PromQL's histogram_quantile does.
 */
export interface ScrapedHistogram {
  /** cumulative counts by upper bound (Infinity for +Inf) */
  buckets: Map<number, number>;
  sum: number;
  count: number;
}

const escape = (name: string) => name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The histogram `name` in a scrape; its labels (le and any default ones) may come in any order. */
export function parseHistogram(text: string, name: string): ScrapedHistogram {
  const n = escape(name);
  const buckets = new Map<number, number>();
  for (const m of text.matchAll(new RegExp(`^${n}_bucket\\{[^}]*\\ble="([^"]+)"[^}]*\\} (\\S+)$`, 'gm'))) {
    buckets.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
  }
  const one = (suffix: string) => Number(new RegExp(`^${n}_${suffix}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { buckets, sum: one('sum'), count: one('count') };
}

/**
 * The q-quantile of the observations made between two scrapes, or null when there were none.
 * One that falls in the +Inf bucket is given as the last finite bound, with `beyond` set.
 */
export function histogramQuantile(from: ScrapedHistogram, to: ScrapedHistogram, q: number): { value: number; beyond: boolean } | null {
  const total = to.count - from.count;
  if (!(total > 0)) return null;
  const rank = q * total;
  let below = 0;
  let lower = 0;
  for (const bound of [...to.buckets.keys()].sort((a, b) => a - b)) {
    const cumulative = to.buckets.get(bound)! - (from.buckets.get(bound) ?? 0);
    if (cumulative >= rank) {
      if (bound === Infinity) return { value: lower, beyond: true };
      const inBucket = cumulative - below;
      return { value: inBucket === 0 ? bound : lower + ((bound - lower) * (rank - below)) / inBucket, beyond: false };
    }
    below = cumulative;
    lower = bound;
  }
  return null;
}
