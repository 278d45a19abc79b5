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

type Listener = (event: ClusterEvent) => void;

/**
 * One NATS subscription to `ferry.events.>` for the whole API, fanned out to the clients that
 * stream events. What comes from NATS is parsed like any other boundary input: a message that is
 * not a known event is counted and dropped, never forwarded.
 */
export class EventHub {
  private readonly listeners = new Set<Listener>();
  private readonly stoppers = new Map<Listener, () => void>();
  private subscription: Subscription | undefined;

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
        for (const listener of this.listeners) listener(event);
      },
    });
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
