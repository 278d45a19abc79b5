/**
 * At most `perHost` container commands (create, start, stop, destroy) in flight to one host from
 * this scheduler replica; the others wait their turn, in order. The workload queue runs many jobs
 * at once across the cluster (FERRY_WORKLOAD_CONCURRENCY), but one agent should not be asked to
 * copy a hundred root filesystems at the same moment.
 */
export class HostSlots {
  private readonly busy = new Map<string, number>();
  private readonly waiting = new Map<string, Array<() => void>>();

  constructor(private readonly perHost: number) {
    if (!Number.isInteger(perHost) || perHost < 1) throw new Error(`perHost must be a positive integer, got ${perHost}`);
  }

  async run<T>(hostId: string, call: () => Promise<T>): Promise<T> {
    await this.take(hostId);
    try {
      return await call();
    } finally {
      this.give(hostId);
    }
  }

  /** commands in flight to `hostId` now (tests, metrics) */
  inFlight(hostId: string): number {
    return this.busy.get(hostId) ?? 0;
  }

  private take(hostId: string): Promise<void> {
    const busy = this.busy.get(hostId) ?? 0;
    if (busy < this.perHost) {
      this.busy.set(hostId, busy + 1);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const queue = this.waiting.get(hostId) ?? [];
      queue.push(resolve);
      this.waiting.set(hostId, queue);
    });
  }

  private give(hostId: string): void {
    const queue = this.waiting.get(hostId);
    const next = queue?.shift();
    if (next) {
      if (queue!.length === 0) this.waiting.delete(hostId);
      next(); // the slot passes straight to the next in line
      return;
    }
    const busy = (this.busy.get(hostId) ?? 1) - 1;
    if (busy === 0) this.busy.delete(hostId);
    else this.busy.set(hostId, busy);
  }
}
