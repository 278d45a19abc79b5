import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { repoRoot } from '@ferry/deploy';
import { WorkloadSpec, type ClusterSnapshotDocument } from '@ferry/protocol';
import { sampleHostRecord, sampleWorkloadRecord } from './fixtures/capacity.ts';

const dir = mkdtempSync(join(tmpdir(), 'ferry-cli-'));
const ferry = (args: string[]) => execa(join(repoRoot, 'packages', 'cli', 'bin', 'ferry'), args, { reject: false, cwd: repoRoot });

const spec = (id: string, memoryMiB: number) =>
  WorkloadSpec.parse({ id, template: 'busybox', command: ['/bin/sh'], resources: { vcpus: 1, memoryMiB, diskMiB: 1024 }, networks: [{ network: 'prod', address: '10.77.0.5' }], pool: 'local' });

/** Three hosts, everything on h1. */
function snapshotFile(): string {
  const doc: ClusterSnapshotDocument = {
    version: 1,
    takenAt: 1_700_000_000_000,
    revision: 'abc123',
    hosts: ['h1', 'h2', 'h3'].map((id) => sampleHostRecord(id)),
    workloads: Array.from({ length: 6 }, (_, i) => sampleWorkloadRecord(spec(`w${i}`, 1024 * (i + 1)), 'h1')),
    maintenance: [],
  };
  const file = join(dir, 'snapshot.json');
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

describe('ferry plan (offline, on a snapshot file, no service running)', () => {
  it('plans a rebalance: moves, score before and after, time taken', async () => {
    const run = await ferry(['plan', 'rebalance', '--snapshot', snapshotFile(), '--max-moves', '4', '-o', 'json']);
    expect(run.exitCode, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.moves.length).toBeGreaterThan(0);
    expect(out.moves.length).toBeLessThanOrEqual(4);
    for (const m of out.moves) expect(m).toMatchObject({ workload: expect.stringMatching(/^w\d$/), from: 'h1', to: expect.stringMatching(/^h[23]$/) });
    expect(out.scoreAfter).toBeLessThan(out.scoreBefore);
    expect(out.seconds).toBeGreaterThan(0);
  });

  it('plans an evacuation, or says why not', async () => {
    const run = await ferry(['plan', 'evacuate', 'h1', '--snapshot', snapshotFile(), '-o', 'json']);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(
      JSON.parse(run.stdout)
        .moves.map((m: { workload: string }) => m.workload)
        .sort(),
    ).toEqual(['w0', 'w1', 'w2', 'w3', 'w4', 'w5']);
    const table = await ferry(['plan', 'evacuate', 'h1', '--snapshot', snapshotFile()]);
    expect(table.stdout).toContain('WORKLOAD  FROM  TO');
  });

  it('exits 2 with a message on bad usage or a bad file', async () => {
    const noFile = await ferry(['plan', 'rebalance']);
    expect(noFile.exitCode).toBe(2);
    expect(noFile.stderr).toContain('--snapshot');
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ version: 2 }));
    const badFile = await ferry(['plan', 'rebalance', '--snapshot', bad]);
    expect(badFile.exitCode).toBe(2);
    expect(badFile.stderr).toContain('not a Ferry cluster snapshot');
    const unknownHost = await ferry(['plan', 'evacuate', 'h9', '--snapshot', snapshotFile()]);
    expect(unknownHost).toMatchObject({ exitCode: 2, stderr: expect.stringContaining('no host h9') });
    expect((await ferry(['teleport'])).exitCode).toBe(2);
  });
});
