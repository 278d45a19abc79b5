import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { macForAddress } from '@ferry/core';
import type { WorkloadSpecInput } from '@ferry/protocol';
import { eventually } from './helpers/cluster.ts';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { labApi, talk } from './helpers/workload.ts';

/**
 * Issue 17, part 2: tenant isolation. A container has no CAP_NET_RAW or CAP_NET_ADMIN and runs
 * under the default seccomp profile; the bridge lets each container's port send only from its own
 * MAC and address (services/agent/src/containers/antispoof.ts); nothing arriving on a tenant
 * bridge opens a connection to the host or is routed off the segment (host-guard.ts).
 *
 * The adversary here is stronger than a container can be: a process in container A's network
 * namespace with every capability (nsenter from the host), which can change A's addresses, MAC
 * and routes and send anything — what a container would be if a capability were granted by
 * mistake or a kernel bug handed it one. Its tries must still fail where the frames enter the
 * bridge, and each try is paired with a control showing the same path works for honest traffic.
 */

const A = { id: 'ten-a', address: '10.77.0.81' };
const B = { id: 'ten-b', address: '10.77.0.82' };
const D = { id: 'ten-d', address: '10.77.0.84' };
const DEBIAN = '/opt/ferry/templates/debian-12/template.json';

const workload = (id: string, address: string, host: string): WorkloadSpecInput => ({
  id,
  template: 'busybox',
  command: ['/usr/bin/ferry-workload', '--mem', '8', '--port', '7000'],
  resources: { vcpus: 0.25, memoryMiB: 64, diskMiB: 64 },
  networks: [{ network: PROD.name, address }],
  pool: 'local',
  placement: { hosts: [host] },
});

