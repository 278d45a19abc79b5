import { describe, expect, it } from 'vitest';

// the dashboard's pure modules are plain browser JS (no build): imported as they are served
type Sample = { at: number; hostId?: string; [k: string]: unknown };
const chart = (await import(`../ui/${'chart.js'}`)) as { sparkline: (s: Sample[], pick: (s: Sample) => unknown, o?: Record<string, unknown>) => string };
const filters = (await import(`../ui/${'filters.js'}`)) as {
  EMPTY_FILTERS: Record<string, string>;
  workloadQuery: (f: Record<string, string>, limit: number, cursor?: string | null) => string;
  hostQuery: (f: Record<string, string>, limit: number, cursor?: string | null) => string;
  workloadMatches: (w: unknown, f: Record<string, string>) => boolean;
  filtersFromQuery: (q: string) => Record<string, string>;
  filtersToQuery: (f: Record<string, string>) => string;
  withinLoaded: (id: string, last: string | null, more: boolean) => boolean;
};
const measured = (await import(`../ui/${'measured.js'}`)) as { moveFigures: (m: unknown) => Record<string, number | null> };

describe('sparkline', () => {
  it('draws one dot per sample, scaled into the box over the given span', () => {
    const svg = chart.sparkline(
      [
        { at: 0, v: 0 },
        { at: 50, v: 5 },
        { at: 100, v: 10 },
      ],
      (s) => s.v,
      { width: 106, height: 46, from: 0, to: 100, label: 'cpu' },
    );
    expect(svg.match(/<circle /g)).toHaveLength(3);
    // x from 3 to 103, y from 43 (0) to 3 (the top: 10)
    expect(svg).toContain('points="3.0,43.0 53.0,23.0 103.0,3.0"');
    expect(svg).toContain('aria-label="cpu: 3 samples, latest 10"');
  });

  it('skips samples without the value and says when there is none', () => {
    expect(chart.sparkline([{ at: 1, v: null }], (s) => s.v)).toContain('no samples yet');
    expect(
      chart
        .sparkline(
          [
            { at: 1, v: null },
            { at: 2, v: 4 },
          ],
          (s) => s.v,
        )
        .match(/<circle /g),
    ).toHaveLength(1);
  });

  it('escapes what it writes', () => {
    expect(chart.sparkline([{ at: 1, v: 1, hostId: '<h>' }], (s) => s.v, { label: '"x"' })).not.toMatch(/<h>|"x"/);
  });
});

describe('the overview filters', () => {
  const w = (id: string, more: Record<string, unknown> = {}) => ({ spec: { id, template: 'debian', labels: { tier: 'web' } }, hostId: 'h1', phase: 'running', ...more });
  const f = (set: Record<string, string>) => ({ ...filters.EMPTY_FILTERS, ...set });

  it('asks the API for what the filters say, nothing else', () => {
    expect(filters.workloadQuery(f({ host: 'h2', label: 'tier=web' }), 100)).toBe('/v1/workloads?host=h2&label=tier%3Dweb&limit=100');
    expect(filters.workloadQuery(f({}), 50, 'abc')).toBe('/v1/workloads?limit=50&cursor=abc');
    expect(filters.hostQuery(f({ host: 'h1', hostState: 'up', phase: 'running' }), 48)).toBe('/v1/hosts?search=h1&state=up&limit=48');
  });

  it('decides as the API does whether a workload belongs in the view', () => {
    expect(filters.workloadMatches(w('web-1'), f({ search: 'web', template: 'debian', label: 'tier' }))).toBe(true);
    expect(filters.workloadMatches(w('web-1'), f({ label: 'tier=db' }))).toBe(false);
    expect(filters.workloadMatches(w('web-1'), f({ host: 'h2' }))).toBe(false);
    expect(filters.workloadMatches(w('web-1'), f({ phase: 'stopped' }))).toBe(false);
    expect(filters.workloadMatches(w('db-1'), f({ search: 'web' }))).toBe(false);
  });

  it('round-trips through the address', () => {
    const set = f({ phase: 'running', label: 'tier=web,zone' });
    expect(filters.filtersFromQuery(filters.filtersToQuery(set))).toEqual(set);
  });

  it('places a record an event names within the pages shown, or leaves it to "more"', () => {
    expect(filters.withinLoaded('b', 'c', true)).toBe(true);
    expect(filters.withinLoaded('d', 'c', true)).toBe(false);
    expect(filters.withinLoaded('d', 'c', false)).toBe(true);
  });
});

describe('a move as measured', () => {
  it('takes the agents’ freeze and the duration from the first phase to the end', () => {
    const m = { createdAt: 0, finishedAt: 9_000, timeline: [{ startedAt: 2_000 }, { startedAt: 3_000 }], freeze: { agentMs: 600 }, predicted: { freezeMs: 400, seconds: 5 } };
    expect(measured.moveFigures(m)).toEqual({ predictedFreezeMs: 400, measuredFreezeMs: 600, predictedSeconds: 5, measuredSeconds: 7, freezeRatio: 1.5 });
  });

  it('has no measured figures for one still running or never predicted', () => {
    expect(measured.moveFigures({ createdAt: 0, finishedAt: null, timeline: [], freeze: { agentMs: null } })).toEqual({
      predictedFreezeMs: null,
      measuredFreezeMs: null,
      predictedSeconds: null,
      measuredSeconds: null,
      freezeRatio: null,
    });
  });
});
