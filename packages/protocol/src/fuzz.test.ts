/**
 * Property-based fuzz of every zod schema @ferry/protocol exports (issue 13, part 6): the NATS
 * messages (capacity reports, lease acknowledgements, agent commands and replies, events), the
 * BullMQ job payloads, the API's bodies, params and queries, and the records kept in Redis. See
 * test/fuzz/kit.ts for the contract checked on every input and for FUZZ_SEED / FUZZ_RUNS.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { sampleReport } from '../../../test/fixtures/capacity.ts';
import { AGENT_REQUEST_SAMPLES, AGENT_RESULT_SAMPLES, migrationId, spec, status } from '../../../test/fuzz/samples.ts';
import { FuzzCounts, boundaryInput, checkSchema, fuzzParams, nastyValue, transforms } from '../../../test/fuzz/kit.ts';
import * as protocol from './index.ts';
import {
  AgentReply,
  CapacityReport,
  CreateJoinTokenRequest,
  CreateTokenRequest,
  FailoverEvent,
  FailoverJobData,
  HostStateEvent,
  JoinRequest,
  LeaseAck,
  MaintenanceRequest,
  MigrateRequest,
  MigrationEvent,
  MigrationJobData,
  MigrationProgressEvent,
  PlanJobData,
  RebalanceRequest,
  WorkloadEvent,
  WorkloadJobData,
  WorkloadSpec,
  agentRequestSchemas,
  agentResultSchemas,
  AGENT_COMMANDS,
} from './index.ts';

const counts = new FuzzCounts();
afterAll(() => console.log(counts.table('protocol fuzz')));

/** the boundaries, each with a valid sample whose mutations are fuzzed */
const BOUNDARIES: Array<[string, z.ZodType, unknown]> = [
  // NATS: agents → scheduler, scheduler → agents
  ['nats CapacityReport', CapacityReport, sampleReport('h1', { containerCount: 2, fencing: [{ id: 'f1', at: 1, action: 'stop', containers: ['w0'], lateMs: 3, by: 'guard' }] })],
  ['nats LeaseAck', LeaseAck, { seq: 4, leaseMs: 5000, superseded: [{ id: 'web-1', owner: 'h2', epoch: 3 }] }],
  ['nats AgentReply ok', AgentReply, { ok: true, result: status }],
  ['nats AgentReply error', AgentReply, { ok: false, error: { code: 'BUSY', message: 'busy', details: { a: 1 } } }],
  ...AGENT_COMMANDS.filter((c) => c in AGENT_REQUEST_SAMPLES).map((c): [string, z.ZodType, unknown] => [`nats request ${c}`, agentRequestSchemas[c], AGENT_REQUEST_SAMPLES[c]]),
  ...AGENT_COMMANDS.filter((c) => c in AGENT_RESULT_SAMPLES).map((c): [string, z.ZodType, unknown] => [`nats result ${c}`, agentResultSchemas[c], AGENT_RESULT_SAMPLES[c]]),
  // NATS: events
  ['nats HostStateEvent', HostStateEvent, { type: 'host.state', hostId: 'h1', from: 'up', to: 'suspect', at: 1, silentForMs: 3000 }],
  ['nats WorkloadEvent', WorkloadEvent, { type: 'workload.phase', workloadId: 'web-1', phase: 'running', hostId: 'h1', at: 1, jobId: 'web-1.start.x', reason: 'r' }],
  [
    'nats MigrationEvent',
    MigrationEvent,
    {
      type: 'migration.phase',
      migrationId,
      workloadId: 'web-1',
      state: 'running',
      phase: 'freeze',
      status: 'started',
      at: 1,
      ms: null,
      bytes: { sent: 1, total: 2 },
      strategy: 'lazy',
      source: 'h1',
      destination: 'h2',
    },
  ],
  ['nats MigrationProgressEvent', MigrationProgressEvent, { type: 'migration.progress', migrationId, workloadId: 'web-1', phase: 'presync', bytes: 10, percent: 50, at: 1 }],
  ['nats FailoverEvent', FailoverEvent, { type: 'failover.updated', at: 1, failover: {} }],
  // BullMQ job payloads
  ['job WorkloadJobData', WorkloadJobData, { workloadId: 'web-1', requestedAt: 1_700_000_000_000, graceMs: 1000 }],
  ['job MigrationJobData', MigrationJobData, { migrationId }],
  ['job PlanJobData', PlanJobData, { planId: 'p-rebalance-abc' }],
  ['job FailoverJobData', FailoverJobData, { failoverId: 'f-h1-abc' }],
  // API bodies (params and queries: services/api/src/fuzz.test.ts, through the routes' own parser)
  ['api body WorkloadSpec', WorkloadSpec, spec],
  ['api body MigrateRequest', MigrateRequest, { destination: 'h2', mode: 'live', strategy: 'page-server' }],
  ['api body RebalanceRequest', RebalanceRequest, { maxMoves: 5, minGain: 0.1, cooldownMinutes: 1 }],
  ['api body MaintenanceRequest', MaintenanceRequest, { reason: 'kernel update', mode: 'binpack' }],
  ['api body CreateTokenRequest', CreateTokenRequest, { name: 'ci-bot', role: 'operator' }],
  ['api body CreateJoinTokenRequest', CreateJoinTokenRequest, { ttlSeconds: 600 }],
  ['api body JoinRequest', JoinRequest, { token: `0123456789ab.${'A'.repeat(32)}.${'B'.repeat(43)}`, hostId: 'h9', publicKey: `U${'A'.repeat(55)}`, csr: 'C'.repeat(200), address: '10.250.0.19' }],
];

