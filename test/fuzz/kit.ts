/**
 * Shared pieces of the fuzz tests (issue 13, part 6): fast-check settings, hostile values, and
 * mutations of a valid sample. Unit fuzz (packages/*\/src/fuzz.test.ts, services/*\/src/fuzz.test.ts)
 * and the live API fuzz (test/api-fuzz.test.ts) use them.
 *
 * Deterministic by default (a fixed seed, CI sees the same inputs every run); FUZZ_SEED picks
 * another seed and FUZZ_RUNS multiplies every property's number of runs, to explore more:
 *   FUZZ_SEED=$RANDOM FUZZ_RUNS=20 npx vitest run --project unit fuzz
 * A failure prints the seed and the path fast-check needs to replay it.
 */
import fc from 'fast-check';
import { z } from 'zod';

export const FUZZ_SEED = Number.parseInt(process.env.FUZZ_SEED ?? '', 10) || 20_261_201;
const RUNS_FACTOR = Math.max(0.01, Number.parseFloat(process.env.FUZZ_RUNS ?? '') || 1);

/** fast-check parameters: the fixed (or FUZZ_SEED) seed, `runs` × FUZZ_RUNS runs. */
export const fuzzParams = (runs: number): fc.Parameters<unknown> => ({
  seed: FUZZ_SEED,
  numRuns: Math.max(1, Math.round(runs * RUNS_FACTOR)),
  endOnFailure: true,
  // fast-check's own report stringifies the counterexample recursively: a 20 000-deep one overflows
  reporter: (details) => {
    if (!details.failed) return;
    const error = details.errorInstance instanceof Error ? details.errorInstance : new Error(String(details.errorInstance));
    error.message = `property failed (seed ${details.seed}, path "${details.counterexamplePath}"): ${error.message}\ncounterexample: ${jsonText(details.counterexample).slice(0, 2000)}`;
    throw error;
  },
});

/** keys that must never reach an object's prototype chain */
export const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__'] as const;

/** `depth` levels of objects (or arrays) around `inner` */
export function nested(depth: number, inner: unknown = 1, arrays = false): unknown {
  let value = inner;
  for (let i = 0; i < depth; i += 1) value = arrays ? [value] : { a: value };
  return value;
}

const HUGE = 'x'.repeat(1 << 20);

/** strings a parser must survive: NUL, control characters, lone surrogates, path tricks, huge */
export const nastyString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    'a\u0000b',
    'w1\u0000',
    '\uD800',
    '\uDFFF',
    '\uFEFF',
    '\u202E',
    'é',
    'e\u0301',
    '🚀',
    'Ω≈ç√',
    '../../etc/passwd',
    '..%2F..%2Fetc',
    '%00',
    '/',
    '\\',
    'C:\\',
    '\r\n',
    '${jndi:ldap://x}',
    '<script>alert(1)</script>',
    "'; DROP TABLE x; --",
    '__proto__',
    'constructor',
    'NaN',
    'Infinity',
    '-0',
    '1e308',
    'true',
    'null',
    '{}',
    'a'.repeat(65),
    'a'.repeat(4097),
    HUGE,
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ maxLength: 40 }),
);

/** numbers a parser must survive */
export const nastyNumber: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(NaN, Infinity, -Infinity, -0, 0, 1e308, -1e308, 5e-324, Number.MAX_SAFE_INTEGER + 2, Number.MIN_SAFE_INTEGER - 2, 2 ** 31, -(2 ** 31), 2 ** 64, 0.1, -1, 65_536),
  fc.double(),
  fc.integer(),
);

/** values of every kind, JSON-representable or not (what a bug elsewhere could hand a parser) */
export const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: nastyString, weight: 4 },
  { arbitrary: nastyNumber, weight: 4 },
  {
    arbitrary: fc.constantFrom<unknown>(
      null,
      undefined,
      true,
      false,
      {},
      [],
      [[]],
      Object.create(null),
      JSON.parse('{"__proto__":{"polluted":"yes"}}'),
      JSON.parse('{"constructor":{"prototype":{"polluted":"yes"}}}'),
      nested(2000),
      nested(2000, 1, true),
      Array.from({ length: 10_000 }, (_, i) => i),
      Array.from({ length: 2000 }, () => 'x'.repeat(100)),
      new Date(0),
      10n,
      Symbol('s'),
      () => 1,
      new Map([['a', 1]]),
      new Uint8Array(3),
    ),
    weight: 3,
  },
  { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 2 },
);

