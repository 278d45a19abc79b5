import { WorkloadSpec, type ApiWarning, type Problem } from '@ferry/protocol';
import { isIpv4, isReservedInSubnet, parseCidr, subnetContains } from './net.ts';
import { MiB, PoolProofs, type ClusterSnapshot } from './snapshot.ts';

export type ValidationResult = { ok: true; spec: WorkloadSpec } | { ok: false; problems: Problem[] };

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const num = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);

/**
 * Checks a workload request against its schema and against the cluster, and reports every
 * problem at once. Cluster checks run on whatever parts of the request are well-formed, so a
 * negative memory size and an unknown template are reported together.
 */
export function validateWorkloadRequest(raw: unknown, snapshot: ClusterSnapshot): ValidationResult {
  const problems: Problem[] = [];
  const parsed = WorkloadSpec.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push({ field: issue.path.map(String).join('.') || '(body)', code: 'INVALID', message: issue.message });
    }
  }
  if (isRecord(raw)) problems.push(...clusterProblems(raw, snapshot));
  return problems.length === 0 && parsed.success ? { ok: true, spec: parsed.data } : { ok: false, problems };
}

function clusterProblems(raw: Record<string, unknown>, snapshot: ClusterSnapshot): Problem[] {
  const problems: Problem[] = [];
  const { hosts, workloads } = snapshot;

  const id = str(raw.id);
  if (id !== undefined && workloads.some((w) => w.spec.id === id)) {
    problems.push({ field: 'id', code: 'DUPLICATE_ID', message: `a workload named ${id} already exists` });
  }

  const template = str(raw.template);
  if (template !== undefined && !hosts.some((h) => h.capacity.templates.some((t) => t.name === template))) {
    problems.push({ field: 'template', code: 'TEMPLATE_UNKNOWN', message: `no host has a template named ${template}` });
  }

  const pool = str(raw.pool);
  const poolSizes = hosts.flatMap((h) => h.capacity.pools.filter((p) => p.id === pool).map((p) => p.totalBytes));
  if (pool !== undefined && poolSizes.length === 0) {
    problems.push({ field: 'pool', code: 'POOL_UNKNOWN', message: `no host has a storage pool named ${pool}` });
  }

  if (isRecord(raw.resources)) {
    const { memoryMiB, vcpus, diskMiB } = raw.resources;
    const maxMemory = Math.max(0, ...hosts.map((h) => h.capacity.memory.totalBytes));
    const maxCpus = Math.max(0, ...hosts.map((h) => h.capacity.cpu.count));
    const memory = num(memoryMiB);
    if (hosts.length > 0 && memory !== undefined && memory * MiB > maxMemory) {
      problems.push({
        field: 'resources.memoryMiB',
        code: 'TOO_LARGE',
        message: `${memory} MiB is more memory than any host has (largest: ${Math.floor(maxMemory / MiB)} MiB)`,
      });
    }
    const cpus = num(vcpus);
    if (hosts.length > 0 && cpus !== undefined && cpus > maxCpus) {
      problems.push({ field: 'resources.vcpus', code: 'TOO_LARGE', message: `${cpus} vCPUs is more than any host has (largest: ${maxCpus})` });
    }
    const disk = num(diskMiB);
    if (poolSizes.length > 0 && disk !== undefined && disk * MiB > Math.max(...poolSizes)) {
      problems.push({
        field: 'resources.diskMiB',
        code: 'TOO_LARGE',
        message: `${disk} MiB is more than pool ${pool} holds on any host (largest: ${Math.floor(Math.max(...poolSizes) / MiB)} MiB)`,
      });
    }
  }

  if (Array.isArray(raw.networks)) {
    const seen = new Set<string>();
    raw.networks.forEach((entry, index) => {
      if (!isRecord(entry)) return;
      const network = str(entry.network);
      const address = str(entry.address);
      if (network === undefined) return;
      const field = `networks.${index}`;
      if (seen.has(network)) {
        problems.push({ field: `${field}.network`, code: 'DUPLICATE_NETWORK', message: `network ${network} is attached twice` });
      }
      seen.add(network);
      const reports = hosts.flatMap((h) => h.capacity.networks.filter((n) => n.name === network).map((n) => ({ host: h.id, n })));
      if (reports.length === 0) {
        problems.push({ field: `${field}.network`, code: 'NETWORK_UNKNOWN', message: `no host is attached to a network named ${network}` });
        return;
      }
      // A malformed address (999.1.1.1 included) is the schema's problem, already reported for
      // this field: the subnet checks below only run on addresses that parse, or they would throw.
      if (address === undefined || !isIpv4(address)) return;
      const subnet = parseCidr(reports[0]!.n.subnet);
      if (!subnetContains(subnet, address)) {
        problems.push({
          field: `${field}.address`,
          code: 'ADDRESS_OUTSIDE_SUBNET',
          message: `${address} is not in network ${network}'s subnet ${reports[0]!.n.subnet}`,
        });
        return;
      }
      if (isReservedInSubnet(subnet, address)) {
        problems.push({ field: `${field}.address`, code: 'ADDRESS_RESERVED', message: `${address} is the network or broadcast address of ${reports[0]!.n.subnet}` });
        return;
      }
      const hostUser = reports.find((r) => r.n.hostAddress?.split('/')[0] === address);
      if (hostUser) {
        problems.push({ field: `${field}.address`, code: 'ADDRESS_IN_USE', message: `${address} is host ${hostUser.host}'s address on ${network}` });
        return;
      }
      const owner = workloads.find((w) => w.spec.id !== str(raw.id) && w.spec.networks.some((a) => a.network === network && a.address === address));
      if (owner) {
        problems.push({ field: `${field}.address`, code: 'ADDRESS_IN_USE', message: `${address} on ${network} belongs to workload ${owner.spec.id}` });
      }
    });
  }
  return problems;
}

