/**
 * Live fuzz of the running API (issue 13, part 6): every operation of the OpenAPI document
 * (OPERATIONS in services/api/src/openapi.ts), as the admin token, with mutated path params
 * (encoded slashes, dot segments, NUL, unicode, invalid percent-encoding, very long), queries
 * (repeated keys, arrays, huge values), bodies (mutated samples, random JSON, deep nesting,
 * just under and over the body limit, invalid JSON, wrong content types) against a real
 * scheduler + API on real NATS and Redis (no agents). Asserts: never a 5xx; every 4xx is
 * `{code, message}` with a documented code (ApiErrorBody); a refused POST or DELETE changes no
 * Redis key of the cluster.
 *
 * Which keys are compared (snapshot before and after every refused POST/DELETE):
 * every `<prefix>:*` key except
 * - `<prefix>:audit`: every POST and DELETE, refused or not, is appended there by design;
 * - `<prefix>:tokens:used`: when each token was last used, written on every authenticated request;
 * - what changes with no request at all: found by comparing two snapshots taken apart while the
 *   cluster is idle (the leader key's lease, BullMQ's stalled-check and metadata keys, the
 *   scheduler's own counters), plus BullMQ's `:events` streams and `:stalled-check`/`:meta`
 *   keys, which its workers write on their own.
 * A job added by a refused request would still show: the queues' `wait`, `delayed`,
 * `prioritized`, `id` counters and job hashes are compared.
 * GET requests are not compared one by one (they write nothing but the two keys above, and
 * GET /v1/plans sweeps expired plans). After an accepted POST or DELETE (a token made, a plan
 * executed) the test waits until the keys stop changing, so the work it started is not blamed on
 * the next refused request.
 */
import { request as httpRequest } from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { ApiErrorBody } from '@ferry/protocol';
import { OPERATIONS, type Operation } from '../services/api/src/openapi.ts';
import { startTestCluster, type TestCluster } from './helpers/cluster.ts';
import { FUZZ_SEED, jsonText, mutationsOf, nastyString, nested } from './fuzz/kit.ts';

const BODY_LIMIT = 1024 * 1024;
const PER_ROUTE = Math.max(1, Math.round(80 * (Number.parseFloat(process.env.FUZZ_RUNS ?? '') || 1)));

interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
  what: string;
}

interface Answer {
  status: number;
  contentType: string;
  text: string;
}

/** raw HTTP: the path goes as it is (no URL normalisation of dot segments or encodings) */
function send(base: URL, req: Sent, timeoutMs = 20_000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const r = httpRequest({ host: base.hostname, port: base.port, method: req.method, path: req.path, headers: req.headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    r.on('timeout', () => r.destroy(new Error(`timeout: ${req.method} ${req.path.slice(0, 200)}`)));
    r.on('error', reject);
    if (req.body !== undefined) r.write(req.body);
    r.end();
  });
}

const VALID_IDS: Record<string, string[]> = {
  '/v1/hosts/:id': ['h1', 'h-unknown'],
  '/v1/workloads/:id': ['web-1'],
  '/v1/jobs/:id': ['web-1.create.abc'],
  '/v1/migrations/:id': ['m-web-1-abc'],
  '/v1/plans/:id': ['p-rebalance-abc'],
  '/v1/tokens/:name': ['bot', 'bootstrap'],
  '/v1/join-tokens/:id': ['0123456789ab'],
  '/ui/:file': ['app.js', 'style.css'],
};

const PATH_TRICKS = [
  '..%2F..%2Fetc%2Fpasswd',
  '..%2F..',
  '%2e%2e%2f%2e%2e',
  '..',
  '.',
  '%00',
  'w1%00',
  'a%00b',
  '%2F',
  '%5C..%5C',
  '%',
  '%zz',
  '%ff%fe',
  '%C0%AE%C0%AE',
  '%E2%80%AE',
  '%F0%9F%9A%80',
  'a'.repeat(3000),
  '%61'.repeat(1500),
  '__proto__',
  'constructor',
  '-1',
  '1e308',
  'NaN',
  'h1;rm%20-rf',
  'h1%3Fx%3D1',
  'h1%23frag',
];

