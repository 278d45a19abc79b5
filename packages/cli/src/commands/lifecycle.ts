import type { Command } from 'commander';
import type { WorkloadAccepted, WorkloadCreated, WorkloadPhase, WorkloadView } from '@ferry/protocol';
import { checkSpec, specFromFile, specFromFlags, type CreateFlags } from '../create-spec.ts';
import { CliError, EXIT, UsageError } from '../errors.ts';
import { print } from '../output.ts';
import type { Session } from '../session.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const collect = (value: string, previous: string[] = []) => [...previous, value];
const WAIT_MS = 180_000;

const path = (id: string) => `/v1/workloads/${encodeURIComponent(id)}`;

/**
 * Polls a workload until its phase is `wanted` (or, for `gone`, until it no longer exists); a
 * failed phase, or a phase that cannot lead there any more, ends it with the workload's error.
 */
async function waitFor(s: Session, id: string, wanted: WorkloadPhase | 'gone', timeoutMs = WAIT_MS): Promise<WorkloadView | null> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    let w: WorkloadView;
    try {
      w = await s.api.get<WorkloadView>(path(id));
    } catch (err) {
      if (wanted === 'gone' && err instanceof CliError && err.exitCode === EXIT.notFound) return null;
      throw err;
    }
    if (w.phase !== last) {
      process.stderr.write(`  ${id}: ${w.phase}${w.hostId ? ` on ${w.hostId}` : ''}\n`);
      last = w.phase;
    }
    if (w.phase === wanted) return w;
    if (w.phase === 'failed' || w.phase === 'lost') throw new CliError(`${id} ${w.phase}: ${w.error ? `${w.error.code} — ${w.error.message}` : 'no reason recorded'}`, EXIT.failed);
    if (Date.now() > deadline) throw new CliError(`${id} is still ${w.phase} after ${timeoutMs / 1000} s (not ${wanted}); look again with 'ferry workloads show ${id}'`, EXIT.failed);
    await sleep(1000);
  }
}

const summary = [
  { header: 'workload', value: (x: WorkloadView) => x.spec.id },
  { header: 'phase', value: (x: WorkloadView) => x.phase },
  { header: 'host', value: (x: WorkloadView) => x.hostId ?? '' },
  { header: 'template', value: (x: WorkloadView) => x.spec.template },
  { header: 'address', value: (x: WorkloadView) => x.spec.networks.map((n) => `${n.network}=${n.address}`).join(',') },
];

