import { describe, expect, it } from 'vitest';
import { WorkloadSpec } from '@ferry/protocol';
import { buildOciConfig, cpuQuotaUs, MIN_CPU_QUOTA_US } from './oci.ts';

const spec = WorkloadSpec.parse({
  id: 'web-1',
  template: 'busybox',
  command: ['/usr/bin/ferry-workload', '--mem', '32'],
  env: ['MODE=demo'],
  resources: { vcpus: 1.5, memoryMiB: 256, diskMiB: 100, pids: 200 },
  pool: 'local',
});

describe('OCI config', () => {
  const config = buildOciConfig(spec, {
    rootfs: '/pool/web-1/rootfs',
    netnsPath: '/run/netns/fc-web-1-ab',
    cgroupsPath: '/ferry/h1/web-1',
    maxOpenFiles: 4096,
    criuConfig: '/var/lib/ferry/criu.conf',
  }) as any;

  it('turns the spec limits into cgroup settings', () => {
    expect(config.linux.resources.memory).toEqual({ limit: 256 * 2 ** 20, swap: 256 * 2 ** 20 });
    expect(config.linux.resources.cpu).toEqual({ quota: 150_000, period: 100_000 });
    expect(config.linux.resources.pids).toEqual({ limit: 200 });
    expect(config.linux.cgroupsPath).toBe('/ferry/h1/web-1');
  });

  it('never turns a tiny vCPU limit into quota 0 (= no limit): the kernel minimum of 1000 µs instead', () => {
    expect(cpuQuotaUs(0.01)).toBe(1000);
    expect(cpuQuotaUs(1e-300)).toBe(MIN_CPU_QUOTA_US);
    expect(cpuQuotaUs(0.004)).toBe(MIN_CPU_QUOTA_US);
    expect(cpuQuotaUs(0)).toBe(MIN_CPU_QUOTA_US);
    expect(cpuQuotaUs(Number.NaN)).toBe(MIN_CPU_QUOTA_US);
    expect(cpuQuotaUs(0.5)).toBe(50_000);
    // a record stored before the schema's minimum still gets a real limit
    const old = buildOciConfig({ ...spec, resources: { ...spec.resources, vcpus: 1e-300 } }, { rootfs: '/r', netnsPath: null, cgroupsPath: '/c', maxOpenFiles: 1024, criuConfig: '/c.conf' }) as any;
    expect(old.linux.resources.cpu).toEqual({ quota: 1000, period: 100_000 });
  });

  it('joins the agent-owned network namespace and isolates the rest', () => {
    expect(config.linux.namespaces).toEqual([{ type: 'pid' }, { type: 'network', path: '/run/netns/fc-web-1-ab' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }]);
    expect(config.hostname).toBe('web-1');
  });

  it('grants no CAP_NET_RAW (no forged frames), no CAP_NET_ADMIN or CAP_SYS_ADMIN, and what sshd, nginx and init need', () => {
    const { bounding, effective, permitted } = config.process.capabilities;
    expect(effective).toEqual(bounding);
    expect(permitted).toEqual(bounding);
    for (const missing of ['CAP_NET_RAW', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_SYS_PTRACE', 'CAP_SYS_MODULE', 'CAP_DAC_READ_SEARCH']) expect(bounding).not.toContain(missing);
    for (const needed of ['CAP_SETUID', 'CAP_SETGID', 'CAP_SYS_CHROOT', 'CAP_NET_BIND_SERVICE', 'CAP_KILL', 'CAP_CHOWN', 'CAP_AUDIT_WRITE']) expect(bounding).toContain(needed);
    expect(config.process.noNewPrivileges).toBe(true);
  });

  it('runs under the default seccomp profile', () => {
    expect(config.linux.seccomp.defaultAction).toBe('SCMP_ACT_ALLOW');
    expect(config.linux.seccomp.syscalls[0].names).toContain('keyctl');
  });

  it('runs the command with its environment, no terminal, on the private root', () => {
    expect(config.process.args).toEqual(['/usr/bin/ferry-workload', '--mem', '32']);
    expect(config.process.env).toContain('MODE=demo');
    expect(config.process.terminal).toBe(false);
    expect(config.process.rlimits).toEqual([{ type: 'RLIMIT_NOFILE', hard: 4096, soft: 4096 }]);
    expect(config.root).toEqual({ path: '/pool/web-1/rootfs', readonly: false });
    expect(config.annotations).toEqual({ 'org.criu.config': '/var/lib/ferry/criu.conf' });
  });
});
