import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';

/** What the source runs against the destination's one-time rsync daemon. */
export interface RsyncTarget {
  address: string;
  port: number;
  user: string;
  secret: string;
}

/**
 * A peer that stops answering (its host hung, the link cut for good) must not hold a transfer
 * until the step's own timeout (10 min): rsync gives up after this long without any data moving,
 * and after this long trying to connect to the daemon. The step fails, and the migration rolls
 * back; a link that comes back within it loses nothing.
 */
export const RSYNC_IO_TIMEOUT_S = 60;
const RSYNC_TIMEOUTS = [`--timeout=${RSYNC_IO_TIMEOUT_S}`, '--contimeout=15'];

/**
 * rsync flags for moving a root filesystem or checkpoint images: archive with hard links, ACLs
 * and xattrs, numeric ids, deletions, whole files (no delta search on a LAN), and mtimes compared
 * to the nanosecond (`--modify-window=-1`): a re-pushed file of the same size in the same second
 * must not be skipped (a stale image broke restores in our lab). `TCP_NODELAY` on both ends (here
 * and in the daemon's `socket options`): rsync's protocol is many small request/answer exchanges,
 * and with Nagle's algorithm against delayed ACKs each of several waits 40 ms — a small transfer
 * took 180–240 ms on one machine's loopback, 50–80 ms with it (the freeze's final copy pays this).
 */
export const RSYNC_FLAGS = ['-aHAX', '--numeric-ids', '--delete', '--whole-file', '--modify-window=-1', '--stats', '--sockopts=TCP_NODELAY', ...RSYNC_TIMEOUTS];

/** Parses `Total bytes sent: 1,234` from rsync --stats. */
export function parseBytesSent(stats: string): number {
  const match = /Total bytes sent:\s*([\d,.]+)/.exec(stats);
  return match ? Number(match[1]!.replace(/[,.]/g, '')) : 0;
}

/** One `--info=progress2` update: `  12,345,678  45%   98.76MB/s    0:00:01 (xfr#3, to-chk=0/9)`. */
export function parseProgress(line: string): { bytes: number; percent: number } | null {
  const match = /^\s*([\d,]+)\s+(\d{1,3})%/.exec(line);
  return match ? { bytes: Number(match[1]!.replace(/,/g, '')), percent: Math.min(100, Number(match[2])) } : null;
}

/**
 * Pushes `from` (a directory; its contents) into module `module`/`subdir` of the daemon. Excluded
 * patterns are neither sent nor deleted on the other side. `onProgress` hears rsync's running
 * total (whole-transfer progress, at most every 500 ms).
 */
export async function rsyncPush(
  from: string,
  target: RsyncTarget,
  module: string,
  subdir = '',
  timeoutMs = 600_000,
  exclude: string[] = [],
  onProgress?: (progress: { bytes: number; percent: number }) => void,
  extraFlags: string[] = [],
): Promise<{ bytes: number; ms: number }> {
  const started = performance.now();
  const url = `rsync://${target.user}@${target.address}:${target.port}/${module}/${subdir}`;
  const excludes = exclude.map((pattern) => `--exclude=${pattern}`);
  const progressFlags = onProgress ? ['--info=progress2', '--no-inc-recursive'] : [];
  const child = execa('rsync', [...RSYNC_FLAGS, ...extraFlags, ...progressFlags, ...excludes, `${from.replace(/\/$/, '')}/`, url], {
    env: { RSYNC_PASSWORD: target.secret },
    reject: false,
    timeout: timeoutMs,
  });
  if (onProgress) {
    let last = 0;
    let partial = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split(/[\r\n]/);
      partial = lines.pop() ?? '';
      const now = performance.now();
      if (now - last < 500) return;
      const newest = lines
        .map(parseProgress)
        .filter((p) => p !== null)
        .pop();
      if (newest) {
        last = now;
        onProgress(newest);
      }
    });
  }
  const result = await child;
  if (result.exitCode !== 0) throw new Error(`rsync to ${target.address}:${target.port}/${module} failed (${result.exitCode}): ${result.stderr.trim().split('\n').slice(-2).join(' ')}`);
  return { bytes: parseBytesSent(result.stdout), ms: performance.now() - started };
}

