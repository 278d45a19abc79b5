import { describe, expect, it } from 'vitest';
import { encodeJson } from '@ferry/runtime';
import { EventHub, kindOf, parseEvent } from './events.ts';
import { createLogger } from '@ferry/runtime';
import { EventsQuery } from './routes/events.ts';

describe('cluster events from NATS', () => {
  it('takes the known events and nothing else', () => {
    const host = { type: 'host.state', hostId: 'h1', from: 'up', to: 'down', at: 1, silentForMs: 7000 };
    expect(parseEvent(encodeJson(host))).toEqual(host);
    expect(kindOf(parseEvent(encodeJson(host))!)).toBe('host');
    expect(parseEvent(new TextEncoder().encode('{not json'))).toBeNull();
    expect(parseEvent(encodeJson({ ...host, type: 'host.exploded' }))).toBeNull();
    expect(parseEvent(encodeJson({ ...host, hostId: '../../etc' }))).toBeNull();
    expect(parseEvent(new Uint8Array(300 * 1024))).toBeNull();
  });

  it('parses the stream filters, refusing unknown kinds', () => {
    expect(EventsQuery.parse({}).kinds).toEqual(['host', 'workload', 'migration', 'failover']);
    expect(EventsQuery.parse({ kinds: 'migration,host' }).kinds).toEqual(['migration', 'host']);
    expect(EventsQuery.safeParse({ kinds: 'migration,secrets' }).success).toBe(false);
    expect(EventsQuery.safeParse({ follow: 'yes' }).success).toBe(false);
  });

  it('ends every open stream when the API stops, and forgets streams that closed', () => {
    const hub = new EventHub(createLogger('test').child({}, { level: 'silent' }));
    const ended: string[] = [];
    const unlistenA = hub.listen(
      () => undefined,
      () => ended.push('a'),
    );
    hub.listen(
      () => undefined,
      () => ended.push('b'),
    );
    expect(hub.clients).toBe(2);
    unlistenA();
    hub.stop();
    expect(ended).toEqual(['b']);
    expect(hub.clients).toBe(0);
  });
});
