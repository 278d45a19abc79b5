import { describe, expect, it } from 'vitest';
import { realRedisStore } from './helpers/store.ts';
import type { HostRecord } from '@ferry/protocol';
import { sampleContainer, sampleHostRecord, sampleReport } from './fixtures/capacity.ts';

/**
 * HashRecords.allContaining, against the run's real redis-server: the failover detector asks every
 * second for the down hosts, matched inside Redis, as the scheduler's intake writes host records.
 */
describe('records matched inside Redis (the failover detector’s down hosts)', () => {
  const real = realRedisStore('filter');

  it('returns exactly the records whose JSON holds the text, parsed, and none when none does', async () => {
    const host = (id: string, state: HostRecord['state']) => sampleHostRecord(id, { state, capacity: sampleReport(id, { containers: [sampleContainer(`${id}-w`)] }) });
    // written as the intake writes them (putMany), 200 hosts, every 50th down
    const records = Array.from({ length: 200 }, (_, i) => host(`h${i}`, i % 50 === 7 ? 'down' : i % 3 ? 'up' : 'suspect'));
    await real.store.hosts.putMany(records.map((r) => [r.id, r]));
    const down = await real.store.hosts.allContaining('"state":"down"');
    expect(down.map((h) => h.id).sort()).toEqual(['h107', 'h157', 'h57', 'h7']);
    expect(down.every((h) => h.state === 'down' && h.capacity.containers.length === 1)).toBe(true);
    // a host coming back is no longer found; text in no record finds nothing
    await real.store.hosts.put('h7', host('h7', 'up'));
    expect((await real.store.hosts.allContaining('"state":"down"')).map((h) => h.id).sort()).toEqual(['h107', 'h157', 'h57']);
    expect(await real.store.hosts.allContaining('"state":"nowhere"')).toEqual([]);
  });
});