/** a path param: a plausible id, a trick, or any string encoded */
const paramValue = (route: string) =>
  fc.oneof(
    { arbitrary: fc.constantFrom(...(Object.entries(VALID_IDS).find(([p]) => route.startsWith(p))?.[1] ?? ['x'])), weight: 2 },
    { arbitrary: fc.constantFrom(...PATH_TRICKS), weight: 4 },
    { arbitrary: nastyString.filter((s) => s.length > 0 && s.length < 3000).map((s) => encodeURIComponent(s.replace(/[\uD800-\uDFFF]/g, '?'))), weight: 2 },
  );

const queryValue = fc.oneof(
  fc.constantFrom(
    'true',
    'false',
    '1',
    '0',
    '-1',
    '1e308',
    'NaN',
    'Infinity',
    '300001',
    'up',
    'running',
    'h1',
    'web-1',
    'host,workload',
    'host,,x',
    '%00',
    '%ff',
    '%',
    'x'.repeat(6000),
    '1700000000000-0',
    '__proto__',
  ),
  nastyString.filter((s) => s.length < 3000).map((s) => encodeURIComponent(s.replace(/[\uD800-\uDFFF]/g, '?'))),
);

function queryFor(op: Operation): fc.Arbitrary<string> {
  const shape = (op.query as unknown as { shape?: Record<string, unknown> } | undefined)?.shape;
  const keys = [...Object.keys(shape ?? {}), '__proto__', 'constructor[prototype][x]', 'extra', 'a[]', 'a[0]'];
  const pair = fc.tuple(fc.constantFrom(...keys), queryValue).map(([k, v]) => `${k}=${v}`);
  return fc.oneof(
    { arbitrary: fc.constant(''), weight: 2 },
    { arbitrary: fc.array(pair, { minLength: 1, maxLength: 4 }).map((pairs) => `?${pairs.join('&')}`), weight: 4 },
    // the same key repeated: Fastify hands the route an array
    { arbitrary: fc.tuple(fc.constantFrom(...keys), queryValue, queryValue).map(([k, a, b]) => `?${k}=${a}&${k}=${b}`), weight: 2 },
    { arbitrary: fc.constantFrom('?', '?&&&', '?=', '?a', '?%00=%00', `?${'k'.repeat(5000)}=1`), weight: 1 },
  );
}

const WORKLOAD = { id: 'fz-1', template: 'busybox', command: ['/bin/sh'], resources: { vcpus: 1, memoryMiB: 64, diskMiB: 64 }, pool: 'local' };
const BODY_SAMPLES: Record<string, unknown> = {
  'POST /v1/hosts/:id/maintenance': { reason: 'kernel', mode: 'spread' },
  'POST /v1/workloads': WORKLOAD,
  'POST /v1/workloads/:id/migrate': { destination: 'h2', mode: 'live' },
  'POST /v1/workloads/:id/exec': { argv: ['ls', '-l', '/'], timeoutMs: 1000 },
  'POST /v1/workloads/:id/console': { rows: 30, cols: 100, term: 'xterm' },
  'POST /v1/rebalance': { maxMoves: 3 },
  'POST /v1/tokens': { name: 'fuzz-bot', role: 'viewer' },
  'POST /v1/join-tokens': { ttlSeconds: 120 },
  'POST /v1/join': { token: `0123456789ab.${'A'.repeat(32)}.${'B'.repeat(43)}`, hostId: 'h9', publicKey: `U${'A'.repeat(55)}`, csr: 'C'.repeat(200) },
};

const JSON_TYPE = 'application/json';

