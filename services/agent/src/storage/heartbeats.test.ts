import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '@ferry/runtime';
import { StorageHeartbeats, storagePaths } from './heartbeats.ts';

const log = createLogger('test').child({}, { level: 'silent' });

describe('the storage heartbeat channel', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** two hosts on one shared pool, each with its own clock we move by hand */
  function pair() {
    const pool = mkdtempSync(join(tmpdir(), 'ferry-hb-'));
    dirs.push(pool);
    const clock = { a: 0, b: 0 };
    const pools = [{ id: 'shared', path: pool, shared: true }];
    const a = new StorageHeartbeats('ha', 'boot-a', pools, () => clock.a, log);
    const b = new StorageHeartbeats('hb', 'boot-b', pools, () => clock.b, log);
    return { pool, clock, a, b };
  }

  it("times a peer's heartbeat on the reader's own clock, and confirms a failure only once it is stale", async () => {
    const { clock, a, b } = pair();
    await a.beat();
    await b.beat();
    expect(b.peersReport()).toEqual([{ hostId: 'ha', pool: 'shared', unchangedForMs: 0, fenced: false }]);
    clock.b = 4000; // a writes nothing more: dead, or cut off from the pool
    await b.beat();
    expect(b.peersReport()[0]!.unchangedForMs).toBe(4000);
    expect(await b.confirmFailed('ha', 'shared', 6000)).toEqual({ confirmed: false, reason: 'alive', unchangedForMs: 4000 });
    clock.b = 6500;
    expect(await b.confirmFailed('ha', 'shared', 6000)).toEqual({ confirmed: true, reason: 'stale', unchangedForMs: 6500 });
    // a pool b does not have: it cannot vouch
    expect(await b.confirmFailed('ha', 'other', 6000)).toMatchObject({ confirmed: false, reason: 'not-shared' });
  });

  it('a host that fenced says so, and that is proof at once', async () => {
    const { a, b } = pair();
    await a.beat();
    await b.beat();
    a.setFenced(true);
    await a.beat();
    expect(await b.confirmFailed('ha', 'shared', 6000)).toMatchObject({ confirmed: true, reason: 'fenced' });
  });

  it('a declaration reaches the declared host, which removes it once it is heard again', async () => {
    const { a, b } = pair();
    await a.beat();
    await b.beat();
    await b.confirmFailed('ha', 'shared', 1); // writes the declaration whatever it answers
    expect(a.declaredFailed()).toBe(false);
    await a.beat();
    expect(a.declaredFailed()).toBe(true);
    await a.clearOwnDeclaration();
    expect(a.declaredFailed()).toBe(false);
    await a.beat();
    expect(a.declaredFailed()).toBe(false);
  });

  it('a heartbeat that cannot be written is no sign of life', async () => {
    const { pool, clock, a } = pair();
    await a.beat();
    expect(a.okWithin(1000)).toBe(true);
    const own = storagePaths(pool, 'ha').own;
    rmSync(own, { recursive: true, force: true });
    writeFileSync(own, 'not a directory'); // the pool refuses its writes
    clock.a = 2000;
    await a.beat();
    expect(a.okWithin(1000)).toBe(false);
    expect(a.lastOk()).toBe(0);
  });
});
