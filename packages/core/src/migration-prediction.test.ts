import { describe, expect, it } from 'vitest';
import type { MeasuredMigration } from '@ferry/protocol';
import { DEFAULT_COSTS, modelPrediction, predictionError, predictMove, type MoveToPredict } from './migration-prediction.ts';

const MiB = 2 ** 20;
const move = (o: Partial<MoveToPredict> = {}): MoveToPredict => ({ strategy: 'lazy', source: 'h1', destination: 'h2', memoryBytes: 64 * MiB, bytes: 64 * MiB, ...o });
const measured = (o: Partial<MeasuredMigration> = {}): MeasuredMigration => ({
  migrationId: 'm-x-1',
  strategy: 'lazy',
  source: 'h1',
  destination: 'h2',
  memoryBytes: 64 * MiB,
  bytes: 64 * MiB,
  freezeMs: 350,
  seconds: 1.5,
  predicted: null,
  at: 0,
  ...o,
});

describe('predicting a migration', () => {
  it('uses the cost model while nothing was measured', () => {
    const p = predictMove(move(), []);
    const model = modelPrediction('lazy', 64 * MiB, 64 * MiB);
    expect(p).toEqual({ freezeMs: Math.round(model.freezeMs), seconds: Math.round(model.seconds * 1000) / 1000, bytes: 64 * MiB, memoryBytes: 64 * MiB, basis: 'model' });
  });

  it('learns the scale of freeze and duration from three moves between the same hosts', () => {
    const model = modelPrediction('lazy', 64 * MiB, 64 * MiB);
    const history = [measured({ freezeMs: 340 }), measured({ freezeMs: 350 }), measured({ freezeMs: 5000 })]; // one outlier
    const p = predictMove(move(), history);
    expect(p.freezeMs).toBe(350); // the median, not the mean
    expect(p.seconds).toBeCloseTo(1.5, 2);
    expect(p.basis).toBe('3 measured (lazy h1→h2)');
    expect(p.seconds).not.toBeCloseTo(model.seconds, 1);
  });

  it('scales what it learned with the size of the move', () => {
    const history = [1, 2, 3].map(() => measured({ strategy: 'stop-and-copy', memoryBytes: 1024 * MiB, bytes: 1024 * MiB, freezeMs: 2000, seconds: 4 }));
    const small = predictMove(move({ strategy: 'stop-and-copy', memoryBytes: 256 * MiB, bytes: 256 * MiB }), history);
    const large = predictMove(move({ strategy: 'stop-and-copy', memoryBytes: 4096 * MiB, bytes: 4096 * MiB }), history);
    expect(large.freezeMs).toBeGreaterThan(small.freezeMs);
    expect(large.seconds).toBeGreaterThan(small.seconds);
  });

  it('falls back to the same strategy on other hosts, never to another strategy', () => {
    const elsewhere = [1, 2, 3].map(() => measured({ source: 'h3', destination: 'h4', freezeMs: 420 }));
    expect(predictMove(move(), elsewhere)).toMatchObject({ freezeMs: 420, basis: '3 measured (lazy, any hosts)' });
    const otherStrategy = [1, 2, 3].map(() => measured({ strategy: 'page-server', freezeMs: 900 }));
    expect(predictMove(move(), otherStrategy).basis).toBe('model');
    // two of the pair are not enough: the wider kind (five of the strategy) decides
    const mixed = [measured({ freezeMs: 100 }), measured({ freezeMs: 100 }), ...[1, 2, 3].map(() => measured({ source: 'h3', freezeMs: 800 }))];
    expect(predictMove(move(), mixed)).toMatchObject({ basis: '5 measured (lazy, any hosts)' });
  });

  it('keeps a cold move frozen for nothing', () => {
    expect(
      predictMove(
        move({ strategy: 'cold' }),
        [1, 2, 3].map(() => measured({ strategy: 'cold', freezeMs: null })),
      ).freezeMs,
    ).toBe(0);
  });

  it('reports its error over measured migrations', () => {
    const p = { freezeMs: 400, seconds: 2, bytes: 0, memoryBytes: 0, basis: 'model' };
    const error = predictionError([measured({ predicted: p, freezeMs: 500, seconds: 2 }), measured({ predicted: p, freezeMs: 400, seconds: 4 }), measured()]);
    expect(error.samples).toBe(2);
    expect(error.freeze).toEqual({ p50: 0.2, p90: 0.2 });
    expect(error.seconds).toEqual({ p50: 0.5, p90: 0.5 });
  });

  it('has a model that grows with memory for stop-and-copy and stays flat for post-copy', () => {
    expect(modelPrediction('lazy', 4096 * MiB, 0).freezeMs).toBe(DEFAULT_COSTS.lazyFreezeMs);
    expect(modelPrediction('stop-and-copy', 4096 * MiB, 0).freezeMs).toBe(4 * DEFAULT_COSTS.stopCopyFreezeMsPerGiB);
  });
});