/** a body and its content type */
function bodyFor(op: Operation): fc.Arbitrary<{ body?: string | Buffer; type?: string; what: string }> {
  const sample = BODY_SAMPLES[`${op.method} ${op.path}`] ?? {};
  const json = (what: string) => (v: unknown) => ({ body: jsonText(v), type: JSON_TYPE, what });
  return fc.oneof(
    { arbitrary: mutationsOf(sample).map(json('mutated sample')), weight: 8 },
    { arbitrary: fc.jsonValue({ maxDepth: 4 }).map(json('random JSON')), weight: 2 },
    { arbitrary: fc.constant({ what: 'no body' }), weight: 1 },
    { arbitrary: fc.constant({ body: '', type: JSON_TYPE, what: 'empty JSON body' }), weight: 1 },
    {
      arbitrary: fc.constantFrom(
        { body: '{"a":', type: JSON_TYPE, what: 'invalid JSON' },
        { body: '{"a":1,}', type: JSON_TYPE, what: 'invalid JSON (trailing comma)' },
        { body: "{'a':1}", type: JSON_TYPE, what: 'invalid JSON (quotes)' },
        { body: '\u0000', type: JSON_TYPE, what: 'NUL' },
        { body: Buffer.from([0xff, 0xfe, 0x7b, 0x7d]), type: JSON_TYPE, what: 'invalid UTF-8' },
        { body: 'NaN', type: JSON_TYPE, what: 'NaN' },
        { body: '1e999', type: JSON_TYPE, what: '1e999' },
        { body: '{"__proto__":{"polluted":true}}', type: JSON_TYPE, what: '__proto__' },
        { body: '{"constructor":{"prototype":{"polluted":true}}}', type: JSON_TYPE, what: 'constructor.prototype' },
        { body: jsonText(nested(20_000, 1, true)), type: JSON_TYPE, what: 'nested 20000 deep' },
        { body: jsonText(nested(5_000)), type: JSON_TYPE, what: 'nested objects 5000 deep' },
        { body: jsonText({ ...(sample as object), pad: 'x'.repeat(BODY_LIMIT - 1000) }), type: JSON_TYPE, what: 'just under the body limit' },
        { body: jsonText({ ...(sample as object), pad: 'x'.repeat(BODY_LIMIT + 10) }), type: JSON_TYPE, what: 'over the body limit' },
        { body: jsonText(sample), type: 'text/plain', what: 'text/plain' },
        { body: 'a=1&b=2', type: 'application/x-www-form-urlencoded', what: 'form' },
        { body: '--x\r\n\r\n--x--', type: 'multipart/form-data; boundary=x', what: 'multipart' },
        { body: jsonText(sample), type: 'application/json; charset=latin1', what: 'json latin1' },
        { body: jsonText(sample), type: 'application/json; charset=utf-16', what: 'json utf-16' },
        { body: jsonText(sample), type: 'application/jsonx', what: 'application/jsonx' },
        { body: jsonText(sample), type: '', what: 'empty content type' },
        { body: jsonText(sample), type: 'application/json, text/plain', what: 'two content types' },
      ),
      weight: 3,
    },
  );
}

interface Row {
  sent: number;
  statuses: Map<number, number>;
}

