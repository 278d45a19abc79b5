import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rearmCheckpointTimerfds, rearmExpiredTimerfds } from './timerfd-images.ts';

// A minimal protobuf writer for the test's images (varints and length-delimited fields only).
const varint = (value: number | bigint): number[] => {
  let v = BigInt(value);
  const out: number[] = [];
  do {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? byte | 0x80 : byte);
  } while (v > 0n);
  return out;
};
const uint = (field: number, value: number | bigint) => [...varint(field << 3), ...varint(value)];
const message = (field: number, bytes: number[]) => [...varint((field << 3) | 2), ...varint(bytes.length), ...bytes];

interface Timer {
  ticks: number;
  value: [number, number];
  interval: [number, number];
}
const timerfdEntry = (t: Timer) => [
  ...uint(1, 8), // id
  ...uint(2, 0x80002), // flags
  ...message(3, [...uint(1, 0), ...uint(2, 0), ...uint(3, 0), ...uint(4, 0)]), // fown
  ...uint(4, 1), // CLOCK_MONOTONIC
  ...uint(5, t.ticks),
  ...uint(6, 0),
  ...uint(7, t.value[0]),
  ...uint(8, t.value[1]),
  ...uint(9, t.interval[0]),
  ...uint(10, t.interval[1]),
];
const fileEntry = (type: number, id: number, body: number[]) => [...uint(1, type), ...uint(2, id), ...body];
const regFile = fileEntry(1, 3, message(3, [...uint(1, 3), ...uint(2, 0o100000), ...uint(3, 0), ...message(5, [...Buffer.from('/var/log/ticks.log')])]));
const timerfd = (id: number, t: Timer) => fileEntry(17, id, message(12, timerfdEntry(t)));

function image(entries: number[][]): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32LE(0x54564319, 0);
  header.writeUInt32LE(0x56303138, 4);
  const parts = entries.map((e) => {
    const size = Buffer.alloc(4);
    size.writeUInt32LE(e.length, 0);
    return Buffer.concat([size, Buffer.from(e)]);
  });
  return Buffer.concat([header, ...parts]);
}

const EXPIRED: Timer = { ticks: 1, value: [0, 0], interval: [0, 10_000_000] };

describe('re-arming expired periodic timerfds in a checkpoint', () => {
  it('gives an expired periodic timer a 1 ns it_value and touches nothing else', () => {
    const before = image([regFile, timerfd(8, EXPIRED)]);
    const after = Buffer.from(before);
    expect(rearmExpiredTimerfds(after)).toBe(1);
    expect(after).toEqual(image([regFile, timerfd(8, { ...EXPIRED, value: [0, 1] })]));
  });

  it('leaves armed, one-shot and self-disarmed timers alone', () => {
    const armed = timerfd(8, { ticks: 0, value: [0, 7_463_269], interval: [0, 10_000_000] });
    const oneShotFired = timerfd(9, { ticks: 1, value: [0, 0], interval: [0, 0] });
    const disarmedByWorkload = timerfd(10, { ticks: 0, value: [0, 0], interval: [5, 0] });
    const buf = image([armed, oneShotFired, disarmedByWorkload, regFile]);
    const copy = Buffer.from(buf);
    expect(rearmExpiredTimerfds(copy)).toBe(0);
    expect(copy).toEqual(buf);
  });

  it('re-arms every expired timer, also with a whole-second interval, and is idempotent', () => {
    const buf = image([timerfd(8, EXPIRED), regFile, timerfd(9, { ticks: 3, value: [0, 0], interval: [2, 0] })]);
    expect(rearmExpiredTimerfds(buf)).toBe(2);
    expect(rearmExpiredTimerfds(buf)).toBe(0);
  });

  it('refuses an image it cannot read instead of guessing', () => {
    const good = image([timerfd(8, EXPIRED)]);
    expect(() => rearmExpiredTimerfds(good.subarray(0, good.length - 3))).toThrow(/runs past/);
    expect(() => rearmExpiredTimerfds(Buffer.from([1, 2]))).toThrow(/too short/);
  });

  it('rewrites files.img in a checkpoint directory, and accepts one without it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-timerfd-'));
    expect(await rearmCheckpointTimerfds(dir)).toBe(0);
    writeFileSync(join(dir, 'files.img'), image([timerfd(8, EXPIRED)]));
    expect(await rearmCheckpointTimerfds(dir)).toBe(1);
    expect(readFileSync(join(dir, 'files.img'))).toEqual(image([timerfd(8, { ...EXPIRED, value: [0, 1] })]));
  });
});
