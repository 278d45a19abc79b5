import type { WorkloadSpec } from '@ferry/protocol';
import { defaultSeccompProfile } from './seccomp.ts';

export const CPU_PERIOD_US = 100_000;
/** The smallest CFS quota the kernel accepts (cpu.max / cpu.cfs_quota_us): 1 ms. */
export const MIN_CPU_QUOTA_US = 1000;

/**
 * The CFS quota for a vCPU limit, per CPU_PERIOD_US. Never 0 or below the kernel's minimum: a
 * quota that rounds to 0 makes runc leave the CPU unlimited ("max"), the opposite of a tiny
 * limit, so anything smaller (a record from before the schema's 0.01 minimum) gets the minimum.
 */
export function cpuQuotaUs(vcpus: number): number {
  const quota = Math.round(vcpus * CPU_PERIOD_US);
  return Number.isFinite(quota) ? Math.max(MIN_CPU_QUOTA_US, quota) : MIN_CPU_QUOTA_US;
}
const MiB = 1024 * 1024;

export interface OciPlacement {
  /** absolute path of the container's private root filesystem */
  rootfs: string;
  /** the network namespace the agent built for it, or null for none (loopback only) */
  netnsPath: string | null;
  cgroupsPath: string;
  /** open-files limit; at most the agent's own hard limit (raising it needs CAP_SYS_RESOURCE) */
  maxOpenFiles: number;
  /** CRIU options file runc hands to CRIU on checkpoint and restore (runc has no flag for them) */
  criuConfig: string;
}

/**
 * What root in a container may do: Docker's default set without CAP_NET_RAW. No raw or packet
 * sockets, so no forged ARP or IP from inside (the bridge's anti-spoofing rules hold anyway, see
 * antispoof.ts); ping works through ICMP datagram sockets (net.ipv4.ping_group_range, network.ts).
 * What the Debian VPS needs is all here: sshd (SETUID, SETGID, SYS_CHROOT for its privilege
 * separation, AUDIT_WRITE, CHOWN, KILL), nginx (NET_BIND_SERVICE, SETUID), init (KILL), dpkg
 * (CHOWN, FOWNER, FSETID, DAC_OVERRIDE, SETFCAP). No CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_SYS_PTRACE,
 * CAP_SYS_MODULE: a container cannot change its addresses, routes or MAC, mount, or trace
 * what is not its own. MKNOD is harmless: the device cgroup refuses every device.
 */
export const CAPABILITIES = [
  'CAP_AUDIT_WRITE',
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_MKNOD',
  'CAP_NET_BIND_SERVICE',
  'CAP_SETFCAP',
  'CAP_SETGID',
  'CAP_SETPCAP',
  'CAP_SETUID',
  'CAP_SYS_CHROOT',
];

/**
 * The OCI runtime config runc runs a workload with: its own PID, mount, UTS and IPC namespaces,
 * the agent-owned network namespace, the spec's limits as cgroup settings (runc maps them to
 * cgroup v1 or v2, whichever the host has), a reduced capability set and the default seccomp
 * profile (seccomp.ts).
 */
export function buildOciConfig(spec: WorkloadSpec, placement: OciPlacement): Record<string, unknown> {
  const memory = spec.resources.memoryMiB * MiB;
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: spec.command,
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', `FERRY_WORKLOAD=${spec.id}`, ...spec.env],
      cwd: '/',
      capabilities: { bounding: CAPABILITIES, effective: CAPABILITIES, permitted: CAPABILITIES },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: placement.maxOpenFiles, soft: placement.maxOpenFiles }],
      noNewPrivileges: true,
    },
    root: { path: placement.rootfs, readonly: false },
    annotations: { 'org.criu.config': placement.criuConfig },
    hostname: spec.id,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    linux: {
      cgroupsPath: placement.cgroupsPath,
      resources: {
        devices: [{ allow: false, access: 'rwm' }],
        // swap = limit: no swap beyond the memory limit, so the limit really holds
        memory: { limit: memory, swap: memory },
        cpu: { quota: cpuQuotaUs(spec.resources.vcpus), period: CPU_PERIOD_US },
        pids: { limit: spec.resources.pids },
      },
      namespaces: [{ type: 'pid' }, placement.netnsPath ? { type: 'network', path: placement.netnsPath } : { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      seccomp: defaultSeccompProfile(),
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