describe('live API fuzz: every route of the OpenAPI document', () => {
  let t: TestCluster;
  let redis: Redis;
  let base: URL;
  let volatile = new Set<string>();
  const rows = new Map<string, Row>();
  const failures: string[] = [];
  /** the first refusal of each status and code, printed: are they clear? */
  const examples = new Map<string, string>();
  /** accepted POSTs and DELETEs whose change the snapshot saw: proves the comparison can see one */
  let detected = 0;

  /** every key of the cluster with its content, less what changes on its own (see the top of this file) */
  async function snapshot(): Promise<Map<string, string>> {
    const prefix = t.cluster.keyPrefix;
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    const skip = (k: string) => k === `${prefix}:audit` || k === `${prefix}:tokens:used` || volatile.has(k) || /:(events|stalled-check|meta|marker)$/.test(k);
    const wanted = keys.filter((k) => !skip(k)).sort();
    const types = await Promise.all(wanted.map((k) => redis.type(k)));
    const values = await Promise.all(
      wanted.map(async (k, i) => {
        switch (types[i]) {
          case 'string':
            return redis.get(k);
          case 'hash':
            return JSON.stringify(Object.entries(await redis.hgetall(k)).sort());
          case 'set':
            return JSON.stringify((await redis.smembers(k)).sort());
          case 'zset':
            return JSON.stringify(await redis.zrange(k, 0, -1, 'WITHSCORES'));
          case 'list':
            return JSON.stringify(await redis.lrange(k, 0, -1));
          case 'stream':
            return JSON.stringify(await redis.xrevrange(k, '+', '-', 'COUNT', 1));
          default:
            return types[i] ?? 'none';
        }
      }),
    );
    return new Map(wanted.map((k, i) => [k, `${types[i]}:${values[i]}`]));
  }

  /** until two snapshots 200 ms apart agree (at most 10 s) */
  async function settle(): Promise<void> {
    let last = await snapshot();
    for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 200));
      const now = await snapshot();
      if (diff(last, now).length === 0) return;
      last = now;
    }
  }

  const diff = (a: Map<string, string>, b: Map<string, string>) =>
    [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k)).map((k) => `${k}: ${(a.get(k) ?? '(none)').slice(0, 120)} → ${(b.get(k) ?? '(none)').slice(0, 120)}`);

  beforeAll(async () => {
    t = await startTestCluster();
    redis = t.cluster.redisAdmin();
    base = new URL(t.cluster.apiUrl);
    // things that exist, so that mutations also reach routes past their 404: a named token, a
    // join token, a planned (dry-run) rebalance; their ids join the plausible path params
    const admin = { authorization: `Bearer ${t.cluster.token}`, 'content-type': JSON_TYPE };
    const made = async (path: string, body: unknown) => {
      const answer = await send(base, { method: 'POST', path, headers: admin, body: JSON.stringify(body), what: 'seed' });
      expect(answer.status, answer.text).toBeLessThan(300);
      return JSON.parse(answer.text) as { id?: string; name?: string };
    };
    VALID_IDS['/v1/tokens/:name']!.push((await made('/v1/tokens', { name: 'fuzz-seed', role: 'viewer' })).name!);
    VALID_IDS['/v1/join-tokens/:id']!.push((await made('/v1/join-tokens', { ttlSeconds: 3600 })).id!);
    VALID_IDS['/v1/plans/:id']!.push((await made('/v1/rebalance?dryRun=true', {})).id!);
    // what changes while nobody asks anything: left out of the comparison
    const first = await snapshot();
    await new Promise((r) => setTimeout(r, 2500));
    const second = await snapshot();
    volatile = new Set([...new Set([...first.keys(), ...second.keys()])].filter((k) => first.get(k) !== second.get(k)));
  });

  afterAll(async () => {
    const lines = [...rows.entries()].map(
      ([route, r]) =>
        `  ${route.padEnd(40)} ${String(r.sent).padStart(4)} sent  ${[...r.statuses.entries()]
          .sort(([a], [b]) => a - b)
          .map(([s, n]) => `${s}×${n}`)
          .join(' ')}`,
    );
    const total = [...rows.values()].reduce((n, r) => n + r.sent, 0);
    console.log(
      `live API fuzz (seed ${FUZZ_SEED}, ${total} requests over ${rows.size} routes; volatile keys left out: ${[...volatile].join(', ') || 'none'})\n${lines.join('\n')}\nfirst refusal of each kind:\n${[
        ...examples.entries(),
      ]
        .sort()
        .map(([k, m]) => `  ${k}: ${m}`)
        .join('\n')}`,
    );
    redis?.disconnect();
    await t?.close();
  });

  const record = (route: string, status: number) => {
    const row = rows.get(route) ?? { sent: 0, statuses: new Map<number, number>() };
    row.sent += 1;
    row.statuses.set(status, (row.statuses.get(status) ?? 0) + 1);
    rows.set(route, row);
  };

  const check = (route: string, req: Sent, answer: Answer) => {
    record(route, answer.status);
    const where = `${req.method} ${req.path.slice(0, 160)} [${req.what}] → ${answer.status} ${answer.text.slice(0, 300)}`;
    if (answer.status >= 500) failures.push(`5xx: ${where}`);
    if (answer.status >= 400) {
      let body: { code?: unknown; message?: unknown } | null = null;
      try {
        body = JSON.parse(answer.text) as { code?: unknown; message?: unknown };
      } catch {
        body = null;
      }
      if (!body || typeof body.code !== 'string' || typeof body.message !== 'string' || body.message.length === 0 || !answer.contentType.startsWith('application/json')) {
        failures.push(`4xx without {code, message}: ${where}`);
      } else if (!ApiErrorBody.safeParse(body).success) {
        // the documented error body: code one of API_ERROR_CODES (not Fastify's FST_ERR_…)
        failures.push(`4xx whose body is not an ApiErrorBody (${String(body.code)}): ${where}`);
      } else if (!examples.has(`${answer.status} ${body.code}`)) {
        examples.set(`${answer.status} ${body.code}`, `${body.message.slice(0, 160)}  ← ${req.method} ${req.path.slice(0, 60)} [${req.what}]`);
      }
      if (body && typeof body.message === 'string' && body.message.length > 10_000) {
        // a refusal names the problem; it does not echo a megabyte of input back
        failures.push(`a ${body.message.length}-character error message: ${where}`);
      }
    }
  };

  it('no 5xx, every refusal {code, message}, no state change from a refused POST or DELETE', { timeout: 120_000 }, async () => {
    const headers = { authorization: `Bearer ${t.cluster.token}` };
    for (const [index, op] of OPERATIONS.entries()) {
      const route = `${op.method} ${op.path}`;
      const params = [...op.path.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1]!);
      const arb = fc.record({
        values: fc.tuple(...params.map(() => paramValue(op.path))),
        query: queryFor(op),
        body: op.method === 'GET' ? fc.constant({ what: 'GET' } as { body?: string | Buffer; type?: string; what: string }) : bodyFor(op),
      });
      const samples = fc.sample(arb, { seed: FUZZ_SEED + index, numRuns: PER_ROUTE });
      for (const { values, query, body } of samples) {
        let path = op.path;
        params.forEach((name, i) => (path = path.replace(`:${name}`, values[i] ?? 'x')));
        const req: Sent = {
          method: op.method,
          path: `${path}${query}`,
          headers: { ...headers, ...(body.type !== undefined ? { 'content-type': body.type } : {}), ...(body.body !== undefined ? { 'content-length': String(Buffer.byteLength(body.body)) } : {}) },
          ...(body.body !== undefined ? { body: body.body } : {}),
          what: `${body.what}${query ? ' + query' : ''}`,
        };
        if (op.stream) {
          // server-sent events: look at the status and the start of the answer, then hang up
          const answer = await new Promise<Answer>((resolve, reject) => {
            const r = httpRequest({ host: base.hostname, port: base.port, method: 'GET', path: req.path, headers: req.headers }, (res) => {
              const status = res.statusCode ?? 0;
              const contentType = String(res.headers['content-type'] ?? '');
              if (status === 200) {
                res.once('data', () => {
                  r.destroy();
                  resolve({ status, contentType, text: '' });
                });
                return;
              }
              let text = '';
              res.on('data', (c: Buffer) => (text += c.toString('utf8')));
              res.on('end', () => resolve({ status, contentType, text }));
            });
            r.on('error', (err) => (r.destroyed ? undefined : reject(err)));
            r.end();
          });
          check(route, req, answer);
          continue;
        }
        const mutating = op.method !== 'GET';
        const before = mutating ? await snapshot() : null;
        let answer: Answer;
        try {
          answer = await send(base, req);
        } catch (err) {
          failures.push(`no answer: ${req.method} ${req.path.slice(0, 160)} [${req.what}]: ${(err as Error).message}`);
          continue;
        }
        check(route, req, answer);
        if (before && answer.status < 400) {
          if (diff(before, await snapshot()).length > 0) detected += 1;
          // an accepted request may start work (a plan's job): let the scheduler finish it before
          // the next refused request is compared
          await settle();
        }
        if (before && answer.status >= 400) {
          const changed = diff(before, await snapshot());
          if (changed.length > 0) failures.push(`state changed by a refused request: ${req.method} ${req.path.slice(0, 160)} [${req.what}] → ${answer.status}:\n    ${changed.join('\n    ')}`);
        }
      }
    }
    // the API still answers, and nothing leaked onto Object.prototype of this process either
    expect((await send(base, { method: 'GET', path: '/healthz', headers: {}, what: 'health' })).status).toBe(200);
    expect(failures.slice(0, 40)).toEqual([]);
    expect(detected, 'accepted requests (tokens, join tokens, plans) change state, and the snapshot sees it').toBeGreaterThan(0);
  });
});
