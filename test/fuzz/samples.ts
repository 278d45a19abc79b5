/**
 * Valid samples of the NATS messages whose mutations the fuzz tests send (see kit.ts). A command
 * without a sample here is still fuzzed with arbitrary values; add one when adding a command.
 */
import type { AgentCommand } from '@ferry/protocol';
import { sampleContainer } from '../fixtures/capacity.ts';

export const spec = {
  id: 'web-1',
  template: 'busybox',
  command: ['/bin/sh', '-c', 'sleep 1000'],
  env: ['A=1'],
  resources: { vcpus: 0.5, memoryMiB: 64, diskMiB: 128, pids: 64 },
  networks: [{ network: 'prod', address: '10.77.0.5' }],
  pool: 'shared',
  ha: { enabled: true, priority: 10 },
  labels: { tier: 'web', 'app.example/role': 'front' },
  placement: { affinity: ['a'], antiAffinity: ['b'], hosts: ['h1', 'h2'] },
};
const endpoint = { address: '10.250.0.12', rsyncPort: 8730, pageServerPort: 8731 };
const secret = 'S'.repeat(40);
const tls = { certPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----', keyPem: '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----' };
export const migrationId = 'm-web-1-abc123';

/** a valid agent request for every command (the scheduler's side of each NATS request) */
export const AGENT_REQUEST_SAMPLES: Partial<Record<AgentCommand, unknown>> = {
  'container.create': { spec, epoch: 1 },
  'container.start': { id: 'web-1', epoch: 2 },
  'container.stop': { id: 'web-1', graceMs: 5000 },
  'container.destroy': { id: 'web-1', keepRootfs: true },
  'container.status': { id: 'web-1' },
  'container.list': {},
  'container.thaw': { id: 'web-1' },
  'container.adopt': { spec, epoch: 3, fromHost: 'h1' },
  'container.suspend': { id: 'web-1', epoch: 2 },
  'container.resume': { spec, epoch: 3, suspendedOn: 'h1' },
  'migration.prepare': { migrationId, spec, epoch: 2, strategy: 'page-server', source: { hostId: 'h1', address: '10.250.0.11' }, secret, sharedRootfs: false },
  'migration.presync': { migrationId, destination: endpoint, secret, sharedRootfs: false },
  'migration.dump': { migrationId, strategy: 'lazy', destination: endpoint, sharedRootfs: true, tls },
  'migration.transfer': { migrationId, destination: endpoint, secret, sharedRootfs: false },
  'migration.restore': { migrationId, strategy: 'lazy', source: { address: '10.250.0.11', lazyPagesPort: 9000 } },
  'migration.resume': { migrationId },
  'migration.abort': { migrationId },
  'migration.finish': { migrationId, role: 'source', abandon: false },
};

export const status = sampleContainer('web-1');
export const AGENT_RESULT_SAMPLES: Partial<Record<AgentCommand, unknown>> = {
  'container.create': status,
  'container.start': status,
  'container.stop': status,
  'container.destroy': { id: 'web-1', destroyed: true },
  'container.status': status,
  'container.list': [status, sampleContainer('web-2')],
  'container.thaw': status,
  'container.adopt': status,
  'container.suspend': { hostId: 'h1', pool: 'shared', shared: true, imagesDir: '/mnt/s/containers/web-1/suspended', bytes: 20971520, at: 1, epoch: 2 },
  'container.resume': status,
  'migration.prepare': { address: '10.250.0.12', rsyncPort: 8730, pageServerPort: null, sharedRootfs: false, tls },
  'migration.presync': { bytes: 1000, ms: 12.5 },
  'migration.dump': { frozenAt: 1_700_000_000_000, dumpMs: 30, bytes: 0, lazyPagesPort: 9000 },
  'migration.transfer': { bytes: 1000, ms: 3 },
  'migration.restore': { restoredAt: 1_700_000_000_100, restoreMs: 40, status },
  'migration.resume': status,
  'migration.abort': { done: true, note: 'aborted' },
  'migration.finish': { done: true, lazyBytes: 10 },
};
