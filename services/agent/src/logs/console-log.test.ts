import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readConsoleLog, relayArgv, tailStart } from './console-log.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Runs `script` behind the real relay (bash, head, mv) and waits until the relay wrote `lastLine`. */
async function relay(script: string, cap: number, lastLine: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-log-'));
  dirs.push(dir);
  const log = join(dir, 'log', 'console.log');
  await execa('bash', relayArgv(log, ['sh', '-c', script], cap), { stdio: 'ignore' });
  for (let waited = 0; waited < 10_000; waited += 20) {
    const tail = await readConsoleLog(log, { tail: 1, maxBytes: 4096 });
    if (tail.text === `${lastLine}\n`) return log;
    await sleep(20);
  }
  throw new Error(`the relay never wrote ${lastLine}`);
}

const lines = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `line-${from + i}`);

describe('console log relay and reader', () => {
  it('keeps everything below the cap in one file, offsets from 0', async () => {
    const log = await relay('for i in 1 2 3; do echo line-$i; echo err-$i >&2; done', 10_000, 'err-3');
    const all = await readConsoleLog(log, { from: 0, tail: 0, maxBytes: 4096 });
    expect(all.text).toBe('line-1\nerr-1\nline-2\nerr-2\nline-3\nerr-3\n');
    expect(all).toMatchObject({ start: 0, next: all.text.length, skipped: 0 });
    const tail = await readConsoleLog(log, { tail: 2, maxBytes: 4096 });
    expect(tail.text).toBe('line-3\nerr-3\n');
    expect(tail.next).toBe(all.next);
    expect(tail.start).toBe(all.next - tail.text.length);
  });

  it('writes each line as it comes, while the container still runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-log-'));
    dirs.push(dir);
    const log = join(dir, 'log', 'console.log');
    const writer = execa('bash', relayArgv(log, ['sh', '-c', 'echo first; sleep 3; echo second'], 1000), { stdio: 'ignore' });
    for (let waited = 0; waited < 2000 && (await readConsoleLog(log, { tail: 5, maxBytes: 4096 })).text === ''; waited += 20) await sleep(20);
    expect((await readConsoleLog(log, { tail: 5, maxBytes: 4096 })).text).toBe('first\n');
    await writer;
  });

  it('rotates at the cap: no file over it, offsets go on across files, the oldest bytes are dropped', async () => {
    const cap = 1000;
    const log = await relay('i=1; while [ $i -le 600 ]; do echo line-$i; i=$((i+1)); done', cap, 'line-600');
    const total = lines(1, 600).join('\n').length + 1;
    expect(statSync(log).size).toBeLessThanOrEqual(cap);
    expect(statSync(`${log}.1`).size).toBe(cap);
    const base = Number(readFileSync(`${log}.base`, 'utf8'));
    expect(base + statSync(log).size).toBe(total);

    // from the beginning: what rotation dropped is counted, the rest comes in order
    const first = await readConsoleLog(log, { from: 0, tail: 0, maxBytes: 64 * 1024 });
    expect(first.skipped).toBe(base - cap);
    expect(first.start).toBe(base - cap);
    expect(first.next).toBe(total);
    const text = first.text.slice(first.text.indexOf('\n') + 1); // the first line may be cut by the rotation
    const numbers = text
      .trim()
      .split('\n')
      .map((l) => Number(l.replace('line-', '')));
    expect(numbers.at(-1)).toBe(600);
    expect(numbers).toEqual(numbers.map((_, i) => numbers[0]! + i));

    // a follower reading small chunks gets the same bytes, each chunk whole lines, none twice
    let from = first.start;
    let followed = '';
    for (let i = 0; i < 100 && from < total; i++) {
      const chunk = await readConsoleLog(log, { from, tail: 0, maxBytes: 100 });
      expect(chunk.start).toBe(from);
      expect(chunk.text.endsWith('\n')).toBe(true);
      followed += chunk.text;
      from = chunk.next;
    }
    expect(followed).toBe(first.text);

    const tail = await readConsoleLog(log, { tail: 3, maxBytes: 4096 });
    expect(tail.text).toBe('line-598\nline-599\nline-600\n');
    // a position past the end (the log began again): from the oldest byte kept
    expect((await readConsoleLog(log, { from: total + 5, tail: 0, maxBytes: 64 })).start).toBe(base - cap);
  });

  it('finds the last lines, with or without a final newline', () => {
    const b = (s: string) => Buffer.from(s);
    expect(tailStart(b('a\nb\nc\n'), 2)).toBe(2);
    expect(tailStart(b('a\nb\nc'), 1)).toBe(4);
    expect(tailStart(b('a\nb\n'), 5)).toBe(0);
    expect(tailStart(b('a\nb\n'), 0)).toBe(4);
  });
});
