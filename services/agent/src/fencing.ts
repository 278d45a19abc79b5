import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { FenceEvent } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import type { ContainerManager } from './containers/manager.ts';
import type { Lease } from './lease.ts';
import { takeGuardEvents } from './guard/state.ts';

const Persisted = z.object({ events: z.array(FenceEvent.extend({ reportedInSeq: z.number().int().nullable() })) });
type Pending = z.infer<typeof Persisted>['events'][number];

/**
 * Self-fencing: when this host's lease runs out it stops (or freezes) its HA-protected
 * containers before any scheduler may restart them elsewhere, and keeps reporting what it did
 * (persisted, so a restart does not forget) until a scheduler acknowledged a report carrying it.
 */
export class Fencer {
  private pending: Pending[] = [];
  private fenced = false;

  constructor(
    private readonly containers: ContainerManager,
    private readonly lease: Lease,
    private readonly action: 'stop' | 'freeze' | 'none',
    private readonly file: string,
    private readonly log: Logger,
    /** told of every fencing, by who acted (metrics) */
    private readonly onFence: (by: 'agent' | 'guard') => void = () => undefined,
  ) {}

  async load(): Promise<void> {
    try {
      this.pending = Persisted.parse(JSON.parse(await readFile(this.file, 'utf8'))).events;
    } catch {
      this.pending = [];
    }
  }

  private async persist(): Promise<void> {
    await writeFile(`${this.file}.tmp`, JSON.stringify({ events: this.pending }));
    await rename(`${this.file}.tmp`, this.file);
  }

  /** Called often (every few hundred ms): fences once per lapse of the lease. */
  async check(): Promise<void> {
    if (this.lease.valid()) {
      if (this.fenced) this.log.info('lease renewed');
      this.fenced = false;
      return;
    }
    if (this.fenced) return;
    this.fenced = true;
    const lateMs = this.lease.expiredFor();
    if (this.action === 'none') {
      this.log.warn({ lateMs }, 'lease expired; fence action none: HA containers keep running');
      return;
    }
    const action = this.action;
    const victims = (await this.containers.list()).filter((c) => c.state === 'running' && this.containers.record(c.id)?.spec.ha.enabled);
    for (const c of victims) {
      try {
        if (action === 'freeze') await this.containers.freeze(c.id);
        else await this.containers.stop(c.id, 0, 'fenced');
      } catch (err) {
        this.log.error({ workload: c.id, err: (err as Error).message }, 'fencing a container failed');
      }
    }
    if (victims.length === 0) {
      this.log.warn({ lateMs }, 'lease expired: no HA container to fence');
      return;
    }
    const event: Pending = { id: randomBytes(6).toString('hex'), at: Date.now(), action, containers: victims.map((c) => c.id), lateMs, by: 'agent', reportedInSeq: null };
    this.pending.push(event);
    this.onFence('agent');
    this.pending = this.pending.slice(-50);
    await this.persist();
    this.log.error({ action, containers: event.containers, lateMs }, 'lease expired: fenced the HA-protected containers');
  }

  /** Takes over what the fence guard did while no agent ran, to report it like our own. */
  async importGuardEvents(dataDir: string): Promise<void> {
    const events = await takeGuardEvents(dataDir);
    if (events.length === 0) return;
    for (const e of events) {
      await this.containers.markFenced(e.action === 'stop' ? e.containers : []);
      this.pending.push({ ...e, by: 'guard', reportedInSeq: null });
      this.onFence('guard');
      this.log.error({ action: e.action, containers: e.containers, at: e.at }, 'the fence guard fenced containers while the agent was away');
    }
    this.pending = this.pending.slice(-50);
    await this.persist();
  }

  /** The events to put in report `seq` (remembering where they first went). */
  forReport(seq: number): z.infer<typeof FenceEvent>[] {
    for (const e of this.pending) e.reportedInSeq ??= seq;
    return this.pending.map(({ reportedInSeq: _seen, ...event }) => event);
  }

  /** A scheduler acknowledged report `seq`: the events it carried were seen. */
  async acknowledged(seq: number): Promise<void> {
    const before = this.pending.length;
    this.pending = this.pending.filter((e) => e.reportedInSeq === null || e.reportedInSeq > seq);
    if (this.pending.length !== before) await this.persist();
  }
}
