/**
 * Fuzz of the scheduler's boundaries (issue 13, part 6): capacity reports as NATS delivers them
 * (raw bytes on a subject) through parseCapacityMessage, counted by reason as the intake does,
 * and the config loader. Schemas alone: packages/protocol/src/fuzz.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { CAPACITY_REJECTIONS, CapacityReport } from '@ferry/protocol';
import { ConfigError } from '@ferry/runtime';
import { sampleReport } from '../../../test/fixtures/capacity.ts';
import { FuzzCounts, boundaryInput, fuzzConfigLoader, fuzzParams, jsonText, nastyString } from '../../../test/fuzz/kit.ts';
import { parseCapacityMessage } from './capacity/intake.ts';
import { CapacityCounters } from './capacity/stats.ts';
import { SCHEDULER_ENV, loadSchedulerConfig } from './config.ts';

const counts = new FuzzCounts();
const dir = mkdtempSync(join(tmpdir(), 'ferry-scheduler-fuzz-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  console.log(counts.table('scheduler fuzz'));
});

const encode = (text: string) => new TextEncoder().encode(text);

describe('scheduler boundaries under fuzz', () => {
  it('capacity intake: any bytes on any subject are a report or a rejection with a reason and a detail, never a throw', () => {
    const report = sampleReport('h1', { containerCount: 2 });
    const subject = fc.oneof(
      { arbitrary: fc.constant('ferry.host.h1.capacity'), weight: 6 },
      {
        arbitrary: fc.constantFrom('ferry.host.h2.capacity', 'ferry.host..capacity', 'ferry.host.H1.capacity', 'ferry.host.h1', 'ferry.host.h1.capacity.x', '', '>', 'ferry.host.*.capacity'),
        weight: 2,
      },
      { arbitrary: nastyString.map((s) => `ferry.host.${s}.capacity`), weight: 1 },
    );
    const data = fc.oneof(
      { arbitrary: boundaryInput(report).map((v) => encode(jsonText(v))), weight: 6 },
      { arbitrary: fc.uint8Array({ maxLength: 400 }), weight: 2 },
      { arbitrary: fc.constantFrom(new Uint8Array(0), encode('\uFEFF{}'), new Uint8Array([0xc3, 0x28]), new Uint8Array(512 * 1024 + 1).fill(0x7b)), weight: 1 },
    );
    // the intake's own counters, as the service keeps them (stats.ts)
    const counters = new CapacityCounters();
    let accepted = 0;
    const rejected: Record<string, number> = {};
    fc.assert(
      fc.property(subject, data, (s, d) => {
        const result = parseCapacityMessage(s, d);
        if (result.ok) {
          expect(CapacityReport.safeParse(result.report).success).toBe(true);
          counters.accepted();
          accepted += 1;
        } else {
          expect(CAPACITY_REJECTIONS).toContain(result.reason);
          expect(result.detail.length).toBeGreaterThan(0);
          expect(result.detail.length).toBeLessThan(5000);
          counters.rejected(result.reason);
          rejected[result.reason] = (rejected[result.reason] ?? 0) + 1;
        }
        counts.add(`parseCapacityMessage ${result.ok ? 'ok' : result.reason}`, result.ok);
      }),
      fuzzParams(600),
    );
    expect(accepted).toBeGreaterThan(0);
    // every rejection was counted by its reason, as the intake counts them for GET /v1/stats
    const taken = counters.take();
    expect(taken.get('accepted')).toBe(accepted);
    for (const [reason, n] of Object.entries(rejected)) expect(taken.get(`rejected:${reason}`)).toBe(n);
    expect(Object.keys(rejected).sort()).toEqual(expect.arrayContaining(['BAD_SUBJECT', 'NOT_JSON', 'SCHEMA']));
  });

  it('loadSchedulerConfig: a config or a ConfigError naming each bad field and where it came from', () => {
    let n = 0;
    fuzzConfigLoader({
      name: 'loadSchedulerConfig',
      load: loadSchedulerConfig,
      isConfigError: (err): err is ConfigError => err instanceof ConfigError,
      validFile: { keyPrefix: 'ferry', suspectAfterMs: 3000, leaseMs: 5000, downAfterMs: 7000, placementMode: 'spread', autoRebalance: false, metricsPort: 0 },
      baseEnv: {
        FERRY_NATS_SEED_FILE: '/s',
        FERRY_NATS_CA_FILE: '/c',
        FERRY_NATS_CERT_FILE: '/c',
        FERRY_NATS_KEY_FILE: '/k',
        FERRY_REDIS_USER: 'ferry-scheduler',
        FERRY_REDIS_PASSWORD_FILE: '/p',
      },
      envNames: Object.keys(SCHEDULER_ENV),
      write: (text) => {
        const file = join(dir, `scheduler-${n++}.json`);
        writeFileSync(file, text);
        return file;
      },
      counts,
      runs: 200,
    });
  });
});
