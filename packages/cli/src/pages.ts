import { InvalidArgumentError, type Command } from 'commander';
import type { PageRequest } from './client.ts';

const pageSize = (text: string): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new InvalidArgumentError('a whole number from 1 to 1000');
  return n;
};

/**
 * `--limit N` and `--cursor C` on a list command: without them it reads every page (lists are
 * paged by the API, GET …?limit=&cursor=); with --limit it prints one page and, when there is
 * more, the cursor of the next (on stderr, so --output json stays one document).
 */
export function withPaging(command: Command): Command {
  return command.option('--limit <n>', 'one page of at most n (1-1000) instead of every page', pageSize).option('--cursor <cursor>', 'the page after this cursor (printed after a --limit page)');
}

export const pageRequest = (options: { limit?: number; cursor?: string }): PageRequest => ({ limit: options.limit, cursor: options.cursor });

/** After one page: how to get the next. */
export function notePage(nextCursor: string | null, argv: string[] = process.argv): void {
  if (nextCursor === null) return;
  const again = argv.slice(2).filter((arg, i, all) => arg !== '--cursor' && all[i - 1] !== '--cursor' && !arg.startsWith('--cursor='));
  process.stderr.write(`more: ferry ${again.join(' ')} --cursor ${nextCursor}\n`);
}
