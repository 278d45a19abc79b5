import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A container's console log: what its processes write to stdout and stderr, in its workload's
 * directory on its pool (`<pool>/containers/<id>/log/`), so that it moves with the workload (the
 * migration's final copy, made while the workload is frozen, carries the whole directory; a
 * shared pool holds it for every host) and goes with it when it is deleted.
 *
 * Files: `console.log` (being written), `console.log.1` (the one before, when rotated), and
 * `console.log.base`, the offset since the log began of `console.log`'s first byte (absent: 0).
 * At most CAP bytes per file, so a chatty container holds at most 2 × CAP of its pool.
 */
export const CONSOLE_LOG_CAP_BYTES = 8 * 1024 * 1024;

export const consoleLogDir = (containerDir: string): string => join(containerDir, 'log');
export const consoleLogFile = (containerDir: string): string => join(consoleLogDir(containerDir), 'console.log');

/**
 * The relay between a container's stdio pipe and its log (bash; every input is an argument,
 * never part of the script): `ferry-relay LOG CAP COMMAND…` runs COMMAND with stdout and stderr
 * into a pipe read by a loop that outlives it (and the agent). Each round copies at most the
 * room left in the file (`head -c` reads no more than it writes, so nothing is lost between
 * rounds; `stdbuf -o0`: it writes what it read at once, not a 4 KiB stdio buffer at its exit, which
 * held a quiet container's lines back for good — found by the lab test), then rotates: the full file becomes `.1` (the previous `.1` goes) and the base moves
 * on by its size — base written after the rename, so a reader that sees them disagree retries.
 * A round that ends short of the cap means every writer closed the pipe: the loop ends.
 */
export const RELAY_SCRIPT = [
  'log=$1; cap=$2; shift 2',
  'mkdir -p -- "${log%/*}"',
  'relay() {',
  '  local size base',
  '  while :; do',
  '    size=$(stat -c %s -- "$log" 2>/dev/null) || size=0',
  '    if [ "$size" -ge "$cap" ]; then',
  '      base=$(cat -- "$log.base" 2>/dev/null) || base=0',
  '      mv -f -- "$log" "$log.1"',
  '      printf "%s\\n" $((${base:-0} + size)) >"$log.base.tmp" && mv -f -- "$log.base.tmp" "$log.base"',
  '      size=0',
  '    fi',
  '    stdbuf -o0 head -c $((cap - size)) >>"$log" 2>/dev/null',
  '    size=$(stat -c %s -- "$log" 2>/dev/null) || size=0',
  '    [ "$size" -ge "$cap" ] || return 0',
  '  done',
  '}',
  'exec "$@" </dev/null > >(relay) 2>&1',
].join('\n');

/** `bash` arguments that run `command` with its output relayed into `log` (capped at `capBytes` a file). */
export function relayArgv(log: string, command: string[], capBytes = CONSOLE_LOG_CAP_BYTES): string[] {
  return ['-c', RELAY_SCRIPT, 'ferry-relay', log, String(capBytes), ...command];
}

export interface LogRead {
  /** offset of text's first byte since the log began */
  start: number;
  /** offset after its last byte */
  next: number;
  text: string;
  /** bytes asked for (from `from`) that rotation had dropped already */
  skipped: number;
}

async function readBase(log: string): Promise<number> {
  const text = await readFile(`${log}.base`, 'utf8').catch(() => '0');
  const n = Number(text.trim());
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

const sizeOf = async (path: string): Promise<number> => (await stat(path).catch(() => null))?.size ?? 0;

/** Up to `length` bytes of a file from `offset` (fewer at its end; none when it does not exist). */
async function readRange(path: string, offset: number, length: number): Promise<Buffer> {
  if (length <= 0) return Buffer.alloc(0);
  const handle = await open(path, 'r').catch(() => null);
  if (!handle) return Buffer.alloc(0);
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Cuts a chunk that stopped at the size limit back to its last complete line (never a split character). */
function wholeLines(bytes: Buffer, cutShort: boolean): Buffer {
  if (!cutShort) return bytes;
  const end = bytes.lastIndexOf(0x0a);
  return end >= 0 ? bytes.subarray(0, end + 1) : bytes;
}

/** Where the last `lines` lines of `bytes` begin (a last line without a newline counts). */
export function tailStart(bytes: Buffer, lines: number): number {
  if (lines <= 0) return bytes.length;
  let pos = bytes.length > 0 && bytes[bytes.length - 1] === 0x0a ? bytes.length - 1 : bytes.length;
  for (let found = 0; found < lines; found++) {
    const nl = pos > 0 ? bytes.lastIndexOf(0x0a, pos - 1) : -1;
    if (nl < 0) return 0;
    pos = nl;
  }
  return pos + 1;
}

/**
 * Reads a console log: from offset `from` on (at most `maxBytes`), or without `from` its last
 * `tail` lines (within its last `maxBytes`). Offsets count from the log's beginning, across
 * rotations and hosts: a follower passes each answer's `next` as the next `from`. The relay
 * renames and then rewrites the base: a base that changed during the read means a rotation
 * happened in between, and the read starts again.
 */
export async function readConsoleLog(log: string, options: { from?: number | undefined; tail: number; maxBytes: number }): Promise<LogRead> {
  for (let attempt = 0; ; attempt++) {
    const base = await readBase(log);
    const [currentSize, previousSize] = await Promise.all([sizeOf(log), sizeOf(`${log}.1`)]);
    const end = base + currentSize;
    const previousStart = base - previousSize;
    /** bytes [at, at + length) of the log, across the two files */
    const range = async (at: number, length: number): Promise<Buffer> => {
      const fromPrevious = at < base ? await readRange(`${log}.1`, at - previousStart, Math.min(length, base - at)) : Buffer.alloc(0);
      const rest = length - fromPrevious.length;
      const fromCurrent = at + fromPrevious.length >= base ? await readRange(log, at + fromPrevious.length - base, rest) : Buffer.alloc(0);
      return Buffer.concat([fromPrevious, fromCurrent]);
    };
    let read: LogRead;
    if (options.from === undefined) {
      const at = Math.max(previousStart, end - options.maxBytes);
      const recent = await range(at, end - at);
      const cut = tailStart(recent, options.tail);
      read = { start: at + cut, next: at + recent.length, text: recent.subarray(cut).toString('utf8'), skipped: 0 };
    } else {
      // past the end: the log began again (the workload was created anew): from its beginning
      const from = options.from > end ? previousStart : options.from;
      const at = Math.max(from, previousStart);
      const available = await range(at, Math.min(end - at, options.maxBytes + 1));
      const chunk = wholeLines(available.subarray(0, options.maxBytes), available.length > options.maxBytes);
      read = { start: at, next: at + chunk.length, text: chunk.toString('utf8'), skipped: at - from };
    }
    if ((await readBase(log)) === base || attempt >= 5) return read;
  }
}
