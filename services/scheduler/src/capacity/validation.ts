import { CapacityReport } from '@ferry/protocol';
import type { z } from 'zod';

export type ValidationResult = { ok: true; report: CapacityReport } | { ok: false; error: z.ZodError };

type Shape = typeof CapacityReport.shape;
type Field = keyof Shape;
const FIELDS = Object.keys(CapacityReport.shape) as Field[];

/**
 * Validates a capacity report against the host's previous accepted one, field by field: a field
 * whose value equals the previous report's (deep, as JSON values) is taken from it unvalidated, a
 * field that changed is validated with its own schema. Most of a report is the same from one
 * second to the next (its containers, pools, peers), so this does a fraction of the schema's work,
 * and what is kept is the previous report's very object (what downstream caches key on:
 * keepUnchanged, the pool models).
 *
 * Sound because the report schema has no transforms: an accepted report's fields are valid values
 * that parse to themselves, so an input equal to one is valid and parses to it. (Defaults fill in
 * a missing field; an input without it differs from the output, so it is validated.) Any field
 * that fails sends the whole body through the full schema, for the same error as ever.
 */
export function validateReport(body: unknown, previous: CapacityReport | undefined): ValidationResult {
  if (!previous || !isPlainObject(body)) return full(body);
  const out: Record<string, unknown> = {};
  for (const field of FIELDS) {
    const input = body[field];
    const before = previous[field];
    if (sameJson(input, before)) {
      if (before !== undefined) out[field] = before;
      continue;
    }
    const parsed = (CapacityReport.shape[field] as z.ZodType).safeParse(input);
    if (!parsed.success) return full(body);
    if (parsed.data !== undefined) out[field] = parsed.data;
  }
  return { ok: true, report: out as CapacityReport };
}

function full(body: unknown): ValidationResult {
  const parsed = CapacityReport.safeParse(body);
  return parsed.success ? { ok: true, report: parsed.data } : { ok: false, error: parsed.error };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deep equality of JSON values (what JSON.parse makes: no undefined, no cycles); key order does not matter. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(b, key) || !sameJson((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key])) return false;
  }
  return true;
}
