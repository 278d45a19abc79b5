import { describe, expect, it } from 'vitest';
import { CLONE_NEWUSER, DENIED_SYSCALLS, defaultSeccompProfile, seccompArchitectures } from './seccomp.ts';

describe('default seccomp profile', () => {
  const profile = defaultSeccompProfile('x64');
  const denied = profile.syscalls.find((r) => !r.args && r.errnoRet === 1)!;

  it('allows by default and refuses the deny-list with EPERM', () => {
    expect(profile.defaultAction).toBe('SCMP_ACT_ALLOW');
    for (const name of [
      'keyctl',
      'add_key',
      'request_key',
      'bpf',
      'perf_event_open',
      'kexec_load',
      'kexec_file_load',
      'open_by_handle_at',
      'init_module',
      'finit_module',
      'delete_module',
      'userfaultfd',
      'mount',
      'umount2',
      'pivot_root',
      'setns',
      'io_uring_setup',
    ]) {
      expect(denied.names, name).toContain(name);
    }
    expect(denied.action).toBe('SCMP_ACT_ERRNO');
  });

  it('never refuses what a VPS or a migrated process needs', () => {
    const all = profile.syscalls.filter((r) => !r.args && r.names.length > 1).flatMap((r) => r.names);
    for (const needed of [
      'clone',
      'fork',
      'vfork',
      'execve',
      'ptrace',
      'process_vm_readv',
      'prctl',
      'setuid',
      'setgid',
      'setgroups',
      'chroot',
      'socket',
      'bind',
      'timerfd_create',
      'timer_create',
      'setitimer',
      'rseq',
      'flock',
      'unshare',
    ]) {
      expect(all, needed).not.toContain(needed);
    }
  });

  it('refuses a new user namespace by flag, so plain clone (fork, threads) and unshare of other things go through', () => {
    const byFlag = profile.syscalls.find((r) => r.args)!;
    expect(byFlag.names.sort()).toEqual(['clone', 'unshare']);
    expect(byFlag.args).toEqual([{ index: 0, value: CLONE_NEWUSER, valueTwo: CLONE_NEWUSER, op: 'SCMP_CMP_MASKED_EQ' }]);
    expect(CLONE_NEWUSER).toBe(0x10000000);
  });

  it('answers clone3 with ENOSYS (its flags are out of seccomp’s reach; libc then falls back to clone)', () => {
    expect(profile.syscalls.find((r) => r.names.includes('clone3'))).toMatchObject({ action: 'SCMP_ACT_ERRNO', errnoRet: 38 });
  });

  it('covers every ABI of the CPU, so the 32-bit entry points cannot go around the list', () => {
    expect(seccompArchitectures('x64')).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    expect(seccompArchitectures('arm64')).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    expect(() => seccompArchitectures('mips')).toThrow(/no seccomp profile for architecture mips/);
  });

  it('lists each syscall once', () => {
    const names = Object.values(DENIED_SYSCALLS).flat();
    expect(new Set(names).size).toBe(names.length);
  });
});
