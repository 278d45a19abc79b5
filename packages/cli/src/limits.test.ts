import { describe, expect, it } from 'vitest';
import { RebalanceRequest } from '@ferry/protocol';
import { UsageError } from './errors.ts';
import { componentLines, rebalanceBody } from './limits.ts';

describe('ferry rebalance: the API limits, checked before anything is asked', () => {
  const refusal = (flags: Parameters<typeof rebalanceBody>[0]) => {
    try {
      rebalanceBody(flags);
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
      return (err as Error).message;
    }
    throw new Error('accepted');
  };

  it('sends only the flags given, as numbers', () => {
    expect(rebalanceBody({})).toEqual({});
    expect(rebalanceBody({ maxMoves: '30', minGain: '0.001' })).toEqual({ maxMoves: 30, minGain: 0.001 });
  });

  it("refuses --max-moves above the API's cap, naming the flag and the bound", () => {
    const cap = RebalanceRequest.shape.maxMoves.unwrap().maxValue!;
    expect(rebalanceBody({ maxMoves: String(cap) })).toEqual({ maxMoves: cap });
    expect(refusal({ maxMoves: String(cap + 1) })).toBe(`--max-moves must be at most ${cap} (the API's limit), not ${cap + 1}`);
    expect(refusal({ maxMoves: '10000' })).toContain('--max-moves must be at most');
    expect(refusal({ maxMoves: '0' })).toMatch(/^--max-moves must be at least 1 /);
    expect(refusal({ maxMoves: '2.5' })).toMatch(/^--max-moves must be a whole number/);
    expect(refusal({ maxMoves: 'lots' })).toBe('--max-moves must be a number, not lots');
  });

  it('checks --min-gain against the same schema', () => {
    expect(refusal({ minGain: '-1' })).toMatch(/^--min-gain must be (at least|above) 0 \(the API's limit\), not -1$/);
    expect(refusal({ minGain: '1e9' })).toMatch(/^--min-gain must be at most \d+/);
    expect(refusal({ minGain: '' })).toBe('--min-gain must be a number, not ');
  });
});

describe('score components in the output', () => {
  it('none for a plan without them', () => {
    expect(componentLines({ id: 'p-1' })).toEqual([]);
    expect(componentLines({ id: 'p-1', components: null })).toEqual([]);
  });

  it('before → after per component', () => {
    const lines = componentLines({ id: 'p-1', components: { before: { mem: 0.5, cpu: 0.25 }, after: { mem: 0.1, cpu: 0.2 } } });
    expect(lines[0]).toContain('score components');
    expect(lines.slice(1)).toEqual(['  mem  0.5000 → 0.1000', '  cpu  0.2500 → 0.2000']);
  });

  it('per component pairs, or plain values', () => {
    expect(componentLines({ id: 'p-1', components: { mem: { before: 1, after: 0.5 } } }).slice(1)).toEqual(['  mem  1.0000 → 0.5000']);
    expect(componentLines({ id: 'p-1', components: { mem: 0.5, antiAffinity: 0 } }).slice(1)).toEqual(['  mem           0.5000', '  antiAffinity  0.0000']);
  });
});
