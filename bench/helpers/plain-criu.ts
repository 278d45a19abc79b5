/**
 * The floor a migration's freeze sits on: the same workload checkpointed and restored by plain
 * runc + CRIU with Ferry's flags (post-copy: `runc checkpoint --lazy-pages`, `criu lazy-pages`,
 * `runc restore --lazy-pages`, `--tcp-established`, CRIU's nftables network lock), in place on one
 * host — no copy, no agents, no scheduler, no TLS on the page stream. What is left of Ferry's freeze
 * above this is Ferry's; what this takes is runc's and CRIU's.
 *
 * The workload's own largest tick gap is the freeze, as in the migration rows. As under Ferry, the
 * container joins a network namespace made for it (loopback only, up), and the restore joins
 * another one, as another host's would be: no TCP client can hold a connection from one to the
 * other, so only the workload's view is measured.
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { WorkloadSpec } from '@ferry/protocol';
import { Criu } from '../../services/agent/src/containers/criu.ts';
import { buildOciConfig } from '../../services/agent/src/containers/oci.ts';
import { Runc } from '../../services/agent/src/containers/runc.ts';
import { spawnWithStatusFd } from '../../services/agent/src/migration/criu-status.ts';
import { createMigrationTls, criuTlsArgs, criuTlsConfig } from '../../services/agent/src/migration/tls.ts';

const TEMPLATE_ROOTFS = '/opt/ferry/templates/busybox/rootfs';
const BUSYBOX = join(TEMPLATE_ROOTFS, 'bin', 'busybox');

export interface PlainRun {
  memMiB: number;
  /** the workload's largest tick gap over the checkpoint and restore */
  workloadFreezeMs: number;
  /** wall time of `runc checkpoint --lazy-pages` until CRIU said it serves pages */
  checkpointMs: number;
  /** wall time of starting `criu lazy-pages` (connects to the page server) */
  lazyDaemonMs: number;
  /** wall time of `runc restore --lazy-pages --detach` */
  restoreMs: number;
  /** from the checkpoint's start until the last page left (the lazy checkpoint exited) */
  totalMs: number;
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

async function pidOf(runc: Runc, id: string): Promise<number> {
  const state = await runc.state(id);
  if (!state) throw new Error(`plain CRIU: no container ${id}`);
  return state.pid;
}

/** One line to the workload's control port, inside its network namespace. */
async function talk(pid: number, line: string): Promise<string> {
  const r = await execa('nsenter', ['--net=/proc/' + pid + '/ns/net', BUSYBOX, 'nc', '-w', '5', '127.0.0.1', '7000'], { input: `${line}\nquit\n` });
  return r.stdout.trim();
}

/** The first error lines of a log, for a failure's message. */
const errors = (file: string) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => /rror/.test(l))
        .slice(0, 4)
        .join(' | ')
    : '';