type Path = Array<string | number>;

/** every path into a JSON-ish value (objects and arrays), the root included */
export function pathsOf(value: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (prefix.length >= 8) return out;
  // only into plain arrays and objects (what JSON makes; clone copies just those)
  if (Array.isArray(value)) for (let i = 0; i < value.length; i += 1) pathsOf(value[i], [...prefix, i], out);
  else if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) for (const [k, v] of Object.entries(value)) pathsOf(v, [...prefix, k], out);
  return out;
}

/** a copy of the plain objects and arrays in a value (own keys, `__proto__` included); anything else is shared */
function clone<T>(value: T, depth = 0): T {
  // mutations happen near the top (pathsOf stops at depth 8): deeper parts can be shared
  if (depth > 16) return value;
  if (Array.isArray(value)) {
    const copy: unknown[] = []; // (not value.map: an array from fast-check may carry its own `constructor`)
    for (let i = 0; i < value.length; i += 1) copy.push(clone(value[i], depth + 1));
    return copy as T;
  }
  if (!value || typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return value;
  const copy = {} as Record<string, unknown>;
  for (const [k, v] of Object.entries(value)) Object.defineProperty(copy, k, { value: clone(v, depth + 1), enumerable: true, writable: true, configurable: true });
  return copy as T;
}

function at(root: unknown, path: Path): unknown {
  let node = root as Record<string | number, unknown>;
  for (const key of path) node = node[key] as Record<string | number, unknown>;
  return node;
}

/** the same value with `path` replaced (the root: the value itself) */
function replaceAt(root: unknown, path: Path, value: unknown): unknown {
  if (path.length === 0) return value;
  const copy = clone(root);
  const parent = at(copy, path.slice(0, -1)) as Record<string | number, unknown>;
  Object.defineProperty(parent, path[path.length - 1]!, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

function deleteAt(root: unknown, path: Path): unknown {
  if (path.length === 0) return undefined;
  const copy = clone(root);
  const parent = at(copy, path.slice(0, -1)) as Record<string | number, unknown>;
  if (Array.isArray(parent)) parent.splice(path[path.length - 1] as number, 1);
  else delete parent[path[path.length - 1]!];
  return copy;
}

/** an own property, even `__proto__` (as JSON.parse makes it), on a copy of the object at `path` */
function addKeyAt(root: unknown, path: Path, key: string, value: unknown): unknown {
  const target = path.length === 0 ? root : at(root, path);
  if (!target || typeof target !== 'object') return root;
  const copy = clone(root);
  Object.defineProperty(path.length === 0 ? copy : at(copy, path), key, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

/**
 * Mutations of a valid sample: one to three of replace a field (hostile value, another field's
 * value), drop it, add an unknown or prototype-polluting key, wrap it in deep nesting.
 */
export function mutationsOf(sample: unknown): fc.Arbitrary<unknown> {
  // (a sample looked up by an attacker's key could be Object.prototype itself: never mutate that)
  if (sample !== null && typeof sample === 'object' && !Array.isArray(sample) && Object.getPrototypeOf(sample) !== Object.prototype) throw new Error('mutationsOf takes a plain JSON value');
  const paths = pathsOf(sample);
  const one = (value: unknown): fc.Arbitrary<unknown> => {
    const here = pathsOf(value);
    const path = fc.constantFrom(...(here.length > 0 ? here : paths));
    return fc.oneof(
      { arbitrary: fc.tuple(path, nastyValue).map(([p, v]) => replaceAt(value, p, v)), weight: 6 },
      { arbitrary: path.map((p) => deleteAt(value, p)), weight: 2 },
      { arbitrary: fc.tuple(path, fc.constantFrom<string>(...PROTO_KEYS, 'extra', ''), nastyValue).map(([p, k, v]) => addKeyAt(value, p, k, v)), weight: 2 },
      { arbitrary: fc.tuple(path, fc.integer({ min: 1, max: 3000 })).map(([p, d]) => replaceAt(value, p, nested(d))), weight: 1 },
      { arbitrary: fc.tuple(path, path).map(([p, q]) => replaceAt(value, p, clone(at(value, q)))), weight: 1 },
    );
  };
  return one(sample).chain((first) =>
    fc.oneof(
      fc.constant(first),
      one(first).chain((second) => fc.oneof(fc.constant(second), one(second))),
    ),
  );
}

/** input for a boundary: arbitrary values, JSON from the wire, and mutations of a valid sample */
export function boundaryInput(sample: unknown): fc.Arbitrary<unknown> {
  return fc.oneof(
    { arbitrary: mutationsOf(sample), weight: 6 },
    { arbitrary: fc.jsonValue({ maxDepth: 4 }), weight: 1 },
    {
      arbitrary: fc.anything({
        maxDepth: 3,
        withNullPrototype: true,
        withBoxedValues: true,
        withMap: true,
        withSet: true,
        withDate: true,
        withBigInt: true,
        withSparseArray: true,
        withObjectString: true,
      }),
      weight: 1,
    },
    { arbitrary: nastyValue, weight: 1 },
  );
}

/** the JSON text of a value; values JSON cannot carry (BigInt, cycles) become a hostile text */
export function jsonText(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch {
    return '{"__proto__":{"polluted":"yes"}}';
  }
}

/** does any part of this schema transform its input (its output then need not parse again)? */
export function transforms(schema: z.ZodType, seen = new Set<unknown>()): boolean {
  if (seen.has(schema)) return false;
  seen.add(schema);
  const def = (schema as unknown as { def: Record<string, unknown> }).def;
  if (def.type === 'pipe' || def.type === 'transform') return true;
  const children = (value: unknown): unknown[] =>
    value instanceof z.ZodType
      ? [value]
      : Array.isArray(value)
        ? value.flatMap(children)
        : value && typeof value === 'object' && (value as object).constructor === Object
          ? Object.values(value).flatMap(children)
          : [];
  for (const [key, value] of Object.entries(def)) {
    if (key === 'shape') {
      const shape = typeof value === 'function' ? (value as () => unknown)() : value;
      if (children(shape).some((c) => transforms(c as z.ZodType, seen))) return true;
    } else if (children(value).some((c) => transforms(c as z.ZodType, seen))) return true;
  }
  return false;
}

/** could this value have come from JSON.parse (plain objects, arrays, strings, finite numbers, booleans, null)? */
export function fromJson(root: unknown): boolean {
  const stack = [root]; // (iterative: inputs nest 20 000 deep)
  while (stack.length > 0) {
    const value = stack.pop();
    if (value === null || typeof value === 'string' || typeof value === 'boolean') continue;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) return false;
      continue;
    }
    if (Array.isArray(value)) {
      if (Object.keys(value).length !== value.length) return false;
      for (let i = 0; i < value.length; i += 1) stack.push(value[i]);
      continue;
    }
    if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
      stack.push(...Object.values(value));
      continue;
    }
    return false;
  }
  return true;
}

/** names of properties on Object.prototype now (to compare before and after) */
export const prototypeKeys = () => Object.getOwnPropertyNames(Object.prototype).sort().join(',');

/** every object in a parse result has a plain prototype (no attacker-chosen __proto__) */
export function plainPrototypes(root: unknown): boolean {
  const seen = new Set<unknown>();
  const stack = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (!value || typeof value !== 'object' || seen.has(value)) continue;
    seen.add(value);
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== Array.prototype && proto !== null && !(value instanceof Date)) return false;
    stack.push(...Object.values(value));
  }
  return true;
}

