import { WorkloadSpec, type ApiWarning, type HostRecord, type NetworkReport, type Problem, type WorkloadRecord } from '@ferry/protocol';
import { isIpv4, isReservedInSubnet, parseCidr, subnetContains } from './net.ts';
import { MiB, PoolProofs, type ClusterSnapshot } from './snapshot.ts';

export type ValidationResult = { ok: true; spec: WorkloadSpec } | { ok: false; problems: Problem[] };

/** What validating a new workload asks of the existing ones: lookups, not a walk over them all. */
export interface WorkloadLookups {
  exists(id: string): boolean;
  /** a workload other than `except` holding `address` on `network`, if any */
  addressOwner(network: string, address: string, except: string | undefined): string | undefined;
}

/**
 * The cluster as a create's checks see it: the hosts, and the workloads by lookup (the API keeps
 * the lookups as its copy of the workloads changes, WorkloadIndex in @ferry/store — a scan of
 * 100,000 workloads per create would cost more than the create).
 */
export interface ValidationCluster {
  hosts: HostRecord[];
  lookups: WorkloadLookups;
}

/** Lookups by scanning a snapshot's workloads (tests, and callers holding a snapshot anyway). */
export function scanLookups(workloads: readonly WorkloadRecord[]): WorkloadLookups {
  return {
    exists: (id) => workloads.some((w) => w.spec.id === id),
    addressOwner: (network, address, except) => workloads.find((w) => w.spec.id !== except && w.spec.networks.some((a) => a.network === network && a.address === address))?.spec.id,
  };
}

const asValidationCluster = (cluster: ClusterSnapshot | ValidationCluster): ValidationCluster => ('lookups' in cluster ? cluster : { hosts: cluster.hosts, lookups: scanLookups(cluster.workloads) });

/**
 * What the checks read of the hosts, worked out once per host list (the API's copy of the hosts
 * is one array for seconds; at 5,000 hosts walking every host's templates, pools and networks per
 * create was ~0.25 ms).
 */
interface HostFacts {
  templates: ReadonlySet<string>;
  /** pool id → the sizes of that pool on the hosts that have it */
  poolSizes: ReadonlyMap<string, number[]>;
  maxMemory: number;
  maxCpus: number;
  /** network name → the hosts attached to it, with their report of it */
  networks: ReadonlyMap<string, Array<{ host: string; n: NetworkReport }>>;
  /** `${network}\0${address}` → the host whose own address on that network it is */
  hostAddresses: ReadonlyMap<string, string>;
}
const hostFactsMade = new WeakMap<readonly HostRecord[], HostFacts>();
function hostFacts(hosts: readonly HostRecord[]): HostFacts {
  let facts = hostFactsMade.get(hosts);
  if (facts) return facts;
  const templates = new Set<string>();
  const poolSizes = new Map<string, number[]>();
  const networks = new Map<string, Array<{ host: string; n: NetworkReport }>>();
  const hostAddresses = new Map<string, string>();
  let maxMemory = 0;
  let maxCpus = 0;
  for (const h of hosts) {
    for (const t of h.capacity.templates) templates.add(t.name);
    for (const p of h.capacity.pools) {
      const sizes = poolSizes.get(p.id);
      if (sizes) sizes.push(p.totalBytes);
      else poolSizes.set(p.id, [p.totalBytes]);
    }
    for (const n of h.capacity.networks) {
      const attached = networks.get(n.name);
      if (attached) attached.push({ host: h.id, n });
      else networks.set(n.name, [{ host: h.id, n }]);
      const own = n.hostAddress?.split('/')[0];
      if (own !== undefined && !hostAddresses.has(`${n.name}\u0000${own}`)) hostAddresses.set(`${n.name}\u0000${own}`, h.id);
    }
    maxMemory = Math.max(maxMemory, h.capacity.memory.totalBytes);
    maxCpus = Math.max(maxCpus, h.capacity.cpu.count);
  }
  hostFactsMade.set(hosts, (facts = { templates, poolSizes, maxMemory, maxCpus, networks, hostAddresses }));
  return facts;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const num = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);

/**
 * Checks a workload request against its schema and against the cluster, and reports every
 * problem at once. Cluster checks run on whatever parts of the request are well-formed, so a
 * negative memory size and an unknown template are reported together.
 */
export function validateWorkloadRequest(raw: unknown, cluster: ClusterSnapshot | ValidationCluster): ValidationResult {
  const problems: Problem[] = [];
  const parsed = WorkloadSpec.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push({ field: issue.path.map(String).join('.') || '(body)', code: 'INVALID', message: issue.message });
    }
  }
  if (isRecord(raw)) problems.push(...clusterProblems(raw, asValidationCluster(cluster)));
  return problems.length === 0 && parsed.success ? { ok: true, spec: parsed.data } : { ok: false, problems };
}

function clusterProblems(raw: Record<string, unknown>, cluster: ValidationCluster): Problem[] {
  const problems: Problem[] = [];
  const { hosts, lookups } = cluster;
  const facts = hostFacts(hosts);

  const id = str(raw.id);
  if (id !== undefined && lookups.exists(id)) {
    problems.push({ field: 'id', code: 'DUPLICATE_ID', message: `a workload named ${id} already exists` });
  }

  const template = str(raw.template);
  if (template !== undefined && !facts.templates.has(template)) {
    problems.push({ field: 'template', code: 'TEMPLATE_UNKNOWN', message: `no host has a template named ${template}` });
  }

  const pool = str(raw.pool);
  const poolSizes = (pool !== undefined && facts.poolSizes.get(pool)) || [];
  if (pool !== undefined && poolSizes.length === 0) {
    problems.push({ field: 'pool', code: 'POOL_UNKNOWN', message: `no host has a storage pool named ${pool}` });
  }

  if (isRecord(raw.resources)) {
    const { memoryMiB, vcpus, diskMiB } = raw.resources;
    const { maxMemory, maxCpus } = facts;
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
      const reports = facts.networks.get(network) ?? [];
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
      const hostUser = facts.hostAddresses.get(`${network}\u0000${address}`);
      if (hostUser !== undefined) {
        problems.push({ field: `${field}.address`, code: 'ADDRESS_IN_USE', message: `${address} is host ${hostUser}'s address on ${network}` });
        return;
      }
      const owner = lookups.addressOwner(network, address, str(raw.id));
      if (owner !== undefined) {
        problems.push({ field: `${field}.address`, code: 'ADDRESS_IN_USE', message: `${address} on ${network} belongs to workload ${owner}` });
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
function provenByTwo(snapshot: Pick<ClusterSnapshot, 'hosts'>, pool: string, holders: ClusterSnapshot['hosts']): boolean {
  const proofs = PoolProofs.of(snapshot);
  const ids = new Set(holders.map((h) => h.id));
  return holders.some((h) => proofs.sharesWithAny(pool, h.id, ids));
}

export function workloadWarnings(spec: WorkloadSpec, snapshot: Pick<ClusterSnapshot, 'hosts'>): ApiWarning[] {
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