/**
 * Advice about a valid spec: what it asks for that the cluster cannot give. An HA workload whose
 * root filesystem is on a pool no other host shares dies with its host: failover has nothing to
 * restart it from (see restartTarget), so HA protects nothing.
 */
/** Whether two of `holders` provably share `pool` (indexed: pairwise it is O(hosts²)). */
function provenByTwo(snapshot: ClusterSnapshot, pool: string, holders: ClusterSnapshot['hosts']): boolean {
  const proofs = PoolProofs.of(snapshot);
  const ids = new Set(holders.map((h) => h.id));
  return holders.some((h) => proofs.sharesWithAny(pool, h.id, ids));
}

export function workloadWarnings(spec: WorkloadSpec, snapshot: ClusterSnapshot): ApiWarning[] {
  const warnings: ApiWarning[] = [];
  if (spec.ha.enabled) {
    const holders = snapshot.hosts.filter((h) => h.capacity.pools.some((p) => p.id === spec.pool));
    const claimedShared = holders.some((h) => h.capacity.pools.some((p) => p.id === spec.pool && p.shared));
    const sharedPools = [...new Set(snapshot.hosts.flatMap((h) => h.capacity.pools.filter((p) => p.shared).map((p) => p.id)))].sort();
    const instead = sharedPools.length > 0 ? `put it on a shared pool (${sharedPools.join(', ')})` : 'no host reports a shared pool yet';
    if (!claimedShared) {
      warnings.push({
        code: 'HA_POOL_LOCAL',
        message: `HA is on, but pool ${spec.pool} is local to each host: if the host of ${spec.id} dies, its root filesystem is gone with it and it cannot be restarted elsewhere; ${instead}`,
      });
    } else if (!provenByTwo(snapshot, spec.pool, holders)) {
      warnings.push({
        code: 'HA_POOL_NOT_SHARED',
        message: `HA is on, but no two hosts are proven to share pool ${spec.pool} (yet): ${spec.id} can be restarted elsewhere only on a host that sees the same pool`,
      });
    }
  }
  return warnings;
}
