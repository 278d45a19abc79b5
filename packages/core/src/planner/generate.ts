import type { PlanCluster, PlanHost, PlanPool, PlanWorkload } from './model.ts';

/** mulberry32: a small, fast, seeded PRNG, so generated clusters are the same every run. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface GenerateOptions {
  hosts: number;
  /** containers per host, uniformly in this range (before the skew below) */
  perHost: [number, number];
  /** fraction of hosts packed to ~90 % memory */
  overloaded: number;
  /** fraction of hosts left nearly empty */
  empty: number;
  /** fraction of hosts with an older CPU (fewer flags) */
  olderCpu: number;
  seed: number;
  /**
   * exactly this many workloads in all: the nearly empty hosts keep their 0–4 and the others share
   * the rest evenly (the benchmark's "20 per host": 20,000 at 1,000 hosts). Unset: `perHost` decides.
   */
  workloads?: number;
}

type HostKind = 'overloaded' | 'empty' | 'normal';

/** Each host's kind and workload count when the total is given (its own PRNG: `perHost` clusters stay as they were). */
function presetCounts(o: GenerateOptions, total: number): Array<{ kind: HostKind; count: number }> {
  const rnd = random(o.seed ^ 0x5bd1e995);
  const kinds = Array.from({ length: o.hosts }, (): HostKind => {
    const roll = rnd();
    return roll < o.overloaded ? 'overloaded' : roll < o.overloaded + o.empty ? 'empty' : 'normal';
  });
  const counts = kinds.map((kind) => (kind === 'empty' ? Math.floor(rnd() * 5) : 0));
  const others = kinds.filter((k) => k !== 'empty').length;
  const rest = Math.max(0, total - counts.reduce((a, b) => a + b, 0));
  let seen = 0;
  return kinds.map((kind, i) => {
    if (kind === 'empty') return { kind, count: counts[i]! };
    const count = Math.floor(rest / others) + (seen < rest % others ? 1 : 0);
    seen++;
    return { kind, count };
  });
}

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const NEW_FLAGS = ['fpu', 'sse2', 'sse4_2', 'avx', 'avx2', 'avx512f', 'aes', 'sha_ni'];
const OLD_FLAGS = ['fpu', 'sse2', 'sse4_2', 'avx', 'avx2', 'aes'];

/**
 * A realistic cluster for tests and benchmarks: 128–512 GiB hosts, containers from 128 MiB to
 * 8 GiB (most small), some hosts overloaded and some nearly empty, a few with an older CPU, three
 * networks (a few hosts lack one), a local and a shared pool, anti-affinity pairs.
 */
export function generateCluster(options: Partial<GenerateOptions> = {}): PlanCluster {
  const o: GenerateOptions = { hosts: 100, perHost: [20, 300], overloaded: 0.1, empty: 0.1, olderCpu: 0.05, seed: 1, ...options };
  const rnd = random(o.seed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(rnd() * items.length)]!;
  const hosts: PlanHost[] = [];
  // every host mounts one shared storage (big enough never to matter) and has a local pool of its own
  const pools: PlanPool[] = [{ id: 'shared', shared: true, total: Number.POSITIVE_INFINITY, other: 0 }];
  for (let i = 0; i < o.hosts; i++) {
    const older = rnd() < o.olderCpu;
    const memTotal = pick([128, 256, 384, 512]) * GiB;
    const diskTotal = pick([4, 8, 16]) * 1024 * GiB;
    const local = pools.push({ id: 'local', shared: false, total: diskTotal, other: 0 }) - 1;
    hosts.push({
      id: `h${String(i).padStart(5, '0')}`,
      state: 'up',
      accepting: true,
      draining: false,
      memTotal,
      cpuTotal: (memTotal / GiB) * 2, // vCPUs handed out: 4× overcommit of 1 core per 2 GiB
      diskTotal,
      cpuVendor: 'AuthenticAMD',
      cpuFamily: 25,
      cpuFlags: new Set(older ? OLD_FLAGS : NEW_FLAGS),
      networks: new Set(rnd() < 0.03 ? ['prod', 'backup'] : ['prod', 'backup', 'dmz']),
      templates: new Set(),
      pools: new Map([
        ['local', local],
        ['shared', 0],
      ]),
      live: true,
    });
  }
  const workloads: PlanWorkload[] = [];
  // anti-affinity pairs, drawn across the whole cluster (2 % of the workloads are in one)
  const groups = Math.max(1, Math.floor(((o.workloads ?? (o.hosts * (o.perHost[0] + o.perHost[1])) / 2) * 0.02) / 2));
  const preset = o.workloads === undefined ? null : presetCounts(o, o.workloads);
  hosts.forEach((host, h) => {
    let kind: HostKind;
    let count: number;
    if (preset) ({ kind, count } = preset[h]!);
    else {
      const roll = rnd();
      kind = roll < o.overloaded ? 'overloaded' : roll < o.overloaded + o.empty ? 'empty' : 'normal';
      count = kind === 'empty' ? Math.floor(rnd() * 5) : o.perHost[0] + Math.floor(rnd() * (o.perHost[1] - o.perHost[0] + 1));
    }
    const target = host.memTotal * (kind === 'overloaded' ? 0.9 : kind === 'empty' ? 0.1 : 0.3 + rnd() * 0.4);
    // sizes with a long tail, scaled so the host lands near its target fill
    const raw = Array.from({ length: count }, () => Math.exp(rnd() * Math.log(64)));
    const scale =
      target /
      Math.max(
        1,
        raw.reduce((s, v) => s + v, 0),
      );
    for (const r of raw) {
      const mem = Math.max(128 * MiB, Math.min(8 * GiB, Math.round((r * scale) / MiB) * MiB));
      const inGroup = rnd() < 0.02;
      // drawn in this order so that a seed gives the clusters it always gave
      const disk = Math.round(mem * (1 + rnd() * 3));
      const networks = rnd() < 0.2 ? ['prod', 'dmz'] : ['prod'];
      const pool = rnd() < 0.5 ? 'shared' : 'local';
      workloads.push({
        id: `w${workloads.length}`,
        host: h,
        mem,
        cpu: Math.max(0.25, Math.round((mem / GiB) * 4) / 4),
        disk,
        networks,
        pool,
        antiAffinity: inGroup ? [`g${Math.floor(rnd() * groups)}`] : [],
        cpuNeeds: { vendor: host.cpuVendor, family: host.cpuFamily, flags: [...host.cpuFlags] },
        running: true,
        template: null,
        haPriority: rnd() < 0.3 ? 1 + Math.floor(rnd() * 10) : 0,
        allowed: null,
        pinned: false,
      });
    }
  });
  return { hosts, workloads, pools };
}
