import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { FenceEvent } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import type { ContainerManager } from './containers/manager.ts';
import type { Lease } from './lease.ts';
import { takeGuardEvents } from './guard/state.ts';
import { fencingVerdict, type FencingVerdict } from './fencing-decision.ts';
import type { StorageHeartbeats } from './storage/heartbeats.ts';

const Persisted = z.object({ events: z.array(FenceEvent.extend({ reportedInSeq: z.number().int().nullable() })) });
type Pending = z.infer<typeof Persisted>['events'][number];

/**
 * Self-fencing: when this host may have been declared failed (fencingVerdict: its lease ran out
 * and its storage heartbeat no longer gets through, or it reads a declaration of its failure) it
 * stops (or freezes) its HA-protected containers on shared pools — the ones another host could
 * restart — before any may be restarted elsewhere, and keeps reporting what it did (persisted, so
 * a restart does not forget) until a scheduler acknowledged a report carrying it. A host that only
 * lost the control plane but still writes its heartbeat keeps running: isolated, not failed.
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
    /** the second channel (its heartbeat in the shared pools) */
    private readonly storage: StorageHeartbeats | null = null,
    /** a heartbeat older than this no longer shows the host alive on storage (the lease period the schedulers tell) */
    private readonly storageWindowMs: () => number = () => 5_000,
    /** the pools whose HA containers another host could restart (shared): only those are fenced */
    private readonly fenceablePool: (poolId: string) => boolean = () => true,
  ) {}

  private lastVerdict: FencingVerdict['why'] | null = null;

  verdict(): FencingVerdict {
    return fencingVerdict({
      leaseValid: this.lease.valid(),
      storageChannel: this.storage?.active ?? false,
      storageOk: this.storage?.okWithin(this.storageWindowMs()) ?? false,
      declaredFailed: this.storage?.declaredFailed() ?? false,
    });
  }

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
    const verdict = this.verdict();
    // declared failed, fenced for it, and heard by a scheduler again: back in service — the
    // declaration goes (else the host would fence every HA container placed on it from now on)
    if (verdict.why === 'declared-failed' && this.fenced && this.lease.valid()) {
      await this.storage?.clearOwnDeclaration();
      return;
    }
    if (verdict.why !== this.lastVerdict) {
      if (verdict.why === 'isolated') this.log.warn('lease expired, but the storage heartbeat gets through and no declaration of failure: isolated from the control plane, HA containers keep running');
      else if (verdict.why === 'lease-valid' && this.lastVerdict !== null) this.log.info('lease renewed');
      this.lastVerdict = verdict.why;
    }
    if (!verdict.fence) {
      if (verdict.why === 'lease-valid') {
        this.fenced = false;
        this.storage?.setFenced(false);
        await this.storage?.clearOwnDeclaration();
      }
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
    const victims = (await this.containers.list()).filter((c) => {
      const spec = this.containers.record(c.id)?.spec;
      return c.state === 'running' && spec?.ha.enabled === true && this.fenceablePool(spec.pool);
    });
    for (const c of victims) {
      try {
        if (action === 'freeze') await this.containers.freeze(c.id);
        else await this.containers.stop(c.id, 0, 'fenced');
      } catch (err) {
        this.log.error({ workload: c.id, err: (err as Error).message }, 'fencing a container failed');
      }
    }
    this.storage?.setFenced(true); // its next heartbeat tells the peers: out of the game
    if (victims.length === 0) {
      this.log.warn({ lateMs, why: verdict.why }, 'fencing: no HA container on a shared pool to fence');
      return;
    }
    const event: Pending = { id: randomBytes(6).toString('hex'), at: Date.now(), action, containers: victims.map((c) => c.id), lateMs, by: 'agent', reportedInSeq: null };
    this.pending.push(event);
    this.onFence('agent');
    this.pending = this.pending.slice(-50);
    await this.persist();
    this.log.error({ action, containers: event.containers, lateMs, why: verdict.why }, 'fenced the HA-protected containers');
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
