/**
 * Fuzz of the agent's boundaries (issue 13, part 6): every command as NATS delivers it (a subject's
 * last part and raw bytes) through handleCommand, and the agent's config loader. A request that
 * passes its schema reaches a stub manager that records it; one that does not is a BAD_REQUEST
 * reply, never a throw and never a call.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENT_COMMANDS, AgentReply, agentRequestSchemas, type AgentCommand } from '@ferry/protocol';
import { ConfigError } from '@ferry/runtime';
import { AGENT_REQUEST_SAMPLES } from '../../../test/fuzz/samples.ts';
import { FuzzCounts, boundaryInput, fuzzConfigLoader, fuzzParams, jsonText, nastyString } from '../../../test/fuzz/kit.ts';
import { handleCommand } from './commands.ts';
import { AGENT_ENV, loadAgentConfig } from './config.ts';
import type { ContainerManager } from './containers/manager.ts';
import type { MigrationManager } from './migration/manager.ts';

const counts = new FuzzCounts();
const dir = mkdtempSync(join(tmpdir(), 'ferry-agent-fuzz-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  console.log(counts.table('agent fuzz'));
});

/** a manager whose every method answers at once and counts the call */
let calls = 0;
const stub = new Proxy(
  {},
  {
    get: () => async () => {
      calls += 1;
      return { stub: true };
    },
  },
);
const targets = { containers: stub as ContainerManager, migrations: stub as MigrationManager };

describe('agent boundaries under fuzz', () => {
  it('handleCommand: any bytes for any command are an ok reply after a valid request, else BAD_REQUEST naming the problem; never a throw', async () => {
    const command = fc.oneof({ arbitrary: fc.constantFrom<string>(...AGENT_COMMANDS), weight: 8 }, { arbitrary: nastyString, weight: 1 });
    const input = command.chain((c) =>
      fc.tuple(
        fc.constant(c),
        fc.oneof(
          { arbitrary: boundaryInput(Object.hasOwn(AGENT_REQUEST_SAMPLES, c) ? AGENT_REQUEST_SAMPLES[c as AgentCommand] : {}).map((v) => new TextEncoder().encode(jsonText(v))), weight: 6 },
          { arbitrary: fc.uint8Array({ maxLength: 300 }), weight: 2 },
          { arbitrary: fc.constantFrom(new Uint8Array(0), new Uint8Array(256 * 1024 + 1).fill(0x20), new Uint8Array([0xff, 0x00])), weight: 1 },
        ),
      ),
    );
    await fc.assert(
      fc.asyncProperty(input, async ([c, data]) => {
        const before = calls;
        const reply = await handleCommand(targets, c, data);
        expect(AgentReply.safeParse(reply).success).toBe(true);
        if (reply.ok) {
          // only a request its schema accepts reaches a manager
          expect(calls).toBe(before + 1);
          expect(agentRequestSchemas[c as AgentCommand].safeParse(JSON.parse(new TextDecoder().decode(data) || '{}')).success).toBe(true);
        } else {
          expect(calls).toBe(before);
          expect(reply.error.code).toBe('BAD_REQUEST');
          expect(reply.error.message.length).toBeGreaterThan(0);
        }
        counts.add(`handleCommand ${AGENT_COMMANDS.includes(c as AgentCommand) ? c : '(unknown)'}`, reply.ok);
      }),
      fuzzParams(800),
    );
  });

  it('loadAgentConfig: a config or a ConfigError naming each bad field and where it came from', () => {
    let n = 0;
    fuzzConfigLoader({
      name: 'loadAgentConfig',
      load: loadAgentConfig,
      isConfigError: (err): err is ConfigError => err instanceof ConfigError,
      validFile: {
        hostId: 'h1',
        address: '10.250.0.11',
        reportIntervalMs: 1000,
        pools: [{ id: 'local', path: '/var/lib/ferry/pools/local' }],
        networks: [{ name: 'prod', bridge: 'fbr-prod', subnet: '10.77.0.0/24' }],
      },
      baseEnv: { FERRY_NATS_SEED_FILE: '/s', FERRY_NATS_CA_FILE: '/c', FERRY_NATS_CERT_FILE: '/c', FERRY_NATS_KEY_FILE: '/k' },
      envNames: Object.keys(AGENT_ENV),
      write: (text) => {
        const file = join(dir, `agent-${n++}.json`);
        writeFileSync(file, text);
        return file;
      },
      counts,
      runs: 200,
    });
  });
});
