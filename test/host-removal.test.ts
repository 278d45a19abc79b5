import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { repoRoot, serviceEntry } from '@ferry/deploy';
import type { HostHistoryEntry, HostListResponse, HostView, WorkloadSpecInput, WorkloadView } from '@ferry/protocol';
import { eventually, http } from './helpers/cluster.ts';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';

const workload = (id: string, address: string): WorkloadSpecInput => ({
  id,
  template: 'busybox',
  command: ['/usr/bin/ferry-workload', '--mem', '16', '--port', '7000'],
  resources: { vcpus: 0.25, memoryMiB: 64, diskMiB: 256 },
  networks: [{ network: PROD.name, address }],
  pool: 'local',
  placement: { hosts: ['h3'] },
});

describe.skipIf(skipLab())('removing a dead host (real agents in lab hosts)', () => {
  let t: LabCluster;

  beforeAll(async () => {
    t = await startLabCluster(['h1', 'h2', 'h3'], [PROD]);
  });

  afterAll(async () => {
    await t?.close();
  });

  const api = (method: string, path: string, body?: unknown) => http(`${t.cluster.apiUrl}${path}`, { token: t.cluster.token, method, body });
  const host = (id: string) => t.cluster.get<HostView>(`/v1/hosts/${id}`);
  const containerRecord = (hostId: string, id: string) => join(t.lab.host(hostId).dir, 'data', 'containers', id);
  // the CLI with this lab's API (no context file)
  const ferry = (args: string[]) =>
    execa(join(repoRoot, 'packages', 'cli', 'bin', 'ferry'), args, { reject: false, cwd: repoRoot, env: { FERRY_API_URL: t.cluster.apiUrl, FERRY_API_TOKEN: t.cluster.token } });

  it('refuses while the host is up or owns workloads, records its workloads lost with force, revokes its identity until it joins again', async () => {
    for (const [id, address] of [
      ['keeper', '10.77.0.91'],
      ['goner', '10.77.0.92'],
    ] as const) {
      const res = await api('POST', '/v1/workloads', workload(id, address));
      expect(res.status, JSON.stringify(res.body)).toBe(202);
    }
    for (const id of ['keeper', 'goner']) {
      await eventually(
        `${id} running on h3`,
        async () => {
          const w = await t.cluster.get<WorkloadView>(`/v1/workloads/${id}`);
          return w.phase === 'running' && w.hostId === 'h3' && w.observed?.state === 'running';
        },
        30_000,
      );
    }

    // bad input: a clear error, nothing changed
    expect((await api('DELETE', '/v1/hosts/nope')).status).toBe(404);
    const badQuery = await api('DELETE', '/v1/hosts/h3?force=maybe');
    expect(badQuery.status).toBe(400);
    expect(badQuery.body.message).toContain('force');
    const up = await api('DELETE', '/v1/hosts/h1?force=true');
    expect(up.status).toBe(409);
    expect(up.body.message).toContain('only a host that is down can be removed');
    expect((await api('POST', '/v1/hosts/h1/admit')).status).toBe(409);

    // h3 dies: agent, fence guard and containers
    await t.cluster.supervisor.stop(t.cluster.agent('h3')!, 0);
    await t.lab.killHostProcesses('h3');
    await eventually('h3 down', async () => (await host('h3')).state === 'down', 30_000);

    // a non-HA workload on a dead host can be deleted: its record goes at once
    const del = await api('DELETE', '/v1/workloads/goner');
    expect(del.status, JSON.stringify(del.body)).toBe(202);
    await eventually('goner deleted', async () => (await api('GET', '/v1/workloads/goner')).status === 404, 30_000);

    // without force: refused, listing what it owns (API and CLI: exit 5, refused as the cluster stands)
    const owns = await api('DELETE', '/v1/hosts/h3');
    expect(owns.status).toBe(409);
    expect(owns.body.details.workloads).toEqual([{ id: 'keeper', phase: 'running' }]);
    const refused = await ferry(['hosts', 'remove', 'h3']);
    expect(refused.exitCode, refused.stderr).toBe(5);
    expect(refused.stderr).toContain('keeper');
    expect((await t.cluster.get<WorkloadView>('/v1/workloads/keeper')).hostId).toBe('h3'); // nothing changed

    const removedRun = await ferry(['hosts', 'remove', 'h3', '--force', '-o', 'json']);
    expect(removedRun.exitCode, removedRun.stderr).toBe(0);
    const removed = { body: JSON.parse(removedRun.stdout) as { removed: unknown } };
    expect(removed.body.removed).toMatchObject({ hostId: 'h3', force: true, lost: ['keeper'], wasState: 'down' });
    expect(await t.cluster.get<WorkloadView>('/v1/workloads/keeper')).toMatchObject({ phase: 'lost', hostId: null, error: { code: 'HOST_REMOVED' } });
    expect((await host('h3')).state).toBe('removed');
    expect((await t.cluster.get<HostListResponse>('/v1/hosts?state=removed')).hosts.map((h) => h.id)).toEqual(['h3']);
    expect((await api('DELETE', '/v1/hosts/h3?force=true')).status).toBe(409); // already removed

    // its NATS identity went with it: its credentials stop working (test/join.test.ts tries them)
    expect((removed.body as { identityRevoked?: boolean }).identityRevoked).toBe(true);
    expect(t.cluster.secrets.has('agent-h3')).toBe(false);
    expect(existsSync(containerRecord('h3', 'keeper'))).toBe(true); // nothing touched its copies meanwhile

    // it comes back by joining again with a new token: its reports count again, and
    // reconciliation discards the copies the cluster gave up
    const token = (await api('POST', '/v1/join-tokens', {})).body.token as string;
    const labHost = t.lab.host('h3');
    const joined = await execa(
      process.execPath,
      ['--import', 'tsx', serviceEntry('agent'), 'join', t.cluster.apiUrl, token, '--host-id', 'h3', '--config', labHost.agentConfigFile, '--secrets-dir', join(labHost.dir, 'secrets')],
      {
        cwd: repoRoot,
        reject: false,
      },
    );
    expect(joined.exitCode, joined.stderr).toBe(0);
    t.cluster.startAgent('h3');
    await t.cluster.waitForHostsUp(['h3'], 30_000);
    await eventually('the lost and the deleted copies discarded', async () => !existsSync(containerRecord('h3', 'keeper')) && !existsSync(containerRecord('h3', 'goner')), 60_000);
    const history = (await t.cluster.get<{ history: HostHistoryEntry[] }>('/v1/hosts/h3/history')).history;
    expect(history.map((e) => e.kind)).toEqual(expect.arrayContaining(['removed', 'admitted', 'stale-copy']));
    expect((await api('POST', '/v1/hosts/h3/admit')).status).toBe(409); // not removed any more

    // a lost workload can be deleted too
    expect((await api('DELETE', '/v1/workloads/keeper')).status).toBe(202);
    await eventually('keeper deleted', async () => (await api('GET', '/v1/workloads/keeper')).status === 404, 30_000);
  }, 180_000);
});
