import { Command, CommanderError, Option } from 'commander';
import { stringify } from 'yaml';
import { accessCommands } from './commands/access.ts';
import { consoleCommands } from './commands/console.ts';
import { contextCommands } from './commands/context.ts';
import { hostAdminCommands } from './commands/host-admin.ts';
import { operateCommands } from './commands/operate.ts';
import { lifecycleCommands } from './commands/lifecycle.ts';
import { suspendCommands } from './commands/suspend.ts';
import { observeCommands } from './commands/observe.ts';
import { readCommands } from './commands/read.ts';
import { CliError, EXIT } from './errors.ts';
import { formatTable, planOffline, readSnapshot } from './plan.ts';
import { rebalanceBody } from './limits.ts';
import { outputFormat, sessionOf, type GlobalOptions } from './session.ts';

function build(): Command {
  const program = new Command('ferry')
    .description('Ferry: live migration, maintenance, rebalancing and failover of OS containers')
    .addOption(new Option('-o, --output <format>', 'table, json or yaml').default('table'))
    .option('--context <name>', 'the context to use (default: the current one)')
    .option('--config <file>', 'config file with contexts (default: $FERRY_CONFIG or ~/.config/ferry/config.yaml)')
    .option('--url <url>', 'the API URL (overrides the context and FERRY_API_URL)')
    .option('--token <token>', 'the API token (overrides the context and FERRY_API_TOKEN)')
    .showHelpAfterError('(ferry --help lists the commands)')
    // -o, --context, --url… work after any subcommand: its --help lists them too (inherited by
    // every command created below)
    .configureHelp({ showGlobalOptions: true })
    .exitOverride();
  const session = () => sessionOf(program);
  contextCommands(program);
  readCommands(program, session);
  hostAdminCommands(program, session);
  operateCommands(program, session);
  consoleCommands(program, session);
  lifecycleCommands(program, session);
  suspendCommands(program, session);
  observeCommands(program, session);
  accessCommands(program, session);

  // Offline: the same planners on a snapshot file (GET /v1/cluster/snapshot), no service needed.
  const plan = program.command('plan').description('plan offline on a cluster snapshot file');
  const offline = (
    kind: 'rebalance' | 'evacuate',
    host: string | undefined,
    options: { snapshot?: string; maxMoves?: string; minGain?: string; moveCost?: string; moveCostPerGib?: string; weights?: string; partial?: boolean },
  ) => {
    if (!options.snapshot) throw new CliError('needs --snapshot FILE (save one with GET /v1/cluster/snapshot)', EXIT.usage);
    // the API's bounds (RebalanceRequest): an offline plan is the plan the API would make
    const limits = rebalanceBody({ maxMoves: options.maxMoves, minGain: options.minGain, moveCost: options.moveCost, moveCostPerGiB: options.moveCostPerGib, weights: options.weights });
    const out = planOffline(kind, readSnapshot(options.snapshot), { ...limits, ...(host ? { host } : {}), ...(options.partial ? { partial: true } : {}) });
    const format = outputFormat(program.opts<GlobalOptions>().output);
    process.stdout.write(format === 'json' ? `${JSON.stringify(out, null, 2)}\n` : format === 'yaml' ? stringify(out) : `${formatTable(out)}\n`);
    if (!out.ok) process.exitCode = EXIT.failed;
  };
  plan
    .command('rebalance')
    .description('a rebalance plan for the snapshot')
    .option('--snapshot <file>', 'the snapshot file')
    .option('--max-moves <n>', 'at most this many moves')
    .option('--min-gain <x>', 'a move must lower the score at least this much')
    .option('--move-cost <x>', 'what any move costs, in score, subtracted from its gain')
    .option('--move-cost-per-gib <x>', 'what each GiB a move copies costs, in score')
    .option('--weights <term=x,…>', 'the score weights to change, e.g. cpu=0.5,instances=0.1')
    .action((options: { snapshot?: string; maxMoves?: string; minGain?: string; moveCost?: string; moveCostPerGib?: string; weights?: string }) => offline('rebalance', undefined, options));
  plan
    .command('evacuate <host>')
    .description('an evacuation plan for one host of the snapshot')
    .option('--snapshot <file>', 'the snapshot file')
    .option('--partial', 'move what can leave; list the workloads that cannot, with why')
    .action((host: string, options: { snapshot?: string; partial?: boolean }) => offline('evacuate', host, options));
  return program;
}

/** Runs one command line; resolves to the exit code (see errors.ts). */
export async function main(argv: string[]): Promise<number> {
  const program = build();
  for (const command of program.commands) command.exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version are not errors; commander already printed the message
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version' ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof CliError) {
      process.stderr.write(`ferry: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`ferry: ${(err as Error).message}\n`);
    return EXIT.failed;
  }
}

process.exitCode = await main(process.argv.slice(2));
