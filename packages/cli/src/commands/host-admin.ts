import type { Command } from 'commander';
import type { AdmitHostResponse, RemoveHostResponse } from '@ferry/protocol';
import { print } from '../output.ts';
import type { Session } from '../session.ts';

/**
 * `ferry hosts remove HOST [--force]` and `ferry hosts admit HOST`: a dead host out of the cluster
 * and back (DELETE /v1/hosts/:id, POST /v1/hosts/:id/admit; docs/operations.md). Added under the
 * `hosts` group that readCommands made.
 */
export function hostAdminCommands(program: Command, session: () => Session): void {
  const hosts = program.commands.find((c) => c.name() === 'hosts') ?? program.command('hosts').description('hosts, their state and capacity');
  hosts
    .command('remove <host>')
    .description('remove a host that is down; refused while it owns workloads unless --force')
    .option('--force', 'the host is gone for good: record its workloads as lost; its identity is revoked until it joins again')
    .action(async (host: string, options: { force?: boolean }) => {
      const s = session();
      const query = options.force ? '?force=true' : '';
      const data = await s.api.request<RemoveHostResponse>('DELETE', `/v1/hosts/${encodeURIComponent(host)}${query}`);
      if (s.format === 'table') {
        const lost = data.removed.lost;
        const back = data.identityRevoked
          ? `its NATS identity is revoked: it comes back by joining again (ferry-admin join-token, then ferry-agent join on the host)`
          : `ferry hosts admit ${host} lets it back`;
        process.stdout.write(`${host}: removed${lost.length ? `; recorded lost: ${lost.join(', ')}` : ''} (${back})\n`);
      } else print(s.format, data, [], []);
    });
  hosts
    .command('admit <host>')
    .description("let a removed host's reports count again (a host whose identity was revoked joins again instead)")
    .action(async (host: string) => {
      const s = session();
      const data = await s.api.request<AdmitHostResponse>('POST', `/v1/hosts/${encodeURIComponent(host)}/admit`);
      if (s.format === 'table') process.stdout.write(`${host}: admitted; its reports count again\n`);
      else print(s.format, data, [], []);
    });
}
