import { randomBytes } from 'node:crypto';
import type { NatsConnection, Subscription } from 'nats';
import { z } from 'zod';
import { FailoverEvent, HostStateEvent, MigrationEvent, MigrationProgressEvent, WorkloadEvent, subjects } from '@ferry/protocol';
import { decodeText, type Logger } from '@ferry/runtime';

/** Every event the API streams, as validated from NATS. */
export const ClusterEvent = z.discriminatedUnion('type', [HostStateEvent, WorkloadEvent, MigrationEvent, MigrationProgressEvent, FailoverEvent]);
export type ClusterEvent = z.infer<typeof ClusterEvent>;

/** The stream a client picks with `?kinds=`: the part of `type` before the dot. */
export const EVENT_KINDS = ['host', 'workload', 'migration', 'failover'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];
export const kindOf = (event: ClusterEvent): EventKind => event.type.split('.')[0] as EventKind;

type Listener = (event: ClusterEvent, id: string) => void;

/** Events an API process keeps for replay (a client that just opened the console, or reconnects). */
export const REPLAY_EVENTS = 1_000;

/**
 * One NATS subscription to `ferry.events.>` for the whole API, fanned out to the clients that
 * stream events. What comes from NATS is parsed like any other boundary input: a message that is
 * not a known event is counted and dropped, never forwarded.
 *
 * The last REPLAY_EVENTS events are kept with an id `<run>.<seq>` (this process's run, then a
 * counter), so a stream can start with the recent ones and a client that reconnects to the same
 * process (SSE `Last-Event-ID`) gets what it missed. Every API replica hears every event, but
 * counts its own: an id from another run replays nothing.
 */
export class EventHub {
  private readonly listeners = new Set<Listener>();
  private readonly stoppers = new Map<Listener, () => void>();
  private subscription: Subscription | undefined;
  private readonly recent: Array<{ seq: number; event: ClusterEvent }> = [];
  private seq = 0;
  /** this process's run: event ids of another run are not this buffer's */
  readonly run = randomBytes(4).toString('hex');

  constructor(
    private readonly log: Logger,
    private readonly onRejected: () => void = () => undefined,
  ) {}

  start(nc: NatsConnection): void {
    this.subscription = nc.subscribe(subjects.allEvents, {
      callback: (err, msg) => {
        if (err) {
          this.log.error({ err }, 'event subscription error');
          return;
        }
        const event = parseEvent(msg.data);
        if (!event) {
          this.onRejected();
          this.log.debug({ subject: msg.subject }, 'dropped a message that is not a known event');
          return;
        }
        this.publish(event);
      },
    });
  }

  /** Keeps `event` for replay and hands it to every listener (what the subscription does with each). */
  publish(event: ClusterEvent): void {
    const seq = ++this.seq;
    this.recent.push({ seq, event });
    if (this.recent.length > REPLAY_EVENTS) this.recent.shift();
    const id = `${this.run}.${seq}`;
    for (const listener of this.listeners) listener(event, id);
  }

  /**
   * Kept events to send before the live ones, oldest first: those after `lastEventId` when it is
   * one of this run's ids, else the last `recent` (0: none).
   */
  replay(options: { recent: number; lastEventId?: string | undefined }): Array<{ id: string; event: ClusterEvent }> {
    const match = options.lastEventId?.match(/^([0-9a-f]{8})\.(\d{1,15})$/);
    const kept = match && match[1] === this.run ? this.recent.filter((e) => e.seq > Number(match[2])) : options.recent > 0 ? this.recent.slice(-options.recent) : [];
    return kept.map((e) => ({ id: `${this.run}.${e.seq}`, event: e.event }));
  }

  /** `onStop` ends the client's stream when the API stops (an open stream would hold the server up). */
  listen(listener: Listener, onStop: () => void = () => undefined): () => void {
    this.listeners.add(listener);
    this.stoppers.set(listener, onStop);
    return () => {
      this.listeners.delete(listener);
      this.stoppers.delete(listener);
    };
  }

  get clients(): number {
    return this.listeners.size;
  }

  stop(): void {
    this.subscription?.unsubscribe();
    for (const stop of this.stoppers.values()) stop();
    this.listeners.clear();
    this.stoppers.clear();
  }
}

/** A NATS message as a known cluster event, or null (too big, not JSON, not an event). */
export function parseEvent(data: Uint8Array): ClusterEvent | null {
  if (data.length > 256 * 1024) return null;
  let json: unknown;
  try {
    json = JSON.parse(decodeText(data));
  } catch {
    return null;
  }
  const parsed = ClusterEvent.safeParse(json);
  return parsed.success ? parsed.data : null;
}
