/**
 * The fence guard: a small process per host, apart from the agent, that fences the host's
 * HA containers when the lease the agent last wrote down lapses — also when the agent itself has
 * died (crashed, OOM-killed, stopped and not restarted), which the agent's own fencing cannot
 * cover. It survives the agent (started detached, in its own session) and is reused by the next
 * one. It exits when its state file disappears (the host's containers were all destroyed) —
 * unless --persistent: then it keeps waiting for a state file (ferry-fence-guard.service, which
 * systemd restarts whenever it exits, starts it so; the agent runs with `fenceGuard: unit`).
 *
 *   node guard/main.js --data-dir DIR [--grace-ms 1000] [--persistent]
 *
 * The grace is the agent's fenceGuardGraceMs when the state file carries it, else --grace-ms.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { createLogger, processStartTime } from '@ferry/runtime';
import { RecordStore } from '../containers/records.ts';
import { cgroupPids, fenceCgroup } from '../containers/cgroups.ts';
import { bootId, guardPaths, guardShouldFence, monotonicMs, readGuardState, writeGuardEvent, type GuardState } from './state.ts';

const Args = z.object({
  'data-dir': z.string().startsWith('/'),
  'grace-ms': z.coerce.number().int().min(0).max(60_000).default(1000),
  persistent: z.boolean().default(false),
});

const log = createLogger('fence-guard');

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'data-dir': { type: 'string' }, 'grace-ms': { type: 'string' }, persistent: { type: 'boolean' } }, strict: true });
  const args = Args.parse(values);
  const dataDir = args['data-dir'];
  const paths = guardPaths(dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(paths.pidFile, JSON.stringify({ pid: process.pid, startTime: processStartTime(process.pid) }));
  const boot = await bootId();
  log.info({ dataDir, graceMs: args['grace-ms'], persistent: args.persistent }, 'fence guard started');
  let fencedFor: number | null = null;
  let missingSince: number | null = null;
  for (;;) {
    const state: GuardState | null = await readGuardState(dataDir);
    if (!state) {
      missingSince ??= Date.now();
      // gone for good (destroy-all removed it): nothing left to guard — unless this guard is a
      // service, which waits for the next agent's state (exiting would only make systemd restart it)
      if (!args.persistent && Date.now() - missingSince > 5_000) break;
    } else {
      missingSince = null;
      const now = monotonicMs();
      const action = state.action;
      const graceMs = state.graceMs ?? args['grace-ms'];
      if (state.bootId === boot && action === 'none' && guardShouldFence(state, now, graceMs, fencedFor)) {
        fencedFor = state.validUntilMs;
        log.warn({ lateMs: Math.round(now - state.validUntilMs) }, 'lease lapsed; fence action none: HA containers keep running');
      } else if (state.bootId === boot && action !== 'none' && guardShouldFence(state, now, graceMs, fencedFor)) {
        fencedFor = state.validUntilMs;
        const fenced: string[] = [];
        const records = await new RecordStore(state.containersDir, log).loadAll();
        const fenceable = (pool: string) => state.fencePools === undefined || state.fencePools.includes(pool);
        for (const r of records.filter((x) => x.spec.ha.enabled && fenceable(x.spec.pool) && (x.state === 'running' || x.state === 'created'))) {
          const cgroup = `${state.cgroupParent}/${r.spec.id}`;
          const pids = await cgroupPids(cgroup);
          if (!pids || pids.length === 0) continue; // not running
          try {
            await fenceCgroup(cgroup, action);
            fenced.push(r.spec.id);
          } catch (err) {
            log.error({ container: r.spec.id, err: (err as Error).message }, 'fencing a container failed');
          }
        }
        if (fenced.length > 0) {
          await writeGuardEvent(dataDir, { at: Date.now(), action, containers: fenced, lateMs: now - state.validUntilMs });
          log.error({ action, containers: fenced, lateMs: Math.round(now - state.validUntilMs) }, 'lease lapsed with nobody renewing it: fenced');
        } else {
          log.info({ lateMs: Math.round(now - state.validUntilMs) }, 'lease lapsed (no HA container running here: nothing to fence)');
        }
      }
    }
    await sleep(200);
  }
  log.info('state file gone: exiting');
}

process.on('SIGTERM', () => process.exit(0));
main().catch((err: unknown) => {
  process.stderr.write(`fence guard: ${(err as Error).message}\n`);
  process.exit(1);
});
