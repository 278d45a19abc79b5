import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { createLogger, freePort } from '@ferry/runtime';
import { MigrationDeadlines } from './deadlines.ts';
import { isAlive, ref, stopProcess } from './processes.ts';
import { RsyncDaemon } from './rsync.ts';
import { MigrationSides, newSide, type MigrationSide, type ProcessRef } from './state.ts';

const log = createLogger('test').child({}, { level: 'silent' });
const hasRsync = (await execa('rsync', ['--version'], { reject: false })).exitCode === 0;
const exclusive = <T>(_id: string, work: () => Promise<T>) => work();

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(25);
  }
}

describe('migration daemon deadlines', () => {
  let dir: string;
  let sides: MigrationSides;
  const started: Array<ProcessRef | null> = [];
  const sleeper = () => {
    const p = ref(spawn('sleep', ['600'], { stdio: 'ignore' }).pid);
    started.push(p);
    return p;
  };
  const side = (fields: Partial<MigrationSide> & { migrationId: string }): MigrationSide =>
    newSide({ role: 'destination', workloadId: `w-${fields.migrationId}`, strategy: 'lazy', containerDir: join(dir, 'ct'), sharedRootfs: false, netns: null, ...fields });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-deadlines-'));
    sides = new MigrationSides(join(dir, 'migrations'));
  });

  afterEach(async () => {
    await Promise.all(started.splice(0).map((p) => stopProcess(p, 'SIGKILL')));
    await rm(dir, { recursive: true, force: true });
  });

  // without rsync this can only be skipped outside CI: in CI a missing rsync fails it
  it.skipIf(!hasRsync && !process.env.CI)("stops a prepared side's rsync daemon once its (short) deadline passed, on the watch timer", async () => {
    const port = await freePort('127.0.0.1');
    const workDir = sides.workDir('m-a-1');
    await mkdir(workDir, { recursive: true });
    await mkdir(join(dir, 'ct'), { recursive: true });
    const daemon = await RsyncDaemon.start({ dir: workDir, address: '127.0.0.1', port, user: 'ferry', secret: 's3cret', allowFrom: '127.0.0.1', modules: [{ name: 'ct', path: join(dir, 'ct') }] });
    const rsyncd = ref(daemon.pid);
    started.push(rsyncd);
    const deadlines = new MigrationDeadlines({ sides, deadlineMs: 400, exclusive, log });
    await sides.save(side({ migrationId: 'm-a-1', rsyncd, deadlineAt: deadlines.fromNow() }));
    deadlines.watch(50);
    try {
      await sleep(150);
      expect(isAlive(rsyncd)).toBe(true); // before its deadline it serves
      expect(await accepts(port)).toBe(true);
      await until('the rsync daemon to be gone', async () => !isAlive(rsyncd) && (await sides.load('m-a-1'))?.rsyncd === null);
      expect(await accepts(port)).toBe(false);
    } finally {
      deadlines.unwatch();
      daemon.stop();
    }
  });

  it('keeps a restored workload and its lazy-pages daemon, stopping only the copy daemons', async () => {
    const [rsyncd, pageServer, lazyDaemon] = [sleeper(), sleeper(), sleeper()];
    const deadlines = new MigrationDeadlines({ sides, deadlineMs: 1_000, exclusive, log });
    await sides.save(side({ migrationId: 'm-b-1', rsyncd, pageServer, lazyDaemon, restored: true, deadlineAt: Date.now() - 1 }));
    expect(await deadlines.sweep()).toEqual(['m-b-1']);
    expect([isAlive(rsyncd), isAlive(pageServer), isAlive(lazyDaemon)]).toEqual([false, false, true]);
    const after = await sides.load('m-b-1');
    expect(after).toMatchObject({ rsyncd: null, pageServer: null, lazyDaemon, restored: true });
  });

  it('stops every daemon of an unrestored side, and leaves sides before their deadline and sources alone', async () => {
    const [a, b, c, d] = [sleeper(), sleeper(), sleeper(), sleeper()];
    const deadlines = new MigrationDeadlines({ sides, deadlineMs: 60_000, exclusive, log });
    await sides.save(side({ migrationId: 'm-c-1', rsyncd: a, lazyDaemon: b, deadlineAt: Date.now() - 1 }));
    await sides.save(side({ migrationId: 'm-d-1', rsyncd: c, deadlineAt: deadlines.fromNow() }));
    await sides.save(side({ migrationId: 'm-e-1', role: 'source', checkpoint: d, deadlineAt: Date.now() - 1 }));
    expect(await deadlines.sweep()).toEqual(['m-c-1']);
    expect([isAlive(a), isAlive(b), isAlive(c), isAlive(d)]).toEqual([false, false, true, true]);
  });

  it('gives a side written without a deadline (an older agent) one from when it first sees it', async () => {
    const p = sleeper();
    let now = 1_000_000;
    const deadlines = new MigrationDeadlines({ sides, deadlineMs: 5_000, exclusive, log, now: () => now });
    await sides.save(side({ migrationId: 'm-f-1', rsyncd: p }));
    expect(await deadlines.sweep()).toEqual([]);
    expect((await sides.load('m-f-1'))?.deadlineAt).toBe(1_005_000);
    now += 5_001;
    expect(await deadlines.sweep()).toEqual(['m-f-1']);
    expect(isAlive(p)).toBe(false);
  });
});