describe('protocol boundaries under fuzz', () => {
  it('every sample is valid (so its mutations start from something accepted)', () => {
    const bad = BOUNDARIES.filter(([name, schema, sample]) => !name.includes('FailoverEvent') && !schema.safeParse(sample).success);
    expect(bad.map(([name, schema, sample]) => `${name}: ${JSON.stringify(schema.safeParse(sample).error?.issues)}`)).toEqual([]);
  });

  it.each(BOUNDARIES)('%s: mutated samples and arbitrary values are accepted or refused with named issues, never a throw', (name, schema, sample) => {
    const transforming = transforms(schema);
    fc.assert(
      fc.property(boundaryInput(sample), (input) => {
        counts.add(name, checkSchema(schema, input, transforming).ok);
      }),
      fuzzParams(120),
    );
  });

  it('every exported schema (records in Redis included) survives arbitrary values', () => {
    const schemas = (Object.entries(protocol) as Array<[string, unknown]>).filter((entry): entry is [string, z.ZodType] => entry[1] instanceof z.ZodType);
    expect(schemas.length).toBeGreaterThan(100);
    for (const [name, schema] of schemas) {
      const transforming = transforms(schema);
      fc.assert(
        fc.property(fc.oneof(fc.jsonValue({ maxDepth: 4 }), nastyValue, fc.anything({ maxDepth: 3, withNullPrototype: true, withBigInt: true, withMap: true })), (input) => {
          counts.add(`any ${name}`, checkSchema(schema, input, transforming).ok);
        }),
        fuzzParams(25),
      );
    }
  });

  it('a "__proto__" key from the wire never becomes a prototype: records drop it, strict objects refuse it', () => {
    const polluted = JSON.parse(`{"tier":"web","__proto__":{"isAdmin":true}}`);
    const labels = WorkloadSpec.parse({ ...spec, labels: polluted }).labels as Record<string, unknown>;
    expect(Object.keys(labels)).toEqual(['tier']);
    expect(labels.isAdmin).toBeUndefined();
    expect(Object.getPrototypeOf(labels)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
    const stats = protocol.CapacityStats.safeParse(JSON.parse('{"accepted":1,"rejected":{"__proto__":{"SCHEMA":1}}}'));
    expect(stats.error?.issues.map((i) => i.path.join('.'))).toContain('rejected.SCHEMA');
    const strict = WorkloadSpec.safeParse(JSON.parse(`{"__proto__":{"id":"x"},${JSON.stringify(spec).slice(1)}`));
    expect(strict.error?.issues).toMatchObject([{ code: 'unrecognized_keys', keys: ['__proto__'] }]);
  });
});
