import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { isSameProcessAlive, type Logger } from '@ferry/runtime';
import { guardPaths } from './state.ts';

/**
 * The guard's entry point next to this file: main.ts when the agent runs from source (under tsx,
 * whose loader process.execArgv passes on), main.js when it runs as the built JavaScript
 * (tsconfig.build.json, the Debian package) with plain node.
 */
const GUARD_MAIN = import.meta.url.endsWith('.ts') ? './main.ts' : './main.js';

const PidFile = z.object({ pid: z.number().int().positive(), startTime: z.string().nullable() });

async function runningGuard(dataDir: string): Promise<z.infer<typeof PidFile> | null> {
  try {
    const ref = PidFile.parse(JSON.parse(await readFile(guardPaths(dataDir).pidFile, 'utf8')));
    return ref.startTime !== null && isSameProcessAlive(ref.pid, ref.startTime) ? ref : null;
  } catch {
    return null;
  }
}

/**
 * Makes sure this host's fence guard runs: the one a previous agent started is kept (it guarded
 * the containers while no agent ran), otherwise a new one is started detached, in its own
 * session, so it outlives this agent.
 */
export async function ensureGuard(dataDir: string, graceMs: number, log: Logger): Promise<number> {
  const existing = await runningGuard(dataDir);
  if (existing) {
    log.info({ pid: existing.pid }, 'fence guard already running');
    return existing.pid;
  }
  const paths = guardPaths(dataDir);
  const out = openSync(paths.log, 'a');
  const main = fileURLToPath(new URL(GUARD_MAIN, import.meta.url));
  const child = spawn(process.execPath, [...process.execArgv, main, '--data-dir', dataDir, '--grace-ms', String(graceMs)], {
    detached: true,
    stdio: ['ignore', out, out],
    env: process.env,
  });
  closeSync(out);
  child.unref();
  for (let waited = 0; waited < 10_000; waited += 50) {
    const started = await runningGuard(dataDir);
    if (started) {
      log.info({ pid: started.pid, log: paths.log }, 'fence guard started');
      return started.pid;
    }
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  throw new Error(`the fence guard did not start (see ${paths.log})`);
}

/**
 * With `fenceGuard: unit` the guard is ferry-fence-guard.service, started by systemd (ferry-agent.service
 * wants it and starts after it): the agent starts none of its own, it only checks that one runs for
 * its data directory — waiting up to waitMs for it to come up — and says loudly when none does.
 * Returns the guard's pid, or null when no guard runs (the agent keeps running: its own fencing
 * still works while it lives).
 */
export async function checkUnitGuard(dataDir: string, log: Logger, waitMs = 10_000): Promise<number | null> {
  for (let waited = 0; ; waited += 200) {
    const running = await runningGuard(dataDir);
    if (running) {
      log.info({ pid: running.pid }, 'fence guard (ferry-fence-guard.service) running');
      return running.pid;
    }
    if (waited >= waitMs) break;
    await sleep(200);
  }
  log.error(
    { dataDir, pidFile: guardPaths(dataDir).pidFile },
    'no fence guard runs for this data directory (fenceGuard: unit): if this agent dies, nobody fences its HA containers — start ferry-fence-guard.service (its --data-dir must be this dataDir)',
  );
  return null;
}

/** Stops the guard (decommissioning, lab teardown) and forgets the lease it guarded. */
export async function stopGuard(dataDir: string): Promise<void> {
  const paths = guardPaths(dataDir);
  await rm(paths.state, { force: true });
  const ref = await runningGuard(dataDir);
  if (ref) {
    process.kill(ref.pid, 'SIGTERM');
    for (let waited = 0; waited < 5_000 && isSameProcessAlive(ref.pid, ref.startTime!); waited += 50) await sleep(50);
    if (isSameProcessAlive(ref.pid, ref.startTime!)) process.kill(ref.pid, 'SIGKILL');
  }
  await rm(paths.pidFile, { force: true });
}
