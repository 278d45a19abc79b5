import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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

  it('plans a partial evacuation: the others move, the pinned one is listed with why', async () => {
    const doc = JSON.parse(readFileSync(snapshotFile(), 'utf8')) as ClusterSnapshotDocument;
    doc.workloads.push(sampleWorkloadRecord(WorkloadSpec.parse({ ...spec('pinned', 512), placement: { hosts: ['h1'] } }), 'h1'));
    const file = join(dir, 'pinned.json');
    writeFileSync(file, JSON.stringify(doc));
    const all = await ferry(['plan', 'evacuate', 'h1', '--snapshot', file, '-o', 'json']);
    expect(all.exitCode).toBe(1);
    expect(JSON.parse(all.stdout)).toMatchObject({ ok: false, moves: [], unplaced: [{ workload: 'pinned', refused: { NOT_ALLOWED: 2 } }] });
    const partial = await ferry(['plan', 'evacuate', 'h1', '--partial', '--snapshot', file, '-o', 'json']);
    expect(partial.exitCode, partial.stderr).toBe(0);
    const out = JSON.parse(partial.stdout);
    expect(out.moves).toHaveLength(6);
    expect(out.moves.every((m: { stage: number }) => m.stage === 1)).toBe(true);
    expect(out.unplaced).toEqual([{ workload: 'pinned', refused: { NOT_ALLOWED: 2 }, reason: expect.stringContaining('not among the hosts the workload may run on') }]);
    const table = await ferry(['plan', 'evacuate', 'h1', '--partial', '--snapshot', file]);
    expect(table.stdout).toMatch(/^pinned: nowhere to go \(refused by all 2 hosts/m);
  });

  it("refuses the API's limits locally: --max-moves above its cap, a bad --min-gain (exit 2, nothing asked)", async () => {
    const { RebalanceRequest } = await import('@ferry/protocol');
    const cap = RebalanceRequest.shape.maxMoves.unwrap().maxValue!;
    for (const args of [
      ['plan', 'rebalance', '--snapshot', snapshotFile()],
      // online: an API that is not there — the flag is refused before it is asked (else exit 3)
      ['rebalance', '--url', 'http://127.0.0.1:9', '--token', 'x'],
    ]) {
      const over = await ferry([...args, '--max-moves', String(cap * 10)]);
      expect(over.exitCode, over.stderr).toBe(2);
      expect(over.stderr).toContain(`--max-moves must be at most ${cap} (the API's limit), not ${cap * 10}`);
      const gain = await ferry([...args, '--min-gain', '-1']);
      expect(gain.exitCode, gain.stderr).toBe(2);
      expect(gain.stderr).toContain('--min-gain must be');
    }
    const ok = await ferry(['plan', 'rebalance', '--snapshot', snapshotFile(), '--max-moves', String(cap), '--min-gain', '0.001', '-o', 'json']);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).moves.length).toBeGreaterThan(0);
  });

  it('prints the score components, weighed as asked; a term the score lacks is refused (exit 2)', async () => {
    const table = await ferry(['plan', 'rebalance', '--snapshot', snapshotFile()]);
    expect(table.exitCode, table.stderr).toBe(0);
    expect(table.stdout).toContain('score components (weighted; they add up to the score):');
    expect(table.stdout).toMatch(/\n {2}mem +\d+\.\d{4} → \d+\.\d{4}/);
    const plain = JSON.parse((await ferry(['plan', 'rebalance', '--snapshot', snapshotFile(), '-o', 'json'])).stdout);
    const weighed = await ferry(['plan', 'rebalance', '--snapshot', snapshotFile(), '--weights', 'cpu=0,instances=1', '--move-cost', '0', '-o', 'json']);
    expect(weighed.exitCode, weighed.stderr).toBe(0);
    const out = JSON.parse(weighed.stdout);
    expect(plain.components.before.cpu).toBeGreaterThan(0);
    expect(plain.components.before.instances).toBe(0); // off by default
    expect(out.components.before.cpu).toBe(0);
    expect(out.components.before.instances).toBeGreaterThan(0);
    const sum = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);
    expect(sum(out.components.after)).toBeCloseTo(out.scoreAfter, 9);
    const bad = await ferry(['plan', 'rebalance', '--snapshot', snapshotFile(), '--weights', 'ram=1']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('--weights has no term ram');
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
