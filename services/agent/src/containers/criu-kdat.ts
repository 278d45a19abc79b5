import { access, readFile, rename, statfs, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import type { Logger } from '@ferry/runtime';
import type { Criu } from './criu.ts';

const TMPFS_MAGIC = 0x01021994;
const RUN_DIR = '/run';
const CACHE = '/run/criu.kdat';
/** which boot and which CRIU the cache was made by */
const STAMP = '/run/ferry-criu-kdat.stamp';

/**
 * The constant program that has CRIU write its cache: a private mount namespace whose /run is a
 * small tmpfs (where CRIU keeps the cache), `criu check` to probe, then the cache to stdout. The
 * CRIU binary is its only argument.
 */
const MAKE_CACHE = 'mount -t tmpfs -o size=4m,mode=0755 ferry-kdat /run && "$1" check >/dev/null 2>&1; exec cat /run/criu.kdat';

export type KdatCacheState = 'tmpfs' | 'fresh' | 'made' | 'failed';

/**
 * CRIU probes the kernel ("kerndat": a helper process, the vDSO, sockets — 20–30 ms on these
 * machines) at the start of every run unless it finds /run/criu.kdat, and it writes that cache
 * only where /run is a tmpfs, so that a reboot, which may bring another kernel, drops it. Where
 * /run is not a tmpfs (this machine's), every CRIU process of a migration probed again — the
 * lazy-pages daemon and the restore inside the freeze, 40–60 ms of it together.
 *
 * There the agent makes the cache itself: CRIU writes it in a private mount namespace whose /run is
 * a tmpfs, and the agent copies it to /run (CRIU loads it from any file system), stamped with this
 * boot's id and the CRIU version. It is made again when either changes — checked with every CRIU
 * probe the agent makes — so a cache never outlives the kernel and CRIU it describes. Where /run is
 * a tmpfs CRIU keeps its own cache and nothing is done.
 */
export async function ensureKdatCache(criu: Criu, log: Logger): Promise<KdatCacheState> {
  try {
    if ((await statfs(RUN_DIR)).type === TMPFS_MAGIC) return 'tmpfs';
    const version = await criu.run(['--version'], 10_000);
    if (version.exitCode !== 0) return 'failed';
    const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
    const stamp = `${bootId} ${criu.binary} ${version.stdout.trim().replace(/\s+/g, ' ')}\n`;
    const cached = await access(CACHE).then(
      () => true,
      () => false,
    );
    if (cached && (await readFile(STAMP, 'utf8').catch(() => '')) === stamp) return 'fresh';
    const made = await execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', MAKE_CACHE, 'ferry-kdat', criu.binary], { encoding: 'buffer', reject: false, timeout: 30_000 });
    if (made.exitCode !== 0 || made.stdout.length === 0) {
      log.warn({ exitCode: made.exitCode }, 'could not make CRIU its kernel-probe cache: every CRIU run probes the kernel again (slower freezes)');
      return 'failed';
    }
    // several agents of a lab share /run: each writes its own temporary file, the rename is atomic
    const temporary = `${CACHE}.${process.pid}.tmp`;
    await writeFile(temporary, made.stdout, { mode: 0o644 });
    await rename(temporary, CACHE);
    await writeFile(STAMP, stamp);
    log.info({ bytes: made.stdout.length }, "CRIU's kernel-probe cache made (/run is not a tmpfs, so CRIU does not keep it itself)");
    return 'made';
  } catch (err) {
    log.warn({ err }, "CRIU's kernel-probe cache: left as it is");
    return 'failed';
  }
}
