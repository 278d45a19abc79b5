import { describe, expect, it } from 'vitest';
import { MAX_CAPACITY_REPORT_BYTES, type CapacityReport } from '@ferry/protocol';
import { sampleReport } from '../../../../test/fixtures/capacity.ts';
import { parseCapacityMessage } from './intake.ts';

const report: CapacityReport = sampleReport('h1');
const bytes = (value: unknown) => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));

describe('capacity intake', () => {
  it('accepts a valid report', () => {
    expect(parseCapacityMessage('ferry.host.h1.capacity', bytes(report))).toEqual({ ok: true, report });
  });

  it.each([
    ['a subject that is no capacity subject', 'ferry.host.h1.other', report, 'BAD_SUBJECT'],
    ['a host id no agent may have', 'ferry.host.H_1.capacity', report, 'BAD_SUBJECT'],
    ['broken JSON', 'ferry.host.h1.capacity', '{"v":1', 'NOT_JSON'],
    ['wrong types', 'ferry.host.h1.capacity', { ...report, seq: '3' }, 'SCHEMA'],
    ['missing fields', 'ferry.host.h1.capacity', { v: 1, hostId: 'h1' }, 'SCHEMA'],
    ['negative memory', 'ferry.host.h1.capacity', { ...report, memory: { totalBytes: -1, availableBytes: 0 } }, 'SCHEMA'],
    ['a future protocol version', 'ferry.host.h1.capacity', { ...report, v: 2 }, 'SCHEMA'],
    ['a body for another host', 'ferry.host.h2.capacity', report, 'SUBJECT_MISMATCH'],
  ])('rejects %s', (_what, subject, body, reason) => {
    const result = parseCapacityMessage(subject, bytes(body));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toBe(reason);
  });

  it('rejects an oversized body before parsing it', () => {
    const huge = new Uint8Array(MAX_CAPACITY_REPORT_BYTES + 1).fill(0x20);
    const result = parseCapacityMessage('ferry.host.h1.capacity', huge);
    expect(result).toMatchObject({ ok: false, reason: 'OVERSIZED', hostId: 'h1' });
  });

  it("validates against the host's previous report: unchanged fields kept, a changed one that is wrong rejected", () => {
    const previous = (hostId: string) => (hostId === 'h1' ? report : undefined);
    const next = { ...report, seq: 4 };
    const accepted = parseCapacityMessage('ferry.host.h1.capacity', bytes(next), previous);
    expect(accepted).toEqual({ ok: true, report: next });
    if (accepted.ok) expect(accepted.report.pools).toBe(report.pools);
    const result = parseCapacityMessage('ferry.host.h1.capacity', bytes({ ...next, memory: { totalBytes: -1, availableBytes: 0 } }), previous);
    expect(result).toMatchObject({ ok: false, reason: 'SCHEMA' });
    if (!result.ok) expect(result.detail).toContain('memory.totalBytes');
    // a body naming another host is still refused, however much of it equals h1's report
    expect(parseCapacityMessage('ferry.host.h1.capacity', bytes({ ...next, hostId: 'h2' }), previous)).toMatchObject({ ok: false, reason: 'SUBJECT_MISMATCH' });
  });

  it('explains which fields are wrong', () => {
    const result = parseCapacityMessage('ferry.host.h1.capacity', bytes({ ...report, cpu: { ...report.cpu, family: 'x' } }));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.detail).toContain('cpu.family');
  });
});