describe.skipIf(skipLab())('tenant isolation: capabilities, seccomp, anti-spoofing, no way to the host', () => {
  let t: LabCluster;
  const { api, get, running } = labApi(() => t);

  beforeAll(async () => {
    t = await startLabCluster(['h1', 'h2']);
    await running(workload(A.id, A.address, 'h1'));
    await running(workload(B.id, B.address, 'h1'));
    await running(workload(D.id, D.address, 'h2'), 'h1');
  }, 120_000);

  afterAll(async () => {
    await t?.close();
  });

  const runcRoot = (host: string) => join(t.lab.host(host).dir, 'data', 'runc');
  /** A command run inside a container as its own processes run: its capabilities, its seccomp filter. */
  const inContainer = (host: string, id: string, args: string[]) => execa('runc', ['--root', runcRoot(host), 'exec', id, ...args], { reject: false, timeout: 20_000 });
  const initPid = async (host: string, id: string) => (JSON.parse((await execa('runc', ['--root', runcRoot(host), 'state', id])).stdout) as { pid: number }).pid;
  /** The adversary: a command in the container's network namespace with every capability. */
  const asAdversary = async (host: string, id: string, command: string, args: string[], input?: string) =>
    execa('nsenter', [`--net=/proc/${await initPid(host, id)}/ns/net`, '--', command, ...args], { reject: false, timeout: 20_000, ...(input === undefined ? {} : { input }) });
  const inHost = (host: string, command: string, args: string[]) => t.lab.exec(host, command, args);
  /** A TCP connect with node, run as `run` runs commands: 'connected', 'timeout' or the error code. */
  const PROBE =
    'const s = require("net").connect({ host: process.argv[1], port: Number(process.argv[2]), timeout: 2000 });' +
    's.on("connect", () => { console.log("connected"); process.exit(0); });' +
    's.on("timeout", () => { console.log("timeout"); process.exit(2); });' +
    's.on("error", (e) => { console.log(e.code); process.exit(3); });';
  const connectFromHost = async (host: string, to: { host: string; port: string }) => (await inHost(host, process.execPath, ['-e', PROBE, to.host, to.port])).stdout.trim();
  const connectAsAdversary = async (host: string, id: string, to: { host: string; port: string }) => (await asAdversary(host, id, process.execPath, ['-e', PROBE, to.host, to.port])).stdout.trim();
  const counter = async (fromHost: string, address: string) => Number(await talk(t.lab, fromHost, address, 'get'));
  /** Packets dropped so far by a container's anti-spoofing chain on its host. */
  const dropped = async (host: string, id: string): Promise<number> => {
    const listed = await inHost(host, 'nft', ['-j', 'list', 'table', 'bridge', 'ferry_antispoof']);
    const items = (JSON.parse(listed.stdout) as { nftables: Array<{ rule?: { chain: string; expr: Array<{ counter?: { packets: number } }> } }> }).nftables;
    return items
      .filter((i) => i.rule?.chain.startsWith(`c-fl${t.lab.id}-${id}-`))
      .flatMap((i) => i.rule!.expr)
      .reduce((sum, e) => sum + (e.counter?.packets ?? 0), 0);
  };

  it('gives a container no CAP_NET_RAW and no CAP_NET_ADMIN: no raw or packet socket, no address, MAC or route of its own choosing', async () => {
    const status = (await inContainer('h1', A.id, ['cat', '/proc/self/status'])).stdout;
    const effective = BigInt(`0x${/^CapEff:\s+([0-9a-f]+)/m.exec(status)![1]}`);
    const bounding = BigInt(`0x${/^CapBnd:\s+([0-9a-f]+)/m.exec(status)![1]}`);
    const NET_ADMIN = 1n << 12n;
    const NET_RAW = 1n << 13n;
    expect(effective & (NET_ADMIN | NET_RAW), `CapEff ${effective.toString(16)}`).toBe(0n);
    expect(bounding & (NET_ADMIN | NET_RAW), `CapBnd ${bounding.toString(16)}`).toBe(0n);
    expect(status).toMatch(/^Seccomp:\s+2$/m);

    const arping = await inContainer('h1', A.id, ['arping', '-U', '-c', '1', '-I', 'eth0', '-s', B.address, B.address]);
    expect(arping.exitCode).not.toBe(0);
    expect(arping.stderr).toMatch(/permission denied|not permitted/i);
    for (const args of [
      ['ip', 'addr', 'add', `${B.address}/24`, 'dev', 'eth0'],
      ['ip', 'link', 'set', 'eth0', 'address', macForAddress(B.address)],
      ['ip', 'route', 'add', `${t.lab.gateway}/32`, 'dev', 'eth0'],
    ]) {
      const r = await inContainer('h1', A.id, args);
      expect(r.exitCode, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(/not permitted/i);
    }
    // and without a route, the management network is not even addressable from inside
    const nc = await inContainer('h1', A.id, ['nc', '-w', '2', t.lab.gateway, '4222']);
    expect(nc.exitCode).not.toBe(0);
    expect(nc.stderr).toMatch(/unreachable/i);
  });

  it('stops a container that passes as another at its own port: ARP for B’s address, B’s MAC, packets from B’s address', async () => {
    // B has a state of its own; h2 and h1's bridge know where B is
    for (let i = 0; i < 3; i++) await talk(t.lab, 'h2', B.address, 'inc');
    expect(await counter('h2', B.address)).toBe(3);
    const bMac = macForAddress(B.address);
    const fdbPort = async () => {
      const fdb = await inHost('h1', 'bridge', ['fdb', 'show', 'br', PROD.bridge]);
      return fdb.stdout
        .split('\n')
        .find((l) => l.startsWith(`${bMac} `))
        ?.split(' ')[2];
    };
    const bPort = await fdbPort();
    expect(bPort, 'h1 bridge learned B’s MAC').toMatch(/^fv/);
    const droppedBefore = await dropped('h1', A.id);

    // 1. A claims B's address in gratuitous ARP (with its own MAC), as ARP spoofing does
    expect((await asAdversary('h1', A.id, 'ip', ['addr', 'add', `${B.address}/32`, 'dev', 'eth0'])).exitCode).toBe(0);
    const garp = await asAdversary('h1', A.id, 'busybox', ['arping', '-U', '-c', '3', '-w', '2', '-I', 'eth0', '-s', B.address, B.address]);
    expect(garp.stdout, garp.stderr).toMatch(/Sent 3 probe/);
    // 2. A takes B's MAC and sends as B: the bridge must not learn B's MAC on A's port
    expect((await asAdversary('h1', A.id, 'ip', ['link', 'set', 'eth0', 'address', bMac])).exitCode).toBe(0);
    await asAdversary('h1', A.id, 'busybox', ['arping', '-U', '-c', '3', '-w', '2', '-I', 'eth0', '-s', B.address, B.address]);

    // nobody believed it: h2 still reaches B (its counter, not A's), h1's bridge keeps B on B's port
    const neigh = await inHost('h2', 'ip', ['neigh', 'show', B.address]);
    expect(neigh.stdout).toContain(bMac);
    expect(await counter('h2', B.address)).toBe(3);
    expect(await fdbPort()).toBe(bPort);

    // 3. A, with B's MAC or its own and only B's address, opens a connection to D on h2: nothing arrives
    expect((await asAdversary('h1', A.id, 'ip', ['addr', 'del', `${A.address}/24`, 'dev', 'eth0'])).exitCode).toBe(0);
    expect((await asAdversary('h1', A.id, 'ip', ['addr', 'add', `${B.address}/24`, 'dev', 'eth0'])).exitCode).toBe(0);
    for (const mac of [bMac, macForAddress(A.address)]) {
      expect((await asAdversary('h1', A.id, 'ip', ['link', 'set', 'eth0', 'address', mac])).exitCode).toBe(0);
      const spoofed = await asAdversary('h1', A.id, 'busybox', ['nc', '-w', '2', D.address, '7000'], 'inc\nquit\n');
      expect(spoofed.stdout, `as ${B.address} from ${mac}`).toBe('');
    }
    expect(await counter('h1', D.address), 'D never saw the spoofed inc').toBe(0);
    const droppedAfter = await dropped('h1', A.id);
    console.log(`A's anti-spoofing chain on h1 dropped ${droppedAfter - droppedBefore} packets during the attempts`);
    expect(droppedAfter).toBeGreaterThan(droppedBefore);

    // control: the same path, as itself, works — and B was never disturbed
    await asAdversary('h1', A.id, 'ip', ['addr', 'flush', 'dev', 'eth0']);
    expect((await asAdversary('h1', A.id, 'ip', ['addr', 'add', `${A.address}/24`, 'dev', 'eth0'])).exitCode).toBe(0);
    const honest = await asAdversary('h1', A.id, 'busybox', ['nc', '-w', '3', D.address, '7000'], 'inc\nquit\n');
    expect(honest.stdout.trim()).toBe('1');
    expect(await counter('h2', B.address)).toBe(3);
  });

  it('lets nothing on the tenant bridge reach the agent’s ports, NATS or Redis — even with a route there', async () => {
    const h1 = t.lab.host('h1');
    const bridgeAddress = h1.networks[0]!.hostAddress.split('/')[0]!;
    // the host's listeners (the agent's metrics among them) and the control plane's, as host:port
    const listening = (await inHost('h1', 'ss', ['-Hltn'])).stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[3])
      .filter((a): a is string => !!a && !a.startsWith('127.') && !a.startsWith('['));
    const hostTargets = listening.map((a) => {
      const [addr, port] = [a.slice(0, a.lastIndexOf(':')), a.slice(a.lastIndexOf(':') + 1)];
      return { host: addr === '0.0.0.0' || addr === '*' ? h1.address : addr, port };
    });
    expect(
      hostTargets.some((x) => x.host === h1.address),
      `the agent listens on its management address: ${listening.join(', ')}`,
    ).toBe(true);
    const controlPlane = [t.cluster.natsUrl, t.cluster.redisUrl].map((u) => {
      const url = new URL(u);
      return { host: url.hostname, port: url.port };
    });
    const targets = [...hostTargets, ...hostTargets.map((x) => ({ host: bridgeAddress, port: x.port })), ...controlPlane];

    // control: from the host itself every one of them accepts a connection
    for (const x of [...hostTargets, ...controlPlane]) expect(await connectFromHost('h1', x), `h1 → ${x.host}:${x.port}`).toBe('connected');
    // the adversary adds the routes a container cannot, then tries each
    const mgmt = `${t.lab.gateway.replace(/\.1$/, '.0')}/24`;
    expect((await asAdversary('h1', A.id, 'ip', ['route', 'add', mgmt, 'via', bridgeAddress])).exitCode).toBe(0);
    const outcomes = await Promise.all(targets.map(async (x) => `${x.host}:${x.port} ${await connectAsAdversary('h1', A.id, x)}`));
    console.log(`A (with a route to the management network) → ${outcomes.join(', ')}`);
    for (const outcome of outcomes) expect(outcome).not.toMatch(/ connected$/);
    // the host still reaches its tenants (replies to its own connections pass)
    expect(await counter('h1', B.address)).toBe(3);
  });

  describe.skipIf(!existsSync(DEBIAN))('seccomp, in a Debian VPS (perl calls the syscalls)', () => {
    const VPS = { id: 'ten-vps', address: '10.77.0.85' };
    beforeAll(async () => {
      const res = await api('POST', '/v1/workloads', {
        ...workload(VPS.id, VPS.address, 'h1'),
        template: 'debian-12',
        command: ['/sbin/init'],
        resources: { vcpus: 0.5, memoryMiB: 256, diskMiB: 1024 },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      await eventually(
        `${VPS.id} running`,
        async () => {
          const v = await get(VPS.id);
          if (v.phase === 'failed') throw new Error(v.error?.message);
          return v.phase === 'running' && v.observed?.state === 'running';
        },
        120_000,
      );
    }, 150_000);

    /** errno of a raw syscall from perl inside the VPS (0 when it succeeded). */
    const errnoOf = async (syscall: number, ...args: number[]) => {
      const r = await inContainer('h1', VPS.id, ['perl', '-e', `my $r = syscall(${[syscall, ...args].join(', ')}); print $r < 0 ? ($!+0) : 0`]);
      expect(r.exitCode, r.stderr).toBe(0);
      return Number(r.stdout);
    };

    // Each call below succeeds, or fails otherwise than EPERM, without the profile (as root in a
    // container with its capabilities): EPERM is the profile's answer.
    it.skipIf(process.arch !== 'x64')('refuses keyctl, add_key, perf_event_open, userfaultfd, unshare(CLONE_NEWUSER) with EPERM; ordinary calls work', async () => {
      const EPERM = 1;
      // x86-64 numbers. keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, create): a keyring id otherwise
      expect(await errnoOf(250, 0, -3, 1)).toBe(EPERM);
      expect(await errnoOf(248, 0, 0, 0, 0, 0)).toBe(EPERM); // add_key(NULL, …): EFAULT otherwise
      expect(await errnoOf(298, 0, 0, -1, -1, 0)).toBe(EPERM); // perf_event_open(NULL, …): EFAULT otherwise
      expect(await errnoOf(323, 1)).toBe(EPERM); // userfaultfd(UFFD_USER_MODE_ONLY): allowed to anyone otherwise
      expect(await errnoOf(272, 0x10000000)).toBe(EPERM); // unshare(CLONE_NEWUSER): needs no capability otherwise
      expect(await errnoOf(39)).toBe(0); // getpid
      expect(await errnoOf(272, 0x00000400)).toBe(0); // unshare(CLONE_FILES): no namespace, allowed
    });

    it('opens no raw socket, and an ICMP datagram socket (ping without CAP_NET_RAW, net.ipv4.ping_group_range)', async () => {
      const r = await inContainer('h1', VPS.id, [
        'perl',
        '-MSocket',
        '-e',
        'print socket(my $raw, PF_INET, SOCK_RAW, 1) ? "raw" : "no raw: $!", "\n"; print socket(my $dgram, PF_INET, SOCK_DGRAM, 1) ? "icmp datagram" : "no icmp datagram: $!", "\n"',
      ]);
      expect(r.stdout.trim().split('\n')).toEqual(['no raw: Operation not permitted', 'icmp datagram']);
    });
  });
});
