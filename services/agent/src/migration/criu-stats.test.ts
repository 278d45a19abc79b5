import { describe, expect, it } from 'vitest';
import { parseDumpStats, parseRestoreStats } from './criu-stats.ts';

/** A protobuf varint. */
const varint = (n: number): number[] => {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
};
const field = (num: number, value: number) => [...varint(num << 3), ...varint(value)];
const message = (num: number, body: number[]) => [...varint((num << 3) | 2), ...varint(body.length), ...body];
/** An image as CRIU writes it: service magic, stats magic, one size-prefixed entry. */
const image = (entry: number[]) => {
  const header = Buffer.alloc(12);
  header.writeUInt32LE(0x55105940, 0);
  header.writeUInt32LE(0x57093306, 4);
  header.writeUInt32LE(entry.length, 8);
  return Buffer.concat([header, Buffer.from(entry)]);
};

describe('CRIU stats images', () => {
  it('reads a dump entry: microseconds to milliseconds', () => {
    const dump = [...field(1, 1_234), ...field(2, 123_456), ...field(3, 7_000), ...field(4, 0), ...field(5, 16_384), ...field(7, 10)];
    expect(parseDumpStats(image(message(1, dump)))).toEqual({ freezingMs: 1.2, frozenMs: 123.5, memdumpMs: 7, memwriteMs: 0 });
    expect(parseRestoreStats(image(message(1, dump)))).toBeNull();
  });

  it('reads a restore entry', () => {
    const restore = [...field(1, 0), ...field(2, 0), ...field(3, 40_100), ...field(4, 98_700)];
    expect(parseRestoreStats(image(message(2, restore)))).toEqual({ forkingMs: 40.1, restoreMs: 98.7 });
  });

  it('refuses a truncated image', () => {
    expect(() => parseDumpStats(image(message(1, field(2, 5))).subarray(0, 13))).toThrow(/runs past/);
  });
});
