interface Entry<In, Out> {
  item: In;
  resolve: (out: Out) => void;
  reject: (err: unknown) => void;
}

/**
 * Requests decided together: every request that arrives while one batch is being decided waits
 * for the next, and a batch is one call of `decide` (the scheduler's placements under the
 * placement lock, the API's HA admission checks — each builds one model of the cluster per batch
 * instead of one per request).
 *
 * `decide` answers every item of its batch, in order, with its own outcome: one item can fail
 * while the others succeed. If `decide` itself throws, every item of that batch fails with it.
 */
export class Batcher<In, Out> {
  private waiting: Array<Entry<In, Out>> = [];
  private running: Promise<void> | null = null;

  constructor(
    private readonly decide: (items: In[]) => Promise<ReadonlyArray<Promise<Out>>>,
    private readonly maxBatch = Number.POSITIVE_INFINITY,
  ) {}

  submit(item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.running ??= this.drain().finally(() => {
        this.running = null;
      });
    });
  }

  private async drain(): Promise<void> {
    // the requests already read from their sockets or queues join the first batch
    await new Promise((resolve) => setImmediate(resolve));
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.maxBatch);
      try {
        const outcomes = await this.decide(batch.map((e) => e.item));
        if (outcomes.length !== batch.length) throw new Error(`a batch of ${batch.length} was answered with ${outcomes.length} outcome(s)`);
        batch.forEach((e, k) => outcomes[k]!.then(e.resolve, e.reject));
      } catch (err) {
        for (const e of batch) e.reject(err);
      }
    }
  }
}
