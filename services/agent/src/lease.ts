/**
 * The agent's side of its lease: every capacity report it sends may be acknowledged by a scheduler;
 * an acknowledgement of report `seq` makes the lease valid until that report's *sending* time plus
 * the lease period (this host's monotonic clock). Counting from the sending, not the receipt,
 * keeps the agent's lease strictly shorter than what any scheduler assumes — a scheduler declares
 * the host down only after lease + margin from when it *received* the last report.
 */
export class Lease {
  private readonly sentAt = new Map<number, number>();
  private validUntil: number;

  constructor(
    private readonly now: () => number,
    /** the lease period used until a scheduler says otherwise */
    private leaseMs: number,
    /**
     * What a previous run of the agent was granted (same boot, same clock), or now: a restarted
     * agent gets no lease of its own making — a scheduler may already count this host as down.
     */
    initialValidUntil: number = now(),
  ) {
    this.validUntil = initialValidUntil;
  }

  validUntilMs(): number {
    return this.validUntil;
  }

  /** the lease period: the one the schedulers tell (the storage channel's window is the same) */
  periodMs(): number {
    return this.leaseMs;
  }

  sent(seq: number): void {
    this.sentAt.set(seq, this.now());
    // keep only recent reports: an acknowledgement older than a lease period renews nothing
    if (this.sentAt.size > 256) for (const old of [...this.sentAt.keys()].slice(0, this.sentAt.size - 256)) this.sentAt.delete(old);
  }

  acknowledged(seq: number, leaseMs: number): void {
    const at = this.sentAt.get(seq);
    if (at === undefined) return;
    this.leaseMs = leaseMs;
    this.validUntil = Math.max(this.validUntil, at + leaseMs);
  }

  /** ms the lease has been expired (0 while valid). */
  expiredFor(): number {
    return Math.max(0, this.now() - this.validUntil);
  }

  valid(): boolean {
    return this.now() <= this.validUntil;
  }
}
