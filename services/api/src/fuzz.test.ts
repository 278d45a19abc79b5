/**
 * Fuzz of the API's own parse paths (issue 13, part 6): every operation's params, query and body
 * through parseRequest (what the routes call), the workload spec through validateWorkloadRequest
 * (POST /v1/workloads), NATS events through parseEvent (GET /v1/events), and the API's config
 * loader. The live fuzz of the running API is test/api-fuzz.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { validateWorkloadRequest } from '@ferry/core';
import { ConfigError } from '@ferry/runtime';
import { sampleHostRecord } from '../../../test/fixtures/capacity.ts';
import { FuzzCounts, boundaryInput, checkSchema, fuzzConfigLoader, fuzzParams, jsonText, nastyString, transforms } from '../../../test/fuzz/kit.ts';
import { Redis } from 'ioredis';
import { ApiErrorBody } from '@ferry/protocol';
import { PLACEMENT_SETTINGS, createLogger } from '@ferry/runtime';
import { API_ENV, loadApiConfig, type ApiConfig } from './config.ts';
import { ApiMetrics } from './metrics.ts';
import { buildApp, type Queues } from './server.ts';
import { ApiError, parseRequest } from './errors.ts';
import { ClusterEvent, EventHub, parseEvent } from './events.ts';
import { OPERATIONS } from './openapi.ts';

const counts = new FuzzCounts();
const dir = mkdtempSync(join(tmpdir(), 'ferry-api-fuzz-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  console.log(counts.table('API fuzz (parsers)'));
});

/** parseRequest's contract: the parsed value, or an ApiError 400 whose details list every problem by field */
function checkParseRequest(schema: z.ZodType, value: unknown, part: string): boolean {
  try {
    parseRequest(schema, value, part);
    return true;
  } catch (err) {
    if (!(err instanceof ApiError)) throw new Error(`parseRequest threw ${String(err)}`);
    expect(err.status).toBe(400);
    expect(err.message.startsWith(`invalid ${part}: `)).toBe(true);
    const { problems } = err.details as { problems: Array<{ field: string; message: string }> };
    expect(problems.length).toBeGreaterThan(0);
    for (const p of problems) {
      expect(p.field === part || p.field.startsWith(`${part}.`)).toBe(true);
      expect(p.message.length).toBeGreaterThan(0);
    }
    return false;
  }
}