export interface SchemaVerdict {
  ok: boolean;
}

/**
 * The contract of one boundary parse: safeParse never throws; a failure has issues, each with a
 * path (an array of keys) and a message; nothing reaches Object.prototype; a success is made of
 * plain objects and round-trips through JSON (parsing its JSON again gives the same JSON, unless
 * the schema transforms its input).
 */
export function checkSchema(schema: z.ZodType, input: unknown, transforming = transforms(schema)): SchemaVerdict {
  const before = prototypeKeys();
  const result = schema.safeParse(input);
  if (prototypeKeys() !== before || ({} as Record<string, unknown>).polluted !== undefined) throw new Error('parsing changed Object.prototype');
  if (!result.success) {
    const issues = result.error.issues;
    if (issues.length === 0) throw new Error('a rejection without issues');
    for (const issue of issues) {
      if (!Array.isArray(issue.path)) throw new Error(`an issue without a path: ${JSON.stringify(issue)}`);
      if (typeof issue.message !== 'string' || issue.message.trim().length === 0) throw new Error(`an issue without a message at ${issue.path.join('.')}`);
      if (issue.message.length > 2000) throw new Error(`an issue message of ${issue.message.length} characters at ${issue.path.join('.')}: ${issue.message.slice(0, 200)}…`);
    }
    return { ok: false };
  }
  // (z.unknown() passes a value as it is: only an input of plain objects, as JSON makes, must give one)
  if (plainPrototypes(input) && !plainPrototypes(result.data)) throw new Error('a parse result with an object whose prototype is not plain');
  // (z.unknown() passes a BigInt or a cycle through: only what came as JSON must go back as JSON)
  const text = fromJson(input) ? JSON.stringify(result.data) : undefined;
  if (text !== undefined && !transforming) {
    const again = schema.safeParse(JSON.parse(text));
    if (!again.success) throw new Error(`the JSON of an accepted value is refused: ${again.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    if (JSON.stringify(again.data) !== text) throw new Error(`an accepted value changes through JSON: ${text.slice(0, 300)} → ${JSON.stringify(again.data).slice(0, 300)}`);
  }
  return { ok: true };
}

/** counts per boundary, printed at the end of a fuzz file */
export class FuzzCounts {
  private readonly rows = new Map<string, { runs: number; accepted: number; rejected: number }>();

  add(boundary: string, accepted: boolean): void {
    const row = this.rows.get(boundary) ?? { runs: 0, accepted: 0, rejected: 0 };
    row.runs += 1;
    if (accepted) row.accepted += 1;
    else row.rejected += 1;
    this.rows.set(boundary, row);
  }

  table(title: string): string {
    const lines = [...this.rows.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, r]) => `  ${name.padEnd(48)} ${String(r.runs).padStart(6)} runs ${String(r.accepted).padStart(6)} accepted ${String(r.rejected).padStart(6)} rejected`);
    const total = [...this.rows.values()].reduce((n, r) => n + r.runs, 0);
    return `${title} (seed ${FUZZ_SEED}, ${total} inputs over ${this.rows.size} boundaries)\n${lines.join('\n')}`;
  }
}

/**
 * A config loader (file path + environment → config, or ConfigError) under fuzz: random and
 * mutated files, random values of its variables. Never another error; a ConfigError names its
 * problems; nothing reaches Object.prototype. `write` makes the file (a fresh path per run).
 */
export function fuzzConfigLoader(options: {
  name: string;
  load: (file: string | undefined, env: NodeJS.ProcessEnv) => unknown;
  isConfigError: (err: unknown) => err is Error & { problems: string[] };
  validFile: unknown;
  baseEnv: NodeJS.ProcessEnv;
  envNames: string[];
  write: (text: string) => string;
  counts: FuzzCounts;
  runs: number;
}): void {
  const { name, load, isConfigError, validFile, baseEnv, envNames, write, counts } = options;
  const attempt = (file: string | undefined, env: NodeJS.ProcessEnv, label: string) => {
    try {
      load(file, env);
      counts.add(label, true);
    } catch (err) {
      if (!isConfigError(err)) throw new Error(`${name} threw ${String(err)}`);
      if (err.message.trim().length === 0) throw new Error(`${name}: a ConfigError without a message`);
      for (const problem of err.problems)
        if (!/^[^:]+: .+ \((from FERRY_[A-Z0-9_]+|in \/.+|not set)\)$/s.test(problem)) throw new Error(`${name}: a problem that does not name its field and origin: ${problem}`);
      counts.add(label, false);
    }
    if (({} as Record<string, unknown>).polluted !== undefined) throw new Error(`${name} polluted Object.prototype`);
  };
  const envValues = fc.oneof(nastyString, fc.constantFrom('true', 'false', '0', '-1', '70000', '1e308', 'NaN', '{"vendor":1}', '[]', '{"__proto__":{"polluted":"yes"}}'));
  fc.assert(
    fc.property(
      fc.oneof(
        boundaryInput(validFile).map(jsonText),
        fc.string({ unit: 'binary', maxLength: 100 }),
        fc.constantFrom('', '{', 'null', '[]', '"x"', '\u0000', '\uFEFF{}', '{"__proto__":{"polluted":"yes"}}'),
      ),
      fc.dictionary(fc.constantFrom(...envNames), envValues, { maxKeys: 3 }),
      (text, env) => attempt(write(text), { ...baseEnv, ...env }, `${name} (file + env)`),
    ),
    fuzzParams(options.runs),
  );
  fc.assert(
    fc.property(fc.constantFrom(...envNames), fc.oneof(envValues, nastyValue.map(jsonText)), (variable, value) => attempt(undefined, { ...baseEnv, [variable]: value }, `${name} (one variable)`)),
    fuzzParams(options.runs),
  );
}
