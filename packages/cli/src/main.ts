import { parseArgs } from 'node:util';
import { z } from 'zod';
import { formatTable, planOffline, readSnapshot, UsageError } from './plan.ts';

const USAGE = `usage:
  ferry plan rebalance --snapshot FILE [--max-moves N] [-o table|json]
  ferry plan evacuate HOST --snapshot FILE [-o table|json]`;

const Options = z.object({
  snapshot: z.string().min(1, 'needs --snapshot FILE'),
  'max-moves': z.coerce.number().int().min(1).max(10_000).optional(),
  output: z.enum(['table', 'json']).default('table'),
});

/** Exit codes: 0 done, 1 the plan was refused, 2 bad usage or input. */
export function main(argv: string[]): number {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { snapshot: { type: 'string' }, 'max-moves': { type: 'string' }, output: { type: 'string', short: 'o' } },
    });
    const [command, kind, host, ...rest] = positionals;
    if (command !== 'plan' || (kind !== 'rebalance' && kind !== 'evacuate') || rest.length > 0 || (kind === 'rebalance' && host)) throw new UsageError(USAGE);
    const options = Options.safeParse({ snapshot: values.snapshot ?? '', 'max-moves': values['max-moves'], output: values.output });
    if (!options.success) throw new UsageError(`${options.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; ')}\n${USAGE}`);
    const out = planOffline(kind, readSnapshot(options.data.snapshot), { ...(options.data['max-moves'] ? { maxMoves: options.data['max-moves'] } : {}), ...(host ? { host } : {}) });
    process.stdout.write(`${options.data.output === 'json' ? JSON.stringify(out, null, 2) : formatTable(out)}\n`);
    return out.ok ? 0 : 1;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
}

process.exitCode = main(process.argv.slice(2));
