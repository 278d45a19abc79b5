/**
 * What one placement decision costs the scheduler, apart from I/O: `node --import tsx
 * bench/placement-cost.ts [HOSTS] [WORKLOADS]` (default 1,000 hosts, 5,000 workloads, as the scale
 * benchmark's 1,000-host form). A batch is a model of the cluster built once (`new Placer`) and one
 * decision per workload; HA admission control on, storage groups of 20 hosts sharing a pool.
 * Prints, per batch size, the model's build and each decision in CPU time (p50 / p99 over runs);
 * the decisions include HA admission's state of the cluster, worked out at the batch's first.
 */
import { WorkloadSpec, type HostRecord, type WorkloadRecord } from '@ferry/protocol';
import { DEFAULT_PLACEMENT_POLICY, Placer, type ClusterSnapshot } from '@ferry/core';
import { sampleHostRecord, sampleReport, sampleWorkloadRecord } from '../test/fixtures/capacity.ts';

const HOSTS = Number(process.argv[2] ?? 1000);
const WORKLOADS = Number(process.argv[3] ?? 5000);
const GROUP = 20;
const GiB = 2 ** 30;
const RUNS = 15;

const token = (id: string) => id.padEnd(16, 't');
const ids = Array.from({ length: HOSTS }, (_, i) => `h${String(i).padStart(5, '0')}`);
const hosts: HostRecord[] = ids.map((id, i) => {
  const group = ids.slice(Math.floor(i / GROUP) * GROUP, Math.floor(i / GROUP) * GROUP + GROUP);
  return sampleHostRecord(id, {
    capacity: sampleReport(id, {
      memory: { totalBytes: 256 * GiB, availableBytes: 200 * GiB },
      cpu: { vendor: 'AuthenticAMD', family: 26, model: 2, modelName: 'AMD EPYC', flags: Array.from({ length: 100 }, (_, f) => `flag${f}`), count: 64 },
      pools: [
        { id: 'local', path: '/var/lib/ferry/pools/local', shared: false, totalBytes: 2 ** 42, freeBytes: 2 ** 41 },
        {
          id: `shared-${Math.floor(i / GROUP)}`,
          path: '/mnt/shared',
          shared: true,
          totalBytes: 2 ** 44,
          freeBytes: 2 ** 43,
          probe: { token: token(id), sees: group.map((o) => ({ hostId: o, token: token(o) })) },
        },
      ],
    }),
  });
});
const spec = (id: string, host: number | null) =>
  WorkloadSpec.parse({
    id,
    template: 'busybox',
    command: ['/bin/sh'],
    resources: { vcpus: 1, memoryMiB: 2048, diskMiB: 1024 },
    networks: [],
    pool: host === null ? 'local' : `shared-${Math.floor(host / GROUP)}`,
    ha: { enabled: true, priority: 1 },
  });
const workloads: WorkloadRecord[] = Array.from({ length: WORKLOADS }, (_, k) => sampleWorkloadRecord(spec(`w${k}`, k % HOSTS), ids[k % HOSTS]!));
/**
 * Each batch sees the cluster as the scheduler's live host table gives it: a new list of new host
 * records (a report a second each), with each pool's probe kept while unchanged (keepUnchanged).
 */
const freshSnapshot = (newProbes: boolean): ClusterSnapshot => ({
  hosts: hosts.map((h) => ({ ...h, capacity: { ...h.capacity, pools: h.capacity.pools.map((p) => ({ ...p, ...(newProbes && p.probe ? { probe: { ...p.probe } } : {}) })) } })),
  workloads: [...workloads],
});
const policy = { ...DEFAULT_PLACEMENT_POLICY, haAdmission: true };

const cpuMs = (f: () => void): number => {
  const start = process.cpuUsage();
  f();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
};
const pct = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.ceil((p / 100) * values.length) - 1)]!;

console.log(`placement cost: ${HOSTS} hosts, ${WORKLOADS} workloads, HA admission on; CPU ms, p50 / p99 over ${RUNS} runs`);
console.log('| batch | pool probes | model (new Placer) | decisions, each | per placement, all in |');
console.log('|---:|---|---:|---:|---:|');
for (const size of [1, 32, 256]) {
  for (const newProbes of [true, false]) {
    const build: number[] = [];
    const each: number[] = [];
    const all: number[] = [];
    for (let run = 0; run < RUNS + 2; run++) {
      const specs = Array.from({ length: size }, (_, k) => spec(`n${run}-${k}`, null));
      let placer!: Placer;
      const snapshot = freshSnapshot(newProbes);
      const b = cpuMs(() => (placer = new Placer(snapshot, policy, specs)));
      const d = cpuMs(() => {
        for (let k = 0; k < size; k++) placer.place(k);
      });
      if (run < 2) continue; // warm-up
      build.push(b);
      each.push(d / size);
      all.push((b + d) / size);
    }
    const probes = newProbes ? 'new objects each batch' : 'kept while unchanged';
    console.log(
      `| ${size} | ${probes} | ${pct(build, 50).toFixed(2)} / ${pct(build, 99).toFixed(2)} | ${pct(each, 50).toFixed(3)} / ${pct(each, 99).toFixed(3)} | ${pct(all, 50).toFixed(3)} / ${pct(all, 99).toFixed(3)} |`,
    );
  }
}
