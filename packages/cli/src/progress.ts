import { MIGRATION_PHASES } from '@ferry/protocol';
import { size } from './output.ts';

/**
 * A migration's progress on stderr: one bar redrawn in place on a terminal, one line per phase
 * change otherwise (logs, pipes, tests).
 */
export class MigrationProgress {
  private last = '';
  private readonly tty = process.stderr.isTTY === true;

  update(phase: string, status: string, bytes?: { sent: number; total: number }): void {
    const index = Math.max(0, (MIGRATION_PHASES as readonly string[]).indexOf(phase));
    const done = index + (status === 'started' || status.startsWith('copying') ? 0.5 : 1);
    const fraction = Math.min(1, done / MIGRATION_PHASES.length);
    const width = 30;
    const filled = Math.round(fraction * width);
    const moved = bytes && (bytes.sent > 0 || bytes.total > 0) ? `  ${size(bytes.sent)}${bytes.total ? ` of ${size(bytes.total)}` : ''}` : '';
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.round(fraction * 100)).padStart(3)}%  ${phase} ${status}${moved}`;
    if (line === this.last) return;
    this.last = line;
    if (this.tty) process.stderr.write(`\r\x1b[2K${line}`);
    else process.stderr.write(`${line}\n`);
  }

  end(): void {
    if (this.tty && this.last) process.stderr.write('\n');
  }
}