async function until<T>(what: string, probe: () => Promise<T | null | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`plain CRIU: timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * `pause`: frozen by `runc pause` before the checkpoint, as Ferry does (CRIU then finds the cgroup
 * frozen and skips its 100 ms freezer poll). `tls`: the page stream with TLS, as Ferry runs it (its
 * one-time certificate), to see what TLS costs.
 */
export async function plainCriuRun(memMiB: number, dirtyMiBps: number, options: { tls?: boolean; pause?: boolean } = {}): Promise<PlainRun> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-plain-criu-'));
  const root = join(dir, 'runc');
  // the agent's own runners: runc with the relay for stdio (a pipe CRIU can checkpoint), the same CRIU binary
  const criu = new Criu(process.env.FERRY_CRIU ?? 'criu');
  const runc = new Runc(root, 'runc', criu);
  // the restore is another host's runc: its own state root and cgroup (the lazy checkpoint still
  // holds the frozen original until the last page left)
  const restored = new Runc(join(dir, 'runc-restore'), 'runc', criu);
  const restoreBundle = join(dir, 'restore-bundle');
  const netns = [`ferry-plain-${process.pid}-a`, `ferry-plain-${process.pid}-b`] as const;
  const bundle = join(dir, 'bundle');
  const id = `plain-${process.pid}`;
  const cgroup = `/ferry-bench-plain/${id}`;
  let checkpoint: ChildProcess | null = null;
  try {
    mkdirSync(bundle, { recursive: true });
    for (const ns of netns) {
      await execa('ip', ['netns', 'add', ns]);
      await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await execa('cp', ['-a', TEMPLATE_ROOTFS, join(bundle, 'rootfs')]);
    const spec = WorkloadSpec.parse({
      id: 'plain',
      template: 'busybox',
      command: ['/usr/bin/ferry-workload', '--mem', String(memMiB), '--dirty', String(dirtyMiBps), '--port', '7000'],
      resources: { vcpus: 1, memoryMiB: memMiB + 512, diskMiB: 64 },
      networks: [],
      pool: 'local',
    });
    const criuConfig = join(bundle, 'criu.conf');
    let tlsArgs: string[] = [];
    let tlsConfig = '';
    if (options.tls) {
      await createMigrationTls(dir);
      tlsArgs = criuTlsArgs(dir);
      tlsConfig = criuTlsConfig(dir);
    }
    writeFileSync(criuConfig, `network-lock nftables\n${tlsConfig}`);
    const config = buildOciConfig(spec, { rootfs: join(bundle, 'rootfs'), netnsPath: `/run/netns/${netns[0]}`, cgroupsPath: cgroup, maxOpenFiles: 1024, criuConfig });
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
    mkdirSync(restoreBundle);
    const restoreConfig = buildOciConfig(spec, { rootfs: join(bundle, 'rootfs'), netnsPath: `/run/netns/${netns[1]}`, cgroupsPath: `${cgroup}-restored`, maxOpenFiles: 1024, criuConfig });
    writeFileSync(join(restoreBundle, 'config.json'), JSON.stringify(restoreConfig));
    const consoleLog = join(dir, 'console.log');
    await runc.detached(['run', '--detach', '--bundle', bundle, id], consoleLog);
    let pid = await pidOf(runc, id);
    await until('the workload answering', async () => /^\d+$/.test(await talk(pid, 'get')));
    await sleep(1000); // dirtying at its steady rate
    await talk(pid, 'reset-gaps');

    const images = join(dir, 'images');
    mkdirSync(images);
    const port = await freePort();
    // CRIU writes one byte to its status fd when the dump is done and it serves pages (the agent's way too)
    const log = openSync(join(dir, 'checkpoint.out'), 'a');
    const started = performance.now();
    if (options.pause) await runc.pause(id);
    try {
      const [binary, argv] = runc.argv([
        'checkpoint',
        '--lazy-pages',
        '--page-server',
        `127.0.0.1:${port}`,
        '--status-fd',
        '3',
        '--image-path',
        images,
        '--work-path',
        images,
        '--tcp-established',
        id,
      ]);
      checkpoint = await spawnWithStatusFd(binary, argv, join(dir, 'status.fifo'), log, 120_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}: ${errors(join(dir, 'checkpoint.out'))} ${errors(join(images, 'dump.log'))}`);
    } finally {
      closeSync(log);
    }
    const checkpointMs = performance.now() - started;

    const work = join(dir, 'restore');
    mkdirSync(work);
    const daemonStarted = performance.now();
    await criu.lazyPages({ source: { address: '127.0.0.1', port }, tlsArgs, imagesDir: images, workDir: work, pidFile: join(work, 'lazy-pages.pid'), logFile: 'lazy-pages.log' });
    const lazyDaemonMs = performance.now() - daemonStarted;
    const restoreStarted = performance.now();
    await restored
      .detached(['restore', '--detach', '--lazy-pages', '--image-path', images, '--work-path', work, '--tcp-established', '--bundle', restoreBundle, id], consoleLog)
      .catch((err: unknown) => {
        throw new Error(`${(err as Error).message}: ${errors(consoleLog)} ${errors(join(work, 'restore.log'))} ${errors(join(work, 'lazy-pages.log'))}`);
      });
    const restoreMs = performance.now() - restoreStarted;

    pid = await pidOf(restored, id);
    const stats = JSON.parse(await until('stats after the restore', async () => talk(pid, 'stats'))) as { maxGapUs: number };
    const verify = JSON.parse(await talk(pid, 'verify')) as { ok: boolean };
    if (!verify.ok) throw new Error('plain CRIU: the restored workload failed its memory check');
    const serving = checkpoint as ChildProcess | null;
    if (serving && serving.exitCode === null) await new Promise((resolve) => serving.once('exit', resolve));
    const totalMs = performance.now() - started;
    return { memMiB, workloadFreezeMs: stats.maxGapUs / 1000, checkpointMs, lazyDaemonMs, restoreMs, totalMs };
  } finally {
    // a run that failed half-way leaves CRIU serving pages (runc's child) and the lazy-pages daemon
    const serving = checkpoint as ChildProcess | null;
    if (serving?.pid && serving.exitCode === null) await execa('pkill', ['-KILL', '-P', String(serving.pid)], { reject: false });
    serving?.kill('SIGKILL');
    const daemon = Number(await readFile(join(dir, 'restore', 'lazy-pages.pid'), 'utf8').catch(() => ''));
    if (daemon > 0) await execa('kill', ['-KILL', String(daemon)], { reject: false });
    await runc.delete(id, true).catch(() => undefined);
    await restored.delete(id, true).catch(() => undefined);
    await execa('rmdir', [`/sys/fs/cgroup${cgroup}`, `/sys/fs/cgroup${cgroup}-restored`, '/sys/fs/cgroup/ferry-bench-plain'], { reject: false });
    for (const ns of netns) await execa('ip', ['netns', 'del', ns], { reject: false });
    rmSync(dir, { recursive: true, force: true });
  }
}
