import { describe, expect, it } from 'vitest';
import { placementPolicy, planMigration } from '@ferry/core';
import { ConfigError } from '@ferry/runtime';
import { WorkloadSpec } from '@ferry/protocol';
import { sampleHostRecord, sampleReport, sampleWorkloadRecord } from '../../../test/fixtures/capacity.ts';
import { loadSchedulerConfig } from '../../scheduler/src/config.ts';
import { loadApiConfig } from './config.ts';

/** what every service needs to reach NATS and Redis (paths only; nothing is read here) */
const NATS = {
  FERRY_NATS_SEED_FILE: '/etc/ferry/nats/identity.nk',
  FERRY_NATS_CA_FILE: '/etc/ferry/ca.crt',
  FERRY_NATS_CERT_FILE: '/etc/ferry/nats/identity.crt',
  FERRY_NATS_KEY_FILE: '/etc/ferry/nats/identity.key',
  FERRY_REDIS_USER: 'ferry-api',
  FERRY_REDIS_PASSWORD_FILE: '/etc/ferry/redis/api.password',
};
const TOKEN = { FERRY_API_TOKEN: 'x'.repeat(24), ...NATS };

describe('the API and the scheduler share one placement policy', () => {
  it('both read FERRY_PLACEMENT_MODE (and the other placement settings) into the same policy', () => {
    const env = { FERRY_PLACEMENT_MODE: 'binpack', FERRY_HA_ADMISSION: 'true', FERRY_CPU_BASELINE: '{"vendor":"GenuineIntel","family":6,"flags":["sse2"]}' };
    const api = placementPolicy(loadApiConfig(undefined, { ...env, ...TOKEN }));
    const scheduler = placementPolicy(loadSchedulerConfig(undefined, { ...env, ...NATS }));
    expect(api).toEqual(scheduler);
    expect(api).toMatchObject({ mode: 'binpack', haAdmission: true, cpuBaseline: { vendor: 'GenuineIntel' } });
    expect(placementPolicy(loadApiConfig(undefined, TOKEN))).toEqual(placementPolicy(loadSchedulerConfig(undefined, NATS)));
    expect(placementPolicy(loadApiConfig(undefined, TOKEN)).mode).toBe('spread');
  });

  it('so a migration without a destination goes where the scheduler would place it: binpack → the fullest host', () => {
    const MiB = 2 ** 20;
    const host = (id: string) => sampleHostRecord(id, { capacity: sampleReport(id, { memory: { totalBytes: 16 * 1024 * MiB, availableBytes: 8 * 1024 * MiB } }) });
    const spec = (id: string, memoryMiB: number) => WorkloadSpec.parse({ id, template: 'busybox', command: ['/bin/sh'], resources: { vcpus: 1, memoryMiB, diskMiB: 64 }, pool: 'local' });
    const mover = sampleWorkloadRecord(spec('mover', 256), 'h1');
    const snapshot = { hosts: [host('h1'), host('h2'), host('h3')], workloads: [mover, sampleWorkloadRecord(spec('big', 8192), 'h3')] };
    const binpack = placementPolicy(loadApiConfig(undefined, { ...TOKEN, FERRY_PLACEMENT_MODE: 'binpack' }));
    const spread = placementPolicy(loadApiConfig(undefined, TOKEN));
    expect(planMigration(mover, snapshot, { mode: 'auto' }, binpack)).toMatchObject({ ok: true, destination: 'h3' });
    expect(planMigration(mover, snapshot, { mode: 'auto' }, spread)).toMatchObject({ ok: true, destination: 'h2' });
  });

  it('refuses a bad placement mode or plan TTL, naming the field and the variable', () => {
    expect(() => loadApiConfig(undefined, { ...TOKEN, FERRY_PLACEMENT_MODE: 'random' })).toThrow(/placementMode: .*from FERRY_PLACEMENT_MODE/);
    expect(() => loadApiConfig(undefined, { ...TOKEN, FERRY_PLAN_TTL_MS: 'soon' })).toThrow(ConfigError);
    expect(() => loadApiConfig(undefined, { ...TOKEN, FERRY_PLAN_TTL_MS: '10' })).toThrow(/planTtlMs: .*from FERRY_PLAN_TTL_MS/);
    expect(loadApiConfig(undefined, TOKEN).planTtlMs).toBe(3_600_000);
    expect(loadApiConfig(undefined, { ...TOKEN, FERRY_PLAN_TTL_MS: '2000' }).planTtlMs).toBe(2000);
  });
});
