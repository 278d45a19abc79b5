/**
 * Where a suspended workload resumes (pure): the host that suspended it, or — its checkpoint on a
 * shared pool — any other host that provably mounts that pool (probe files, sharedPoolProven), in
 * either case only a host that passes the named feasibility checks (feasibility.ts: host up, not
 * in maintenance, networks, pool, the CPU the workload's processes were dumped under, room,
 * anti-affinity) and runs a usable CRIU. A move of a suspended workload is a restore from its own
 * images, so no template is needed (like a migration's destination).
 */
import type { HostRecord, WorkloadRecord } from '@ferry/protocol';
import { MIN_CRIU_VERSION, versionAtLeast } from './migration.ts';
import { feasibilityView, hostProblems, type HostRefusal, type PlacementPolicy } from './placement.ts';
import { MiB, sharedPoolProven, type ClusterSnapshot } from './snapshot.ts';

export type ResumeTarget =
  | { ok: true; hostId: string; reason: string }
  | {
      ok: false;
      /** NOT_SUSPENDED, HOST_UNKNOWN, STORAGE_NOT_SHARED, or NO_HOST (every candidate refused: see refusals) */
      code: 'NOT_SUSPENDED' | 'HOST_UNKNOWN' | 'STORAGE_NOT_SHARED' | 'NO_HOST';
      message: string;
      refusals: HostRefusal[];
    };

/** Why `host` cannot run CRIU restores, or null. */
function criuRefusal(host: HostRecord): HostRefusal | null {
  const criu = host.capacity.criu;
  const why = !criu
    ? `host ${host.id} has no CRIU`
    : !criu.usable
      ? `CRIU on host ${host.id} fails its own check`
      : !versionAtLeast(criu.version, MIN_CRIU_VERSION)
        ? `CRIU ${criu.version} on host ${host.id} is older than ${MIN_CRIU_VERSION}`
        : null;
  return why ? { hostId: host.id, code: 'CRIU_UNSUPPORTED', message: why } : null;
}

/** Every reason `host` cannot resume `record` (empty: it can). */
export function resumeProblems(record: WorkloadRecord, host: HostRecord, snapshot: ClusterSnapshot, policy: PlacementPolicy): HostRefusal[] {
  // the CPU its processes were dumped under: a restore must find every feature they may use
  const cpu = record.cpu ?? snapshot.hosts.find((h) => h.id === record.suspended?.hostId)?.capacity.cpu ?? host.capacity.cpu;
  const problems = hostProblems(record.spec, host, snapshot, policy, { migrating: { cpu } });
  const criu = criuRefusal(host);
  return criu ? [...problems, criu] : problems;
}

/**
 * The host a resume goes to. `requested`: the operator's choice (refused with its reasons when it
 * cannot); otherwise the suspending host when it can, else (shared pool) the best other candidate
 * by placement's own score.
 */
export function resumeTarget(record: WorkloadRecord, snapshot: ClusterSnapshot, policy: PlacementPolicy, requested?: string): ResumeTarget {
  const image = record.suspended;
  if (record.phase !== 'suspended' || !image) {
    return { ok: false, code: 'NOT_SUSPENDED', message: `${record.spec.id} is ${record.phase}: only a suspended workload can be resumed`, refusals: [] };
  }
  const origin = image.hostId;
  const canReach = (hostId: string) => hostId === origin || (image.shared && sharedPoolProven(snapshot, image.pool, origin, hostId));
  if (requested !== undefined) {
    const host = snapshot.hosts.find((h) => h.id === requested);
    if (!host) return { ok: false, code: 'HOST_UNKNOWN', message: `no host ${requested}`, refusals: [] };
    if (!canReach(requested)) {
      const message = image.shared
        ? `host ${requested} does not provably share pool ${image.pool} with ${origin}, where ${record.spec.id} was suspended`
        : `${record.spec.id} was suspended to ${origin}'s local pool ${image.pool}: only ${origin} can resume it`;
      return { ok: false, code: 'STORAGE_NOT_SHARED', message, refusals: [] };
    }
    const problems = resumeProblems(record, host, snapshot, policy);
    if (problems.length > 0) return { ok: false, code: 'NO_HOST', message: `host ${requested} cannot resume ${record.spec.id}: ${problems.map((p) => p.message).join('; ')}`, refusals: problems };
    return { ok: true, hostId: requested, reason: `asked for ${requested}` };
  }
  const refusals: HostRefusal[] = [];
  const originHost = snapshot.hosts.find((h) => h.id === origin);
  if (originHost) {
    const problems = resumeProblems(record, originHost, snapshot, policy);
    if (problems.length === 0) return { ok: true, hostId: origin, reason: `the host it was suspended on (${origin})` };
    refusals.push(...problems);
  }
  const others = snapshot.hosts.filter((h) => h.id !== origin && canReach(h.id)).sort((a, b) => a.id.localeCompare(b.id));
  if (others.length > 0) {
    // spread, as placement does: the feasible host with the most unallocated memory afterwards
    const cpu = record.cpu ?? originHost?.capacity.cpu ?? others[0]!.capacity.cpu;
    const view = feasibilityView(record.spec, snapshot, policy, { migrating: { cpu } });
    let best: { hostId: string; freeAfter: number } | null = null;
    for (const h of others) {
      const problems = resumeProblems(record, h, snapshot, policy);
      if (problems.length > 0) {
        refusals.push(...problems);
        continue;
      }
      const to = view.hostIndex.get(h.id)!;
      const freeAfter = view.cluster.hosts[to]!.memTotal - view.usage.mem[to]! - record.spec.resources.memoryMiB * MiB;
      if (!best || freeAfter > best.freeAfter) best = { hostId: h.id, freeAfter };
    }
    if (best)
      return {
        ok: true,
        hostId: best.hostId,
        reason: `shared pool ${image.pool}: ${best.hostId} can take it with the most unallocated memory afterwards (${Math.floor(best.freeAfter / MiB)} MiB left)${originHost ? `; ${origin} cannot` : ''}`,
      };
  }
  const where = image.shared ? `on ${origin} or any host sharing pool ${image.pool} with it` : `on ${origin} (its checkpoint is on that host's local pool ${image.pool})`;
  const why = refusals.length > 0 ? `: ${refusals.map((r) => r.message).join('; ')}` : `: ${origin} is not a known host`;
  return { ok: false, code: 'NO_HOST', message: `${record.spec.id} cannot resume now ${where}${why}`, refusals };
}
