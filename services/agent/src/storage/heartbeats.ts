import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FailureDeclaration, HeartbeatFile, STORAGE_DIR, type ConfirmFailedResult, type StoragePeer } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import type { PoolConfig } from '../config.ts';

/** A shared pool's heartbeat and declaration directories. */
export const storagePaths = (poolPath: string, hostId: string) => ({
  heartbeats: join(poolPath, STORAGE_DIR, 'heartbeats'),
  own: join(poolPath, STORAGE_DIR, 'heartbeats', hostId),
  beat: join(poolPath, STORAGE_DIR, 'heartbeats', hostId, 'beat.json'),
  declared: join(poolPath, STORAGE_DIR, 'declared'),
  declaration: (of: string) => join(poolPath, STORAGE_DIR, 'declared', `${of}.json`),
});

interface PeerState {
  seq: number;
  bootId: string;
  fenced: boolean;
  /** this host's monotonic time when the peer's heartbeat last changed (or was first seen) */
  changedAt: number;
}

/** Rejects when `work` takes longer than `ms` (a hung NFS write is a failed write); the work itself may go on. */
function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]);
}

/**
 * The storage heartbeat channel (docs/failover.md): this host's heartbeat written into every
 * shared pool it mounts, the other hosts' read there, declarations of failure written and read.
 * Peers are timed on this host's monotonic clock only (a change of their sequence number), never
 * by comparing clocks across hosts.
 */
export class StorageHeartbeats {
  private seq = 0;
  private fenced = false;
  private lastOkAt: number | null = null;
  private beating: Promise<void> | null = null;
  private readonly peers = new Map<string, PeerState>();
  private declared = false;
  private readonly failing = new Set<string>();

  constructor(
    private readonly hostId: string,
    private readonly bootId: string,
    private readonly pools: PoolConfig[],
    private readonly now: () => number,
    private readonly log: Logger,
    private readonly ioTimeoutMs = 2_000,
  ) {}

  /** whether this host has a second channel at all (a shared pool) */
  get active(): boolean {
    return this.pools.length > 0;
  }

  /** Every shared pool took this host's heartbeat within `ms`. */
  okWithin(ms: number): boolean {
    return this.lastOkAt !== null && this.now() - this.lastOkAt <= ms;
  }

  /** when the heartbeat last went out to every shared pool (monotonic), or null */
  lastOk(): number | null {
    return this.lastOkAt;
  }

  /** A declaration of this host's failure lies in one of its pools: it must fence. */
  declaredFailed(): boolean {
    return this.declared;
  }

  setFenced(fenced: boolean): void {
    this.fenced = fenced;
  }

  /** One beat: write everywhere, then read the others. A beat still hanging skips this one. */
  async beat(): Promise<void> {
    if (this.beating) return;
    this.beating = this.doBeat().finally(() => (this.beating = null));
    await this.beating;
  }

