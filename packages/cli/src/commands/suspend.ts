import type { Command } from 'commander';
import type { JobView, WorkloadAccepted, WorkloadView } from '@ferry/protocol';
import { CliError, EXIT } from '../errors.ts';
import { print, size } from '../output.ts';
import type { Session } from '../session.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const WAIT_MS = 600_000;
const path = (id: string) => `/v1/workloads/${encodeURIComponent(id)}`;

/**
 * Follows a workload job to its end (a failed suspend leaves the workload running and a failed
 * resume leaves it suspended, so the job, not the phase, says how it went); the workload after it.
 */
async function followJob(s: Session, accepted: WorkloadAccepted, timeoutMs = WAIT_MS): Promise<WorkloadView> {
  const { job } = accepted;
  const id = accepted.workload.spec.id;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const j = await s.api.get<JobView>(`/v1/jobs/${encodeURIComponent(job.id)}`);
    const phase = (j.progress as { phase?: string } | null)?.phase ?? j.state;
    if (phase !== last) {
      process.stderr.write(`  ${id}: ${phase}\n`);
      last = phase;
    }
    if (j.state === 'completed') return s.api.get<WorkloadView>(path(id));
    if (j.state === 'failed') throw new CliError(`${job.name} of ${id} failed: ${j.failedReason ?? 'no reason recorded'}`, EXIT.failed);
    if (Date.now() > deadline) throw new CliError(`${job.name} of ${id} is still ${j.state} after ${timeoutMs / 1000} s; look again with 'ferry workloads show ${id}'`, EXIT.failed);
    await sleep(500);
  }
}

const columns = [
  { header: 'workload', value: (w: WorkloadView) => w.spec.id },
  { header: 'phase', value: (w: WorkloadView) => w.phase },
  { header: 'host', value: (w: WorkloadView) => w.hostId ?? '' },
  { header: 'checkpoint', value: (w: WorkloadView) => (w.suspended ? `${w.suspended.pool} on ${w.suspended.hostId}${w.suspended.shared ? ' (shared)' : ''}, ${size(w.suspended.bytes)}` : '') },
];

/** Suspend to disk and resume (like `xl save` / `xl restore`, `vzctl suspend` / `resume`). */
export function suspendCommands(program: Command, session: () => Session): void {
  program
    .command('suspend <workload>')
    .description('checkpoint a running workload (memory and processes) to its pool and stop it; waits until it is suspended')
    .option('--no-wait', 'return once the API accepted it')
    .action(async (workload: string, options: { wait: boolean }) => {
      const s = session();
      const accepted = await s.api.request<WorkloadAccepted>('POST', `${path(workload)}/suspend`, {});
      const w = options.wait ? await followJob(s, accepted) : accepted.workload;
      print(s.format, w, [w], columns);
    });

  program
    .command('resume <workload>')
    .description('restore a suspended workload from its checkpoint, with its memory; waits until it runs')
    .option('--host <host>', 'where (a shared pool only; default: the host it was suspended on, or the best compatible one)')
    .option('--no-wait', 'return once the API accepted it')
    .action(async (workload: string, options: { host?: string; wait: boolean }) => {
      const s = session();
      const accepted = await s.api.request<WorkloadAccepted>('POST', `${path(workload)}/resume`, options.host ? { host: options.host } : {});
      const w = options.wait ? await followJob(s, accepted) : accepted.workload;
      print(s.format, w, [w], columns);
    });
}
