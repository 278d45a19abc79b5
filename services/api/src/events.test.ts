import { describe, expect, it } from 'vitest';
import { encodeJson } from '@ferry/runtime';
import { EventHub, REPLAY_EVENTS, kindOf, parseEvent, type ClusterEvent } from './events.ts';
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

  it('replays the latest events, or what a reconnecting client of this run missed, and keeps a bounded number', () => {
    const hub = new EventHub(createLogger('test').child({}, { level: 'silent' }));
    const event = (n: number): ClusterEvent => ({ type: 'host.state', hostId: `h${n}`, from: 'up', to: 'suspect', at: n, silentForMs: 1 });
    const live: string[] = [];
    hub.listen((e, id) => live.push(`${id} ${(e as { hostId: string }).hostId}`));
    for (let n = 1; n <= 5; n++) hub.publish(event(n));
    expect(live[0]).toBe(`${hub.run}.1 h1`);
    expect(hub.replay({ recent: 0 })).toEqual([]);
    expect(hub.replay({ recent: 2 }).map((e) => e.id)).toEqual([`${hub.run}.4`, `${hub.run}.5`]);
    // a reconnect after event 3 of this run: 4 and 5, whatever `recent` says
    expect(hub.replay({ recent: 0, lastEventId: `${hub.run}.3` }).map((e) => (e.event as { hostId: string }).hostId)).toEqual(['h4', 'h5']);
    // another run's id (the client reconnected to another replica, or this one restarted) or a forged one: the latest `recent` only
    expect(hub.replay({ recent: 1, lastEventId: '0badc0de.3' }).map((e) => e.id)).toEqual([`${hub.run}.5`]);
    expect(hub.replay({ recent: 0, lastEventId: `${hub.run}.3; drop` })).toEqual([]);
    for (let n = 6; n <= REPLAY_EVENTS + 10; n++) hub.publish(event(n));
    const all = hub.replay({ recent: REPLAY_EVENTS });
    expect(all).toHaveLength(REPLAY_EVENTS);
    expect(all[0]!.id).toBe(`${hub.run}.11`);
    // a client too far behind gets what is kept
    expect(hub.replay({ recent: 0, lastEventId: `${hub.run}.2` })).toHaveLength(REPLAY_EVENTS);
  });

  it('refuses a replay count beyond what is kept', () => {
    expect(EventsQuery.parse({}).recent).toBe(0);
    expect(EventsQuery.parse({ recent: '50' }).recent).toBe(50);
    expect(EventsQuery.safeParse({ recent: String(REPLAY_EVENTS + 1) }).success).toBe(false);
    expect(EventsQuery.safeParse({ recent: '-1' }).success).toBe(false);
    expect(EventsQuery.safeParse({ recent: 'many' }).success).toBe(false);
  });
});
