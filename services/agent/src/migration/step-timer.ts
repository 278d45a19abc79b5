import type { AgentStepTime } from '@ferry/protocol';

/**
 * Times the consecutive steps of one agent command: `lap(name)` closes the step that ran since the
 * previous lap (or since `start`). What a migration's freeze is made of, step by step.
 */
export class StepTimer {
  private readonly laps: AgentStepTime[] = [];
  private last = performance.now();

  /** Starts (again) from now: what ran before is not a step. */
  start(): void {
    this.last = performance.now();
  }

  lap(step: string): void {
    const now = performance.now();
    this.laps.push({ step, ms: Math.round((now - this.last) * 10) / 10 });
    this.last = now;
  }

  get steps(): AgentStepTime[] {
    return [...this.laps];
  }
}
