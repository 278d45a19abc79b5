import { describe, expect, it } from 'vitest';
import { histogramQuantile, parseHistogram } from '../../bench/helpers/prom-histogram.ts';

const scrape = (counts: [string, number][], sum: number) =>
  [
    '# HELP x_seconds some help',
    '# TYPE x_seconds histogram',
    ...counts.map(([le, n]) => `x_seconds_bucket{service="agent",le="${le}"} ${n}`),
    `x_seconds_sum{service="agent"} ${sum}`,
    `x_seconds_count{service="agent"} ${counts.at(-1)![1]}`,
    'x_seconds_other 99',
  ].join('\n');

describe('a scraped Prometheus histogram', () => {
  it('reads its cumulative buckets, sum and count whatever the label order', () => {
    const h = parseHistogram(
      scrape(
        [
          ['0.1', 2],
          ['0.5', 5],
          ['+Inf', 6],
        ],
        1.5,
      ),
      'x_seconds',
    );
    expect([...h.buckets]).toEqual([
      [0.1, 2],
      [0.5, 5],
      [Infinity, 6],
    ]);
    expect(h.sum).toBe(1.5);
    expect(h.count).toBe(6);
  });

  it('gives quantiles of what was observed between two scrapes, interpolated inside the bucket', () => {
    const before = parseHistogram(
      scrape(
        [
          ['0.1', 10],
          ['0.5', 10],
          ['+Inf', 10],
        ],
        0.5,
      ),
      'x_seconds',
    );
    // since then: 2 observations ≤ 0.1 s, 4 in (0.1, 0.5], none above
    const after = parseHistogram(
      scrape(
        [
          ['0.1', 12],
          ['0.5', 16],
          ['+Inf', 16],
        ],
        2,
      ),
      'x_seconds',
    );
    expect(histogramQuantile(before, after, 0.5)!.value).toBeCloseTo(0.1 + 0.4 * (1 / 4)); // rank 3: the 1st of 4 in (0.1, 0.5]
    expect(histogramQuantile(before, after, 0.25)!.value).toBeCloseTo(0.1 * (1.5 / 2));
    expect(histogramQuantile(before, after, 1)).toEqual({ value: 0.5, beyond: false });
  });

  it('says when a quantile lies past the last finite bound, and when nothing was observed', () => {
    const before = parseHistogram(
      scrape(
        [
          ['0.1', 0],
          ['+Inf', 0],
        ],
        0,
      ),
      'x_seconds',
    );
    const after = parseHistogram(
      scrape(
        [
          ['0.1', 1],
          ['+Inf', 3],
        ],
        9,
      ),
      'x_seconds',
    );
    expect(histogramQuantile(before, after, 0.99)).toEqual({ value: 0.1, beyond: true });
    expect(histogramQuantile(after, after, 0.5)).toBeNull();
  });
});
