import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { previousRedisPrimary } from './infra.ts';

describe('a replicated Redis started again', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-sentinel-layout-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const layout = join(dir, 'layout.json');
  const sentinel = (i: number, port: number) => {
    const file = join(dir, `sentinel-${i}.conf`);
    writeFileSync(file, `port 2639${i}\nsentinel monitor ferry 127.0.0.1 ${port} 2\nsentinel known-replica ferry 127.0.0.1 4001\n`);
    return file;
  };

  it('starts the server the Sentinels last named primary as the primary again', () => {
    expect(previousRedisPrimary(layout, [], 'ferry')).toBeNull(); // first start
    writeFileSync(layout, JSON.stringify({ ports: { 'redis-1': 4001, 'redis-2': 4002 } }));
    // after a failover to redis-2 (one Sentinel had not rewritten its file yet: the majority wins)
    expect(previousRedisPrimary(layout, [sentinel(1, 4002), sentinel(2, 4002), sentinel(3, 4001)], 'ferry')).toBe('redis-2');
    expect(previousRedisPrimary(layout, [sentinel(1, 4001)], 'ferry')).toBe('redis-1');
    expect(previousRedisPrimary(layout, [sentinel(1, 4009)], 'ferry')).toBeNull(); // a port of no known server
    expect(previousRedisPrimary(layout, [sentinel(1, 4002)], 'other')).toBeNull();
  });
});
