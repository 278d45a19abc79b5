import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MigrationRecord, WorkloadSpecInput } from '@ferry/protocol';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { expectTimersFire, labApi, talk, workloadStats } from './helpers/workload.ts';

const workload = (id: string, address: string, pool: 'local' | 'shared'): WorkloadSpecInput => ({
  id,
  template: 'busybox',
  command: ['/usr/bin/ferry-workload', '--mem', '64', '--dirty', '4', '--port', '7000'],
  resources: { vcpus: 0.5, memoryMiB: 256, diskMiB: 512 },
  networks: [{ network: PROD.name, address }],
  pool,
  placement: { hosts: ['h1', 'h2'] },
});

/**
 * Page-server migrations (CRIU's page server on the destination, pages streamed during the
 * freeze), with each agent configured to run CRIU through a wrapper that records its calls: the
 * configured binary, not whatever `criu` is first on PATH, must run the page server, and runc must
 * be given it too (`--criu`; runc runs it as `criu swrk`).
 */
describe.skipIf(skipLab())('page-server migrations (real runc, CRIU, rsync)', () => {
  let t: LabCluster;
  let calls: string;

  beforeAll(async () => {
    t = await startLabCluster(['h1', 'h2'], [PROD]);
    // The wrapper logs its first argument and runs the real CRIU; its text is a constant but for
    // two paths this test made.
    const realCriu = execSync('command -v criu', { shell: '/bin/sh', encoding: 'utf8' }).trim();
    calls = join(t.stateDir, 'criu-calls.log');
    writeFileSync(calls, '');
    const wrapper = join(t.stateDir, 'criu-wrapper');
    writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$1" >> '${calls}'\nexec '${realCriu}' "$@"\n`);
    chmodSync(wrapper, 0o755);
    for (const h of ['h1', 'h2']) {
      const file = t.lab.host(h).agentConfigFile;
      writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), criuPath: wrapper }, null, 2));
      await t.cluster.supervisor.stop(t.cluster.agent(h)!);
      t.cluster.startAgent(h);
    }
    await t.cluster.waitForHostsUp(['h1', 'h2'], 30_000);
  });

  afterAll(async () => {
    await t?.close();
  });

  const { api, get, finished, running } = labApi(() => t);
  const other = (host: string) => (host === 'h1' ? 'h2' : 'h1');
  const counter = async (address: string) => (await workloadStats(t.lab, 'h2', address)).counter;

  const migrate = async (id: string, destination: string): Promise<MigrationRecord> => {
    const res = await api('POST', `/v1/workloads/${id}/migrate`, { destination, strategy: 'page-server' });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return finished(res.body.migration.id);
  };

  it('moves a workload on a local pool back and forth with page-server, every time, through the configured CRIU', async () => {
    const address = '10.77.0.81';
    const { hostId } = await running(workload('ps-local', address, 'local'));
    let at = hostId!;
    for (let round = 1; round <= 3; round++) {
      const done = await migrate('ps-local', other(at));
      expect(done.state, `round ${round}: ${JSON.stringify(done.error)}`).toBe('completed');
      expect(done.strategy).toBe('page-server');
      expect(done.transfer?.pageServerPort).not.toBeNull();
      at = other(at);
      expect(await get('ps-local')).toMatchObject({ hostId: at, epoch: 1 + round, phase: 'running' });
      // the same process, its memory intact: the counter goes on from where it was
      await talk(t.lab, 'h2', address, 'inc');
      expect(await counter(address)).toBe(round);
      await expectTimersFire(t.lab, 'h2', address);
    }
    const ran = readFileSync(calls, 'utf8').split('\n');
    expect(ran).toContain('page-server');
    expect(ran).toContain('swrk'); // runc's checkpoint and restore
  });

  it('moves a workload on the shared pool with page-server (its pages land in the shared images directory)', async () => {
    const address = '10.77.0.82';
    const { hostId } = await running(workload('ps-shared', address, 'shared'));
    for (let i = 0; i < 3; i++) await talk(t.lab, 'h2', address, 'inc');
    const done = await migrate('ps-shared', other(hostId!));
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    expect(done.transfer?.sharedRootfs).toBe(true);
    expect(await get('ps-shared')).toMatchObject({ hostId: other(hostId!), epoch: 2, phase: 'running' });
    expect(await counter(address)).toBe(3);
    await expectTimersFire(t.lab, 'h2', address);
  });
});
