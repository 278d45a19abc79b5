/**
 * Hysteresis for automatic rebalancing: act only when an imbalance worth at least `threshold` of
 * score has been seen in `rounds` consecutive checks, so a passing spike never moves anything and
 * a cluster right at the edge does not flap.
 */
export class RebalanceTrigger {
  private streak = 0;

  constructor(
    private readonly threshold: number,
    private readonly rounds: number,
  ) {}

  /** Feed one check's achievable gain; true when it is time to act (the streak restarts then). */
  observe(gain: number): boolean {
    this.streak = gain >= this.threshold ? this.streak + 1 : 0;
    if (this.streak < this.rounds) return false;
    this.streak = 0;
    return true;
  }

  get pending(): number {
    return this.streak;
  }
}
