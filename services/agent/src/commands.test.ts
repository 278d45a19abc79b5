import { describe, expect, it } from 'vitest';
import { handleCommand } from './commands.ts';
import type { ContainerManager } from './containers/manager.ts';
import type { MigrationManager } from './migration/manager.ts';

// Every request below is refused at the boundary, before any container operation could run.
const untouchable = new Proxy(
  {},
  {
    get: () => {
      throw new Error('the manager must not be reached');
    },
  },
);
const targets = { containers: untouchable as ContainerManager, migrations: untouchable as MigrationManager };
const send = (command: string, body: unknown) => handleCommand(targets, command, typeof body === 'string' ? new TextEncoder().encode(body) : new TextEncoder().encode(JSON.stringify(body)));

describe('agent command boundary', () => {
  it.each([
    ['an unknown command', 'container.explode', {}, /unknown command/],
    ['a body that is not JSON', 'container.start', '{"id":', /not JSON/],
    ['a missing id', 'container.start', {}, /id/],
    ['a hostile id', 'container.stop', { id: '../../etc' }, /id/],
    ['an unknown field', 'container.status', { id: 'w1', sudo: true }, /sudo/],
    ['a create without epoch', 'container.create', { spec: { id: 'w1' } }, /epoch/],
    ['a migration id that is no id', 'migration.resume', { migrationId: 'm-../../x' }, /migrationId/],
    ['a short secret', 'migration.presync', { migrationId: 'm-w1-abc', destination: { address: '10.0.0.1', rsyncPort: 873, pageServerPort: null }, secret: 'x', sharedRootfs: false }, /secret/],
    ['an oversized request', 'container.start', { id: 'w1', pad: 'x'.repeat(300_000) }, /too large/],
  ])('refuses %s with BAD_REQUEST', async (_what, command, body, message) => {
    const reply = await send(command, body);
    expect(reply.ok).toBe(false);
    if (!reply.ok) {
      expect(reply.error.code).toBe('BAD_REQUEST');
      expect(reply.error.message).toMatch(message);
    }
  });
});
