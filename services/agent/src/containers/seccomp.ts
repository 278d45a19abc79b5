/**
 * The default seccomp profile of a container: a deny-list in the spirit of Docker's default
 * profile. Everything a VPS runs (init, sshd, nginx, package managers, compilers, strace) is
 * allowed; what is refused is kernel attack surface a tenant has no use for, and what would let
 * root in a container get capabilities somewhere (a user namespace) or reach the host's kernel
 * state. Capabilities already refuse most of these (no CAP_SYS_ADMIN, CAP_SYS_MODULE, ...): the
 * profile is the second wall, and the only one for the calls that need no capability at all
 * (keyctl, add_key, bpf with unprivileged BPF, perf_event_open, userfaultfd, io_uring,
 * unshare(CLONE_NEWUSER)).
 *
 * CRIU and the profile: CRIU suspends a task's filter while it dumps it (PTRACE_O_SUSPEND_SECCOMP),
 * saves the filter in the image and installs it again as the restore's last step, after the
 * restorer has done its own work (including registering userfaultfd for lazy pages), so a
 * migrated workload keeps exactly the profile it started with. The restore itself runs in CRIU,
 * outside any filter.
 */

/** EPERM, what a capability check would have answered. */
const EPERM = 1;
/** ENOSYS, for clone3 only: its flags are in memory seccomp cannot read, and libc falls back to clone on ENOSYS. */
const ENOSYS = 38;

/** CLONE_NEWUSER: the one namespace flag that needs no capability, and so the way to get them. */
export const CLONE_NEWUSER = 0x10000000;

/** Refused outright (EPERM), by group, each with why. */
export const DENIED_SYSCALLS: Record<string, string[]> = {
  // the kernel keyring is not namespaced: keys leak between tenants and the host
  keyring: ['add_key', 'keyctl', 'request_key'],
  // eBPF programs and perf events: a large kernel surface, and an information leak about the host
  tracing: ['bpf', 'perf_event_open', 'lookup_dcookie'],
  // userfaultfd stalls kernel threads at will (a classic exploit primitive); CRIU's lazy restore
  // registers its own before the filter is back, so post-copy migration does not need it
  memory: ['userfaultfd'],
  // io_uring: a frequent source of kernel bugs, and CRIU cannot checkpoint it (a workload using it could not migrate)
  io_uring: ['io_uring_setup', 'io_uring_enter', 'io_uring_register'],
  // the kernel itself
  kernel: ['kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module', 'create_module', 'get_kernel_syms', 'query_module', 'syslog', 'iopl', 'ioperm'],
  // file handles bypass the container's root (the "shocker" escape)
  handles: ['open_by_handle_at'],
  // mounts: the runtime and CRIU mount, never the workload
  mounts: ['mount', 'umount', 'umount2', 'pivot_root', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'move_mount', 'open_tree', 'mount_setattr'],
  // joining other namespaces
  namespaces: ['setns'],
  // host-wide state
  host: ['swapon', 'swapoff', 'acct', 'settimeofday', 'stime', 'clock_settime', 'clock_settime64', 'clock_adjtime', 'clock_adjtime64', 'nfsservctl', 'vhangup', 'uselib', 'ustat', 'sysfs', '_sysctl'],
};

/** The seccomp architectures for a Node `process.arch`: every ABI the CPU runs, so no compat ABI slips past the list. */
export function seccompArchitectures(arch: string): string[] {
  switch (arch) {
    case 'x64':
      return ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];
    case 'arm64':
      return ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'];
    default:
      throw new Error(`no seccomp profile for architecture ${arch}`);
  }
}

interface SeccompArg {
  index: number;
  value: number;
  valueTwo: number;
  op: 'SCMP_CMP_MASKED_EQ';
}
interface SeccompRule {
  names: string[];
  action: 'SCMP_ACT_ERRNO';
  errnoRet: number;
  args?: SeccompArg[];
}
export interface SeccompProfile {
  defaultAction: 'SCMP_ACT_ALLOW';
  architectures: string[];
  syscalls: SeccompRule[];
}

/** The OCI `linux.seccomp` section: allow by default, refuse the deny-list. */
export function defaultSeccompProfile(arch: string = process.arch): SeccompProfile {
  const newUser: SeccompArg = { index: 0, value: CLONE_NEWUSER, valueTwo: CLONE_NEWUSER, op: 'SCMP_CMP_MASKED_EQ' };
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: seccompArchitectures(arch),
    syscalls: [
      { names: Object.values(DENIED_SYSCALLS).flat(), action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
      // A new user namespace is where unprivileged root gets CAP_SYS_ADMIN (and mounts, and the
      // rest): refuse the flag, not the calls (fork and threads use clone; unshare(CLONE_FILES) is harmless).
      // clone's flags are its first argument on x86-64 and arm64 alike.
      { names: ['unshare', 'clone'], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, args: [newUser] },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
    ],
  };
}