  private async doBeat(): Promise<void> {
    this.seq++;
    const body: HeartbeatFile = { hostId: this.hostId, bootId: this.bootId, seq: this.seq, writtenAt: Date.now(), fenced: this.fenced };
    let allOk = true;
    for (const pool of this.pools) {
      const paths = storagePaths(pool.path, this.hostId);
      try {
        await within(
          (async () => {
            await mkdir(paths.own, { recursive: true });
            await writeFile(`${paths.beat}.tmp`, JSON.stringify(body));
            await rename(`${paths.beat}.tmp`, paths.beat);
          })(),
          this.ioTimeoutMs,
          `heartbeat on ${pool.id}`,
        );
        if (this.failing.delete(pool.id)) this.log.info({ pool: pool.id }, 'storage heartbeat written again');
      } catch (err) {
        allOk = false;
        if (!this.failing.has(pool.id)) this.log.error({ pool: pool.id, err: (err as Error).message }, 'storage heartbeat cannot be written');
        this.failing.add(pool.id);
      }
    }
    if (allOk) this.lastOkAt = this.now();
    await this.read().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'reading the storage heartbeats failed'));
  }

  private async read(): Promise<void> {
    let declared = false;
    for (const pool of this.pools) {
      const paths = storagePaths(pool.path, this.hostId);
      await within(
        (async () => {
          for (const other of await readdir(paths.heartbeats).catch(() => [] as string[])) {
            if (other === this.hostId) continue;
            await this.readPeer(pool, other);
          }
          declared ||= await readFile(paths.declaration(this.hostId), 'utf8').then(
            (text) => FailureDeclaration.safeParse(JSON.parse(text)).success,
            () => false,
          );
        })(),
        this.ioTimeoutMs,
        `reading heartbeats on ${pool.id}`,
      );
    }
    if (declared && !this.declared) this.log.error('this host was declared failed (a declaration lies in a shared pool): fencing');
    this.declared = declared;
  }

  private async readPeer(pool: PoolConfig, hostId: string): Promise<PeerState | undefined> {
    const key = `${pool.id}/${hostId}`;
    const known = this.peers.get(key);
    const parsed = await readFile(storagePaths(pool.path, hostId).beat, 'utf8').then(
      (text) => HeartbeatFile.safeParse(JSON.parse(text)),
      () => null,
    );
    if (!parsed?.success || parsed.data.hostId !== hostId) return known; // unreadable: unchanged
    const beat = parsed.data;
    if (!known || known.seq !== beat.seq || known.bootId !== beat.bootId || known.fenced !== beat.fenced) {
      const state = { seq: beat.seq, bootId: beat.bootId, fenced: beat.fenced, changedAt: this.now() };
      this.peers.set(key, state);
      return state;
    }
    return known;
  }

  /** The peers' heartbeats as this host sees them (for its capacity report). */
  peersReport(): StoragePeer[] {
    const now = this.now();
    return [...this.peers.entries()].map(([key, p]) => {
      const [pool, hostId] = key.split('/') as [string, string];
      return { hostId, pool, unchangedForMs: Math.max(0, Math.round(now - p.changedAt)), fenced: p.fenced };
    });
  }

  /**
   * Asked before this host restarts a dead host's workloads from `poolId`: writes the declaration
   * of its failure there (it fences on sight if it is alive and can read), then confirms only when
   * it says it fenced or its heartbeat has not changed for `staleAfterMs`.
   */
  async confirmFailed(hostId: string, poolId: string, staleAfterMs: number): Promise<ConfirmFailedResult> {
    const pool = this.pools.find((p) => p.id === poolId);
    if (!pool) return { confirmed: false, reason: 'not-shared', unchangedForMs: null };
    const paths = storagePaths(pool.path, hostId);
    const declaration: FailureDeclaration = { hostId, declaredAt: Date.now(), by: this.hostId };
    await within(
      (async () => {
        await mkdir(paths.declared, { recursive: true });
        await writeFile(`${paths.declaration(hostId)}.${this.hostId}.tmp`, JSON.stringify(declaration));
        await rename(`${paths.declaration(hostId)}.${this.hostId}.tmp`, paths.declaration(hostId));
      })(),
      this.ioTimeoutMs,
      `declaring ${hostId} failed on ${poolId}`,
    );
    const peer = await this.readPeer(pool, hostId);
    if (!peer) {
      // never seen writing here: a lower bound from when this host started watching is not known;
      // with no heartbeat file at all, the host never was alive on this pool
      return { confirmed: true, reason: 'stale', unchangedForMs: null };
    }
    const unchangedForMs = Math.max(0, Math.round(this.now() - peer.changedAt));
    if (peer.fenced) return { confirmed: true, reason: 'fenced', unchangedForMs };
    if (unchangedForMs >= staleAfterMs) return { confirmed: true, reason: 'stale', unchangedForMs };
    return { confirmed: false, reason: 'alive', unchangedForMs };
  }

  /** The cluster hears this host again: declarations of its failure are void. */
  async clearOwnDeclaration(): Promise<void> {
    if (!this.declared) return;
    for (const pool of this.pools) await rm(storagePaths(pool.path, this.hostId).declaration(this.hostId), { force: true }).catch(() => undefined);
    this.declared = false;
    this.log.warn('the cluster hears this host again: declarations of its failure removed');
  }
}
