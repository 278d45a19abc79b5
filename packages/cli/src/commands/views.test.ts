import { describe, expect, it } from 'vitest';
import { WorkloadSpec, type WorkloadView } from '@ferry/protocol';
import { sampleContainer, sampleWorkloadRecord } from '../../../../test/fixtures/capacity.ts';
import { dryRunSummary } from './operate.ts';
import { workloadDetails } from './read.ts';

const spec = WorkloadSpec.parse({ id: 'web-1', template: 'busybox', command: ['/bin/sh'], resources: { vcpus: 0.5, memoryMiB: 256, diskMiB: 64 }, pool: 'shared', ha: { enabled: true, priority: 5 } });
const placement = { hostId: 'h1', reason: '2 of 2 hosts can take it; h1 has the most unallocated memory afterwards (900 MiB left)', refused: {} };

describe('ferry workloads show', () => {
  it('shows where it runs now, its phase, epoch and what its host observes', () => {
    const w: WorkloadView = { ...sampleWorkloadRecord(spec, 'h1'), epoch: 1, placement, observed: sampleContainer('web-1', { pid: 777 }) };
    const text = workloadDetails(w);
    expect(text).toMatch(/^host +h1$/m);
    expect(text).toMatch(/^phase +running \(desired running\)$/m);
    expect(text).toMatch(/^epoch +1$/m);
    expect(text).toMatch(/^observed +running, pid 777, epoch 1, memory 50 MiB of 256 MiB, cpu 2.5%/m);
    expect(text).toMatch(/^placed +2 of 2 hosts .* \(why h1, when it was placed\)$/m);
  });

  it('drops the creation-time placement reason once the workload moved', () => {
    const moved: WorkloadView = { ...sampleWorkloadRecord(spec, 'h2'), epoch: 3, placement, observed: sampleContainer('web-1', { epoch: 3 }) };
    const text = workloadDetails(moved);
    expect(text).toMatch(/^host +h2$/m);
    expect(text).toMatch(/^epoch +3$/m);
    expect(text).not.toContain('h1');
    expect(text).not.toMatch(/^placed/m);
  });

  it('says when the host reports no container', () => {
    const w: WorkloadView = { ...sampleWorkloadRecord(spec, 'h1', 'starting'), observed: null };
    expect(workloadDetails(w)).toMatch(/^observed +not reported by h1$/m);
  });
});

describe('ferry migrate --dry-run', () => {
  it('prints the destination, the strategy and the checks from the API answer', () => {
    const text = dryRunSummary({
      dryRun: true,
      ok: true,
      workloadId: 'web-1',
      source: 'h1',
      destination: 'h2',
      destinationReason: 'requested; h2 passes every check',
      strategy: 'lazy',
      strategyReason: 'userfaultfd on both hosts',
      predicted: { freezeMs: 540, seconds: 2.4, bytes: 64 * 2 ** 20, memoryBytes: 64 * 2 ** 20, basis: '3 measured (lazy h1→h2)' },
    });
    expect(text).toContain('dry run: web-1 could move h1 → h2 (lazy); nothing moved');
    expect(text).toMatch(/destination +h2 \(requested; h2 passes every check\)/);
    expect(text).toMatch(/strategy +lazy \(userfaultfd on both hosts\)/);
    expect(text).toMatch(/checks +passed: .*CRIU on both hosts/);
    expect(text).toMatch(/expect +freeze 540 ms, total 2.4 s, 64(\.0)? MiB to send \(3 measured \(lazy h1→h2\)\)/);
  });
});
