import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, processStartTime } from '@ferry/runtime';
import { loadAgentConfig } from '../config.ts';
import { checkUnitGuard } from './launcher.ts';
import { guardPaths, GuardState } from './state.ts';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-guard-unit-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));
const log = createLogger('test', {}).child({ part: 'fence-guard' });
const NATS = { FERRY_NATS_SEED_FILE: '/s.nk', FERRY_NATS_CA_FILE: '/ca.crt', FERRY_NATS_CERT_FILE: '/a.crt', FERRY_NATS_KEY_FILE: '/a.key' };

describe('the fence guard as a systemd unit', () => {
  it('is chosen by fenceGuard (FERRY_FENCE_GUARD): the agent spawns its own unless told `unit`', () => {
    const file = join(tempDir(), 'agent.json');
    writeFileSync(file, JSON.stringify({ hostId: 'h1' }));
    const config = (env: Record<string, string>) => loadAgentConfig(file, { ...NATS, ...env }).fenceGuard;
    expect(config({})).toBe('spawn');
    expect(config({ FERRY_FENCE_GUARD: 'unit' })).toBe('unit');
    expect(() => config({ FERRY_FENCE_GUARD: 'systemd' })).toThrow(/fenceGuard/);
  });

  it('is found by the agent through its pid file, and missed loudly when it does not run', async () => {
    const dataDir = tempDir();
    expect(await checkUnitGuard(dataDir, log, 0)).toBeNull();
    // a guard that runs: this very process stands in for it
    writeFileSync(guardPaths(dataDir).pidFile, JSON.stringify({ pid: process.pid, startTime: processStartTime(process.pid) }));
    expect(await checkUnitGuard(dataDir, log, 0)).toBe(process.pid);
    // a stale pid file (the pid now another process's) is no guard
    writeFileSync(guardPaths(dataDir).pidFile, JSON.stringify({ pid: process.pid, startTime: 'earlier' }));
    expect(await checkUnitGuard(dataDir, log, 0)).toBeNull();
  });

  it('takes the grace from the lease state the agent writes; an older state without it still parses', () => {
    const base = { bootId: 'b', validUntilMs: 1, action: 'stop', containersDir: '/c', cgroupParent: '/ferry/h1' };
    expect(GuardState.parse({ ...base, graceMs: 750 }).graceMs).toBe(750);
    expect(GuardState.parse(base).graceMs).toBeUndefined();
  });
});
