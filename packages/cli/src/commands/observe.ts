import { InvalidArgumentError, type Command } from 'commander';
import type { LogChunk, WorkloadView } from '@ferry/protocol';
import { CliError, EXIT } from '../errors.ts';
import type { Session } from '../session.ts';
import { send } from '../transport.ts';
import { TOP_SORTS, sortTop, topRow, topTable, type TopSort } from '../top.ts';

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

const whole = (min: number, max: number) => (text: string) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`a whole number from ${min} to ${max}`);
  return n;
};

/** Stops on Ctrl-C or SIGTERM. */
function interruptible(): AbortController {
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  process.once('SIGTERM', () => abort.abort());
  return abort;
}

/**
 * Follows a workload's console log (GET …/logs?follow=1, server-sent `chunk` events), writing each
 * chunk's text to stdout. A dropped stream is opened again from the last offset written (the API
 * serves the same offsets from whichever host the workload is on), so nothing is printed twice
 * and nothing the log still holds is skipped. Ends when the workload is deleted or on Ctrl-C.
 */
async function follow(s: Session, id: string, tail: number, signal: AbortSignal, write: (chunk: LogChunk) => void): Promise<void> {
  let from: number | undefined;
  let failures = 0;
  while (!signal.aborted) {
    const query = from === undefined ? `follow=1&tail=${tail}` : `follow=1&from=${from}`;
    let ended = false;
    try {
      const res = await send(`${s.api.target.url}/v1/workloads/${encodeURIComponent(id)}/logs?${query}`, {
        method: 'GET',
        headers: { authorization: `Bearer ${s.api.target.token}`, accept: 'text/event-stream' },
        signal,
        ...(s.api.target.ca ? { ca: s.api.target.ca } : {}),
      });
      if (!res.ok || !res.body) {
        const text = await res.text().catch(() => '');
        const message = (() => {
          try {
            return (JSON.parse(text) as { message?: string }).message ?? text;
          } catch {
            return text;
          }
        })();
        if (res.status === 404) throw new CliError(message || `no workload ${id}`, EXIT.notFound);
        if (res.status === 401 || res.status === 403) throw new CliError(`the API refused: ${message}`, EXIT.unreachable);
        throw new Error(`${res.status} ${message}`);
      }
      failures = 0;
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const piece of res.body) {
        buffer += decoder.decode(piece, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (!event || !data) continue;
          if (event === 'end') ended = true;
          if (event !== 'chunk') continue;
          const chunk = JSON.parse(data) as LogChunk;
          if (from !== undefined && chunk.start < from) continue; // never twice (a replayed chunk)
          write(chunk);
          from = chunk.next;
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof CliError) throw err;
      if (++failures > 30) throw new CliError(`the log stream of ${id} keeps failing: ${(err as Error).message}`, EXIT.unreachable);
    }
    if (ended) return;
    await sleep(1000, signal); // the API restarted or the stream dropped: open it again from `from`
  }
}

/** What shows a workload's life: its console log, and every workload's usage (top). */
export function observeCommands(program: Command, session: () => Session): void {
  program
    .command('logs <workload>')
    .description("a workload's console output (stdout and stderr), kept across migrations; needs the operator role")
    .option('-n, --tail <lines>', 'the last N lines (default 100)', whole(0, 10_000), 100)
    .option('-f, --follow', 'keep printing what it writes, across migrations, until Ctrl-C')
    .action(async (id: string, options: { tail: number; follow?: boolean }) => {
      const s = session();
      if (!options.follow) {
        const chunk = await s.api.get<LogChunk>(`/v1/workloads/${encodeURIComponent(id)}/logs?tail=${options.tail}`);
        if (s.format === 'table') process.stdout.write(chunk.text);
        else process.stdout.write(`${JSON.stringify(chunk)}\n`);
        return;
      }
      const abort = interruptible();
      await follow(s, id, options.tail, abort.signal, (chunk) => {
        if (chunk.skipped > 0) process.stderr.write(`ferry: ${chunk.skipped} bytes of ${id}'s log were rotated away before they could be shown\n`);
        process.stdout.write(s.format === 'table' ? chunk.text : `${JSON.stringify(chunk)}\n`);
      });
    });

  program
    .command('top')
    .description('every workload’s CPU, memory, processes and disk against its limits, and its host (like vzlist)')
    .option('--host <host>', 'only workloads on this host')
    .option('-s, --sort <column>', `sort by ${TOP_SORTS.join(', ')} (default cpu)`, (v: string) => {
      if (!(TOP_SORTS as readonly string[]).includes(v)) throw new InvalidArgumentError(`one of ${TOP_SORTS.join(', ')}`);
      return v as TopSort;
    })
    .option('-w, --watch [seconds]', 'redraw every few seconds (default 2) until Ctrl-C', whole(1, 3600))
    .action(async (options: { host?: string; sort?: TopSort; watch?: number | true }) => {
      const s = session();
      const read = async () => {
        const { items } = await s.api.list<WorkloadView>('/v1/workloads', 'workloads', { host: options.host });
        return sortTop(items.map(topRow), options.sort ?? 'cpu');
      };
      const show = (rows: Awaited<ReturnType<typeof read>>) => {
        if (s.format === 'table') process.stdout.write(`${topTable(rows)}\n`);
        else process.stdout.write(`${JSON.stringify({ workloads: rows })}\n`);
      };
      if (options.watch === undefined) return show(await read());
      const every = options.watch === true ? 2 : options.watch;
      const abort = interruptible();
      while (!abort.signal.aborted) {
        const rows = await read();
        // home and clear (a terminal), then the table and when it was read
        if (s.format === 'table' && process.stdout.isTTY) process.stdout.write('\x1b[H\x1b[2J');
        if (s.format === 'table') process.stdout.write(`ferry top — ${new Date().toISOString().slice(11, 19)}, every ${every} s\n`);
        show(rows);
        await sleep(every * 1000, abort.signal);
      }
    });
}
