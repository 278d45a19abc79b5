import { MAX_CAPACITY_REPORT_BYTES, hostIdFromCapacitySubject, type CapacityRejection, type CapacityReport } from '@ferry/protocol';
import { decodeText, describeIssues } from '@ferry/runtime';
import { validateReport } from './validation.ts';

export type IntakeResult = { ok: true; report: CapacityReport } | { ok: false; reason: CapacityRejection; hostId: string | null; detail: string };

/**
 * Decides whether a capacity message is acceptable. Pure: bytes in, report or rejection out.
 * Size is checked before any parsing, so an oversized body costs nothing to reject. With the
 * subject host's `previous` accepted report, only the fields that changed are validated
 * (validateReport).
 */
export function parseCapacityMessage(subject: string, data: Uint8Array, previous?: (hostId: string) => CapacityReport | undefined): IntakeResult {
  const hostId = hostIdFromCapacitySubject(subject);
  if (hostId === null) {
    return { ok: false, reason: 'BAD_SUBJECT', hostId: null, detail: `not a capacity subject: ${subject.slice(0, 200)}` };
  }
  if (data.byteLength > MAX_CAPACITY_REPORT_BYTES) {
    return {
      ok: false,
      reason: 'OVERSIZED',
      hostId,
      detail: `${data.byteLength} bytes, limit ${MAX_CAPACITY_REPORT_BYTES}`,
    };
  }
  let body: unknown;
  try {
    body = JSON.parse(decodeText(data));
  } catch (err) {
    return { ok: false, reason: 'NOT_JSON', hostId, detail: (err as Error).message };
  }
  const parsed = validateReport(body, previous?.(hostId));
  if (!parsed.ok) {
    return { ok: false, reason: 'SCHEMA', hostId, detail: describeIssues(parsed.error).slice(0, 10).join('; ') };
  }
  if (parsed.report.hostId !== hostId) {
    return {
      ok: false,
      reason: 'SUBJECT_MISMATCH',
      hostId,
      detail: `body names host ${parsed.report.hostId} but was published for ${hostId}`,
    };
  }
  return { ok: true, report: parsed.report };
}