/** The lifecycle: create (flags or a spec file), start, stop, delete. */
export function lifecycleCommands(program: Command, session: () => Session): void {
  program
    .command('create [name] [command...]')
    .description('create a workload from a template (flags, or a spec file with -f) and start it; waits until it runs')
    .option('-f, --file <spec>', 'a workload spec file (JSON or YAML), as POST /v1/workloads takes it; NAME overrides its id')
    .option('-t, --template <template>', 'the OS template (e.g. debian-12, busybox)')
    .option('--memory <size>', 'memory limit, e.g. 256M, 1G (default 256M)')
    .option('--cpus <n>', 'CPU quota in cores, fractions allowed (default 0.5)')
    .option('--disk <size>', 'disk reserved in the pool, e.g. 1G (default 1G)')
    .option('--pids <n>', 'most processes at once (default 1024)')
    .option('--address <[network=]ip>', 'an address on a network (repeatable)', collect)
    .option('--network <network>', 'the network of --address values that do not name one')
    .option('--pool <pool>', 'storage pool of its root filesystem (default local)')
    .option('--label <key=value>', 'a label (repeatable)', collect)
    .option('--env <NAME=value>', 'an environment variable of its command (repeatable)', collect)
    .option('--host <host>', 'only on this host (repeatable: any of them)', collect)
    .option('--ha', 'restart it elsewhere when its host dies')
    .option('--ha-priority <n>', 'HA restart priority, 0-1000 (implies --ha)')
    .option('--no-start', 'create it stopped')
    .option('--no-wait', 'return once the API accepted it')
    .addHelpText(
      'after',
      "\nThe command after NAME (after --) is its first process; default /sbin/init (a VPS template's init).\nExample: ferry create web1 --template debian-12 --memory 512M --address prod=10.77.0.20 --label tier=web",
    )
    .action(async (name: string | undefined, command: string[], options: CreateFlags & { file?: string; start: boolean; wait: boolean }) => {
      let raw: unknown;
      if (options.file) {
        const flagged = (['template', 'memory', 'cpus', 'disk', 'pids', 'address', 'network', 'pool', 'label', 'env', 'host', 'ha', 'haPriority'] as const).filter((k) => options[k] !== undefined);
        if (flagged.length > 0) throw new UsageError(`-f takes the whole spec from the file: leave out ${flagged.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')}`);
        if (command.length > 0) throw new UsageError('-f takes the command from the file: nothing may follow NAME');
        raw = specFromFile(options.file, name);
      } else {
        if (!name) throw new UsageError('ferry create needs a NAME (or a spec file: ferry create -f spec.json)');
        raw = specFromFlags(name, command, options);
      }
      const spec = checkSpec(raw, options.file ?? 'the flags');
      const s = session();
      const created = await s.api.request<WorkloadCreated>('POST', `/v1/workloads${options.start ? '' : '?start=false'}`, spec);
      for (const warning of created.warnings ?? []) process.stderr.write(`warning: ${warning.message}\n`);
      process.stderr.write(`${spec.id}: accepted (job ${created.job.id})\n`);
      const w = options.wait ? await waitFor(s, spec.id, options.start ? 'running' : 'stopped') : created.workload;
      print(s.format, w, w ? [w] : [], summary);
    });

  const change = (verb: 'start' | 'stop', wanted: WorkloadPhase, description: string) =>
    (verb === 'stop' ? program.command(`${verb} <workload>`).option('--grace <seconds>', 'SIGTERM, then SIGKILL after this long (default 10 s)') : program.command(`${verb} <workload>`))
      .description(description)
      .option('--no-wait', 'return once the API accepted it')
      .action(async (id: string, options: { wait: boolean; grace?: string }) => {
        let query = '';
        if (options.grace !== undefined) {
          const secs = Number(options.grace);
          if (!Number.isFinite(secs) || secs < 0 || secs > 300) throw new UsageError(`--grace ${options.grace}: seconds from 0 to 300`);
          query = `?graceMs=${Math.round(secs * 1000)}`;
        }
        const s = session();
        const accepted = await s.api.request<WorkloadAccepted>('POST', `${path(id)}/${verb}${query}`);
        process.stderr.write(`${id}: ${verb} accepted (job ${accepted.job.id})\n`);
        const w = options.wait ? await waitFor(s, id, wanted) : accepted.workload;
        print(s.format, w, w ? [w] : [], summary);
      });
  change('start', 'running', 'start a stopped workload; waits until it runs');
  change('stop', 'stopped', 'stop a workload (SIGTERM, then SIGKILL); waits until it stopped');

  program
    .command('delete <workload>')
    .description('delete a workload: its container, root filesystem and console log, on whichever host it is')
    .option('-y, --yes', 'do not ask (required when not at a terminal)')
    .option('--no-wait', 'return once the API accepted it')
    .action(async (id: string, options: { yes?: boolean; wait: boolean }) => {
      if (!options.yes) {
        if (!process.stdin.isTTY) throw new UsageError(`deleting ${id} removes its root filesystem for good: confirm with --yes`);
        process.stderr.write(`delete ${id} and its root filesystem for good? [y/N] `);
        const answer = await new Promise<string>((resolve) => process.stdin.once('data', (d) => resolve(String(d).trim())));
        process.stdin.pause();
        if (!/^y(es)?$/i.test(answer)) throw new CliError(`${id} kept`, EXIT.failed);
      }
      const s = session();
      const accepted = await s.api.request<WorkloadAccepted>('DELETE', path(id));
      process.stderr.write(`${id}: delete accepted (job ${accepted.job.id})\n`);
      if (options.wait) await waitFor(s, id, 'gone');
      if (s.format === 'table') process.stdout.write(`${id} deleted${options.wait ? '' : ' (on its way)'}\n`);
      else print(s.format, { id, deleted: options.wait ? true : 'accepted' }, [], []);
    });
}
