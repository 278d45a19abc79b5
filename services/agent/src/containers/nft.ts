import { execa } from 'execa';

/**
 * One nftables command of a batch, as words. Words are names, addresses, keywords and the
 * punctuation of nft's grammar: anything else is refused, never quoted, so nothing read from a
 * record or a request can smuggle a second command into the batch (the batch is text).
 */
export type NftCommand = string[];

const WORD = /^(?:[A-Za-z0-9_.:/@-]+|"[A-Za-z0-9_.:/@-]+"|[{},;!=]|!=)$/;

/** The batch text for `nft -f -`; throws on a word that is not a plain token. */
export function nftBatch(commands: NftCommand[]): string {
  for (const word of commands.flat()) {
    if (!WORD.test(word)) throw new Error(`refusing nft batch word ${JSON.stringify(word)}`);
  }
  return `${commands.map((c) => c.join(' ')).join('\n')}\n`;
}

/** Runs the commands as one `nft -f -`: one transaction, all of it applied or none. */
export async function runNft(commands: NftCommand[]): Promise<void> {
  if (commands.length === 0) return;
  const input = nftBatch(commands);
  const result = await execa('nft', ['-f', '-'], { input, reject: false, timeout: 30_000 });
  if (result.exitCode !== 0) throw new Error(`nft -f - failed: ${(result.stderr || result.stdout).trim() || result.shortMessage}`);
}

/** `nft -j list <what>`, parsed; null when the object does not exist. */
export async function listNftJson(what: string[]): Promise<unknown[] | null> {
  const result = await execa('nft', ['-j', 'list', ...what], { reject: false, timeout: 30_000 });
  if (result.exitCode !== 0) {
    if (/No such file or directory|does not exist/.test(result.stderr)) return null;
    throw new Error(`nft list ${what.join(' ')} failed: ${result.stderr.trim() || result.shortMessage}`);
  }
  const parsed = JSON.parse(result.stdout) as { nftables?: unknown[] };
  return parsed.nftables ?? [];
}
