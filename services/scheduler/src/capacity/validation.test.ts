import { describe, expect, it } from 'vitest';
import { CapacityReport } from '@ferry/protocol';
import { sampleContainer, sampleReport } from '../../../../test/fixtures/capacity.ts';
import { sameJson, validateReport } from './validation.ts';

/** The report as it arrives: JSON, parsed (new objects, as from the wire). */
const wire = (value: unknown): unknown => JSON.parse(JSON.stringify(value));
const accepted = (value: unknown): CapacityReport => CapacityReport.parse(wire(value));

describe('a capacity report validated against the host’s previous one', () => {
  const previous = accepted(sampleReport('h1', { containerCount: 20, storage: { heartbeatOk: true, peers: [{ hostId: 'h2', pool: 'shared', unchangedForMs: 300, fenced: false }] } }));

  it('gives what the full schema gives, keeping the previous objects of the fields that did not change', () => {
    const body = wire({ ...previous, seq: 4, sentAt: previous.sentAt + 1000, load: { one: 0.3, five: 0.2, fifteen: 0.3 } });
    const result = validateReport(body, previous);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.report).toStrictEqual(CapacityReport.parse(body));
    expect(result.report.containers).toBe(previous.containers);
    expect(result.report.pools).toBe(previous.pools);
    expect(result.report.storage).toBe(previous.storage);
    expect(result.report.load).not.toBe(previous.load);
    expect(result.report.seq).toBe(4);
  });

  it('validates a changed field with its own schema: new containers, defaults filled in, unknown keys dropped', () => {
    const containers = [...previous.containers.slice(1), sampleContainer('w99', { state: 'stopped', pid: null, exit: { reason: 'oom-killed', at: 5 } })];
    const body = wire({ ...previous, containers, fencing: [{ id: 'f1', at: 1, action: 'stop', containers: ['w1'], lateMs: 10 }], extra: 'dropped' });
    const result = validateReport(body, previous);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.report).toStrictEqual(CapacityReport.parse(body));
    expect(result.report.fencing[0]!.by).toBe('agent');
    expect(result.report.containers).not.toBe(previous.containers);
  });

  it('keeps an optional field out when it is gone, as the full schema does', () => {
    const { storage: _gone, ...rest } = previous;
    const body = wire(rest);
    const result = validateReport(body, previous);
    expect(result.ok && result.report).toStrictEqual(CapacityReport.parse(body));
    expect(result.ok && 'storage' in result.report).toBe(false);
  });

  it('rejects a changed field that is wrong, with the full schema’s error', () => {
    const body = wire({ ...previous, containers: [...previous.containers, { ...sampleContainer('w100'), epoch: 0 }] });
    const result = validateReport(body, previous);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.issues.map((i) => i.path.join('.'))).toEqual(CapacityReport.safeParse(body).error!.issues.map((i) => i.path.join('.')));
  });

  it('rejects what is no object at all, and validates in full without a previous report', () => {
    expect(validateReport([1, 2], previous).ok).toBe(false);
    expect(validateReport(null, previous).ok).toBe(false);
    const body = wire(previous);
    const result = validateReport(body, undefined);
    expect(result.ok && result.report).toStrictEqual(CapacityReport.parse(body));
  });

  it('an unchanged field with a missing default is validated (the input differs from the accepted output)', () => {
    const withFence = accepted(sampleReport('h1', { fencing: [{ id: 'f1', at: 1, action: 'stop', containers: ['w1'], lateMs: 10, by: 'agent' }] }));
    // the same fence without `by`: not equal to what was accepted, validated, the default filled in again
    const body = wire({ ...withFence, fencing: [{ id: 'f1', at: 1, action: 'stop', containers: ['w1'], lateMs: 10 }] });
    const result = validateReport(body, withFence);
    expect(result.ok && result.report.fencing).toStrictEqual([{ id: 'f1', at: 1, action: 'stop', containers: ['w1'], lateMs: 10, by: 'agent' }]);
    expect(result.ok && result.report.fencing).not.toBe(withFence.fencing);
  });
});

describe('deep equality of JSON values', () => {
  it.each([
    [{ a: 1, b: [1, { c: null }] }, { b: [1, { c: null }], a: 1 }, true],
    [{ a: 1 }, { a: 1, b: 2 }, false],
    [{ a: 1, b: 2 }, { a: 1, c: 2 }, false],
    [[1, 2], [2, 1], false],
    [[], {}, false],
    [{}, [], false],
    [null, {}, false],
    ['1', 1, false],
    [{ a: [] }, { a: [] }, true],
  ])('%j vs %j: %s', (a, b, same) => {
    expect(sameJson(a, b)).toBe(same);
  });
});
