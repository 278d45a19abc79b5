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

describe('ferry rebalance: the move cost and the score weights, through the same schema', () => {
  const refusal = (flags: Parameters<typeof rebalanceBody>[0]) => {
    try {
      rebalanceBody(flags);
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
      return (err as Error).message;
    }
    throw new Error('accepted');
  };

  it('sends --move-cost, --move-cost-per-gib and --weights as the API takes them', () => {
    expect(rebalanceBody({ moveCost: '0.001', moveCostPerGiB: '0', weights: 'cpu=0.5, instances=0.1' })).toEqual({
      moveCost: 0.001,
      moveCostPerGiB: 0,
      weights: { cpu: 0.5, instances: 0.1 },
    });
    expect(RebalanceRequest.parse({ weights: { mem: 2 } }).weights).toEqual({ mem: 2 });
  });

  it('refuses a term the score does not have, a negative weight, a malformed list, a negative cost', () => {
    expect(refusal({ weights: 'ram=1' })).toBe('--weights has no term ram (terms: mem, cpu, disk, instances, overcommit, antiAffinity, draining), not ram=1');
    expect(refusal({ weights: 'cpu=-1' })).toMatch(/^--weights cpu must be (at least|above) 0 \(the API's limit\), not cpu=-1$/);
    expect(refusal({ weights: 'cpu' })).toBe('--weights takes TERM=NUMBER,… (e.g. mem=1,cpu=0.5), not cpu');
    expect(refusal({ weights: 'cpu=1=2' })).toContain('--weights takes TERM=NUMBER');
    expect(refusal({ moveCost: '-0.1' })).toMatch(/^--move-cost must be (at least|above) 0 /);
    expect(refusal({ moveCostPerGiB: 'x' })).toBe('--move-cost-per-gib must be a number, not x');
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
