import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { guardPaths, guardShouldFence, readGuardState, takeGuardEvents, writeGuardEvent, writeGuardState, type GuardState } from './state.ts';

const dir = mkdtempSync(join(tmpdir(), 'ferry-guard-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const state: GuardState = { bootId: 'b', validUntilMs: 10_000, action: 'stop', containersDir: '/c', cgroupParent: '/ferry' };

describe('fence guard state', () => {
  it('fences only once the lease lapsed by more than the grace, and once per lease value', () => {
    expect(guardShouldFence(null, 99_999, 500, null)).toBe(false);
    expect(guardShouldFence(state, 10_400, 500, null)).toBe(false);
    expect(guardShouldFence(state, 10_501, 500, null)).toBe(true);
    expect(guardShouldFence(state, 20_000, 500, 10_000)).toBe(false); // already fenced for this lease
    expect(guardShouldFence({ ...state, validUntilMs: 30_000 }, 31_000, 500, 10_000)).toBe(true); // renewed, then lapsed again
  });

  it('round-trips its state file and reads a damaged one as no state', async () => {
    await writeGuardState(dir, state);
    expect(await readGuardState(dir)).toEqual(state);
    writeFileSync(guardPaths(dir).state, '{"bootId": 1');
    expect(await readGuardState(dir)).toBeNull();
  });

  it('hands its events over one by one: taken events are gone, unreadable ones dropped', async () => {
    const a = await writeGuardEvent(dir, { at: 1, action: 'stop', containers: ['x'], lateMs: 600 });
    const b = await writeGuardEvent(dir, { at: 2, action: 'freeze', containers: ['y', 'z'], lateMs: 700 });
    writeFileSync(join(guardPaths(dir).events, 'zz-broken.json'), 'not json');
    const taken = await takeGuardEvents(dir);
    expect(taken.map((e) => e.id).sort()).toEqual([a.id, b.id].sort());
    expect(await takeGuardEvents(dir)).toEqual([]);
  });
});
