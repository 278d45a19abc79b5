import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nkeys } from 'nats';
import { readSeed } from './nats.ts';

describe('reading an NKey seed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-seed-'));
  const seed = new TextDecoder().decode(nkeys.createUser().getSeed());

  it('reads a private seed file', () => {
    const file = join(dir, 'ok.nk');
    writeFileSync(file, `${seed}\n`, { mode: 0o600 });
    expect(new TextDecoder().decode(readSeed(file))).toBe(seed);
  });

  it('refuses one that other users can read, and one that holds no user seed', () => {
    const open = join(dir, 'open.nk');
    writeFileSync(open, seed);
    chmodSync(open, 0o644);
    expect(() => readSeed(open)).toThrow(/readable by others/);
    const junk = join(dir, 'junk.nk');
    writeFileSync(junk, 'hunter2', { mode: 0o600 });
    expect(() => readSeed(junk)).toThrow(/no NKey user seed/);
  });
});