/**
 * Pulls the files of `module`/`subdir` matching `include` from the daemon into `into` (nothing
 * else is touched there: no deletions). A rollback's way back for pages that went to the other side.
 */
export async function rsyncPull(target: RsyncTarget, module: string, subdir: string, into: string, include: string[], timeoutMs = 600_000): Promise<{ bytes: number; ms: number }> {
  const started = performance.now();
  const url = `rsync://${target.user}@${target.address}:${target.port}/${module}/${subdir.replace(/\/$/, '')}/`;
  const filters = [...include.map((pattern) => `--include=${pattern}`), '--exclude=*'];
  const flags = RSYNC_FLAGS.filter((f) => f !== '--delete');
  const result = await execa('rsync', [...flags, ...filters, url, `${into.replace(/\/$/, '')}/`], { env: { RSYNC_PASSWORD: target.secret }, reject: false, timeout: timeoutMs });
  if (result.exitCode !== 0) throw new Error(`rsync from ${target.address}:${target.port}/${module} failed (${result.exitCode}): ${result.stderr.trim().split('\n').slice(-2).join(' ')}`);
  return { bytes: parseBytesSent(result.stdout), ms: performance.now() - started };
}

export interface DaemonModule {
  name: string;
  path: string;
}

/**
 * A one-time rsync daemon for one migration: bound to this host's transfer address, admitting
 * one user whose password is the migration's secret, from the source's address only.
 */
export class RsyncDaemon {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {}

  get pid(): number | undefined {
    return this.child.pid;
  }

  static async start(options: { dir: string; address: string; port: number; user: string; secret: string; allowFrom: string; modules: DaemonModule[] }): Promise<RsyncDaemon> {
    const secrets = join(options.dir, 'rsyncd.secrets');
    const config = join(options.dir, 'rsyncd.conf');
    await writeFile(secrets, `${options.user}:${options.secret}\n`, { mode: 0o600 });
    const modules = options.modules
      .map(
        (m) =>
          `[${m.name}]\n  path = ${m.path}\n  read only = false\n  uid = root\n  gid = root\n  auth users = ${options.user}\n  secrets file = ${secrets}\n  hosts allow = ${options.allowFrom}\n  hosts deny = *\n`,
      )
      .join('');
    // Chrooted into the module (the agent runs as root): without a chroot rsyncd "munges" every
    // absolute symlink it receives (`/etc/x` → `/rsyncd-munged//etc/x`) to keep writes inside the
    // module, which broke every absolute symlink of a moved root filesystem (Debian's
    // /etc/runit/runsvdir/current, /etc/alternatives/*): found by the Debian template's lab test.
    await writeFile(
      config,
      `use chroot = yes\nmunge symlinks = no\nnumeric ids = yes\nreverse lookup = no\nsocket options = TCP_NODELAY\ntimeout = ${RSYNC_IO_TIMEOUT_S}\nmax connections = 8\n${modules}`,
      { mode: 0o600 },
    );
    const child = spawn('rsync', ['--daemon', '--no-detach', '--address', options.address, '--port', String(options.port), '--config', config, '--log-file', join(options.dir, 'rsyncd.log')], {
      stdio: 'ignore',
    });
    const daemon = new RsyncDaemon(child, options.port);
    // Ready when it accepts a listing of a module with the secret.
    const target = { address: options.address, port: options.port, user: options.user, secret: options.secret };
    for (let waited = 0; waited < 5_000; waited += 50) {
      if (child.exitCode !== null) throw new Error(`rsync daemon exited at once (code ${child.exitCode}); see ${join(options.dir, 'rsyncd.log')}`);
      const probe = await execa('rsync', [`rsync://${target.user}@${target.address}:${target.port}/${options.modules[0]!.name}/`], {
        env: { RSYNC_PASSWORD: target.secret },
        reject: false,
        timeout: 2_000,
      });
      if (probe.exitCode === 0 || /@ERROR: access denied/.test(probe.stderr)) return daemon;
      await sleep(50);
    }
    daemon.stop();
    throw new Error('rsync daemon did not come up within 5 s');
  }

  stop(): void {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
  }
}