const keysOf = (schema: z.ZodType): string[] => {
  const shape = (schema as unknown as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : [];
};

/** what Fastify hands a route as params (strings) or query (strings, or arrays of them for repeated keys) */
const stringsFor = (keys: string[], arrays: boolean) =>
  fc.dictionary(
    fc.oneof(fc.constantFrom(...keys, '__proto__', 'constructor', 'extra', ''), fc.string({ maxLength: 8 })),
    arrays
      ? fc.oneof(
          nastyString,
          fc.array(nastyString, { maxLength: 3 }),
          fc.constantFrom('true', 'false', '0', '-1', '300000', '1e3', '0x10', ' 5', 'NaN', 'h1', 'web-1', 'running', 'up', 'host,workload'),
        )
      : fc.oneof(nastyString, VALID_IDS),
    { maxKeys: 4 },
  );

/** ids that some route's params take */
const VALID_IDS = fc.constantFrom('h1', 'web-1', 'm-web-1-abc', 'p-rebalance-abc', '0123456789ab', 'bot', 'web-1.start.abc');

const WORKLOAD_SAMPLE = {
  id: 'web-1',
  template: 'busybox',
  command: ['/bin/sh'],
  resources: { vcpus: 1, memoryMiB: 64, diskMiB: 64 },
  pool: 'local',
  networks: [{ network: 'prod', address: '10.77.0.9' }],
};
const BODY_SAMPLES: Record<string, unknown> = {
  'POST /v1/hosts/:id/maintenance': { reason: 'kernel', mode: 'spread' },
  'POST /v1/workloads': WORKLOAD_SAMPLE,
  'POST /v1/workloads/:id/migrate': { destination: 'h2', mode: 'live' },
  'POST /v1/workloads/:id/resume': { host: 'h2' },
  'POST /v1/workloads/:id/exec': { argv: ['ls', '-l', '/'], stdin: 'x', timeoutMs: 1000 },
  'POST /v1/workloads/:id/console': { rows: 30, cols: 100, term: 'xterm' },
  'POST /v1/rebalance': { maxMoves: 3 },
  'POST /v1/tokens': { name: 'bot', role: 'viewer' },
  'POST /v1/join-tokens': { ttlSeconds: 120 },
  'POST /v1/join': { token: `0123456789ab.${'A'.repeat(32)}.${'B'.repeat(43)}`, hostId: 'h9', publicKey: `U${'A'.repeat(55)}`, csr: 'C'.repeat(200) },
};

/** what the API needs besides its own settings (paths only; nothing is read) */
const BASE_ENV = {
  FERRY_API_TOKEN: 'x'.repeat(24),
  FERRY_NATS_SEED_FILE: '/s',
  FERRY_NATS_CA_FILE: '/c',
  FERRY_NATS_CERT_FILE: '/c',
  FERRY_NATS_KEY_FILE: '/k',
  FERRY_REDIS_USER: 'ferry-api',
  FERRY_REDIS_PASSWORD_FILE: '/p',
};

describe('API parsers under fuzz', () => {
  const withParams = OPERATIONS.filter((op) => op.params);
  const withQuery = OPERATIONS.filter((op) => op.query);
  const withBody = OPERATIONS.filter((op) => op.body);

  it('the fuzz covers every operation with params, a query or a body', () => {
    expect(withParams.length + withQuery.length + withBody.length).toBeGreaterThan(20);
    expect(withBody.map((op) => `${op.method} ${op.path}`).sort()).toEqual(Object.keys(BODY_SAMPLES).sort());
  });

  it.each(withParams.map((op) => [`${op.method} ${op.path}`, op.params!] as const))('params of %s: a value or a 400 naming params.<field>', (name, schema) => {
    fc.assert(
      fc.property(stringsFor(keysOf(schema), false), (params) => counts.add(`params ${name}`, checkParseRequest(schema, params, 'params'))),
      fuzzParams(150),
    );
  });

  it.each(withQuery.map((op) => [`${op.method} ${op.path}`, op.query!] as const))('query of %s: a value or a 400 naming query.<field>', (name, schema) => {
    fc.assert(
      fc.property(stringsFor(keysOf(schema), true), (query) => counts.add(`query ${name}`, checkParseRequest(schema, query, 'query'))),
      fuzzParams(150),
    );
  });

  it.each(withBody.map((op) => [`${op.method} ${op.path}`, op.body!] as const))('body of %s: the schema contract, and parseRequest a value or a 400 naming body.<field>', (name, schema) => {
    const transforming = transforms(schema);
    fc.assert(
      fc.property(boundaryInput(BODY_SAMPLES[name]), (body) => {
        checkSchema(schema, body, transforming);
        counts.add(`body ${name}`, checkParseRequest(schema, body, 'body'));
      }),
      fuzzParams(150),
    );
  });

  it('POST /v1/workloads (validateWorkloadRequest): never throws; every problem has a field, a code and a message', () => {
    const snapshot = { hosts: [sampleHostRecord('h1'), sampleHostRecord('h2')], workloads: [] };
    fc.assert(
      fc.property(boundaryInput(WORKLOAD_SAMPLE), (body) => {
        const result = validateWorkloadRequest(body, snapshot);
        if (!result.ok) {
          expect(result.problems.length).toBeGreaterThan(0);
          for (const p of result.problems) {
            expect(p.field.length).toBeGreaterThan(0);
            expect(p.code.length).toBeGreaterThan(0);
            expect(p.message.length).toBeGreaterThan(0);
          }
        }
        counts.add('validateWorkloadRequest', result.ok);
      }),
      fuzzParams(300),
    );
  });

  it('GET /v1/events (parseEvent): random bytes and mutated events are dropped (null) or a valid event, never a throw', () => {
    const event = { type: 'workload.phase', workloadId: 'web-1', phase: 'running', hostId: 'h1', at: 1, jobId: null };
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      boundaryInput(event).map((v) => new TextEncoder().encode(jsonText(v))),
      fc.constant(new Uint8Array(256 * 1024 + 1).fill(0x20)),
      fc.constant(new Uint8Array([0xff, 0xfe, 0x00, 0x7b])),
    );
    fc.assert(
      fc.property(bytes, (data) => {
        const parsed = parseEvent(data);
        if (parsed) expect(ClusterEvent.safeParse(parsed).success).toBe(true);
        counts.add('parseEvent (bytes)', parsed !== null);
      }),
      fuzzParams(400),
    );
  });

  it('loadApiConfig: a config or a ConfigError naming each bad field and where it came from, for any file and environment', () => {
    let n = 0;
    fuzzConfigLoader({
      name: 'loadApiConfig',
      load: loadApiConfig,
      isConfigError: (err): err is ConfigError => err instanceof ConfigError,
      validFile: { port: 0, natsUrl: 'nats://127.0.0.1:4222', keyPrefix: 'ferry', planTtlMs: 60_000, placementMode: 'binpack', haAdmission: true },
      baseEnv: BASE_ENV,
      envNames: Object.keys(API_ENV),
      write: (text) => {
        const file = join(dir, `api-${n++}.json`);
        writeFileSync(file, text);
        return file;
      },
      counts,
      runs: 200,
    });
  });

  it('URLs that Fastify’s router refuses (bad percent-encoding, an over-long param) are answered as {code, message, details} too', async () => {
    // found by the live fuzz: these were {error, code: "FST_ERR_BAD_URL" | "FST_ERR_MAX_PARAM_LENGTH", statusCode}, echoing the URL
    const log = createLogger('test').child({}, { level: 'silent' });
    const redis = new Redis({ lazyConnect: true, enableOfflineQueue: false });
    const config = { token: 'b'.repeat(32), keyPrefix: 'ferry', planTtlMs: 3_600_000, bodyLimitBytes: 1 << 20, ...z.object(PLACEMENT_SETTINGS).parse({}) } as ApiConfig;
    const app = await buildApp(config, redis, {} as Queues, new EventHub(log), new ApiMetrics(() => 0), log);
    try {
      for (const [url, status, fastifyCode] of [
        ['/v1/workloads/%zz', 400, 'FST_ERR_BAD_URL'],
        ['/ui/%', 400, 'FST_ERR_BAD_URL'],
        [`/v1/workloads/${'a'.repeat(3000)}`, 414, 'FST_ERR_MAX_PARAM_LENGTH'],
      ] as const) {
        const res = await app.inject({ method: 'GET', url });
        expect(res.statusCode, url).toBe(status);
        const body = res.json();
        expect(ApiErrorBody.safeParse(body).success, res.body).toBe(true);
        expect(body).toMatchObject({ code: 'BAD_REQUEST', details: { fastifyCode } });
        expect(res.body.length).toBeLessThan(500);
      }
    } finally {
      await app.close();
      redis.disconnect();
    }
  });
});
