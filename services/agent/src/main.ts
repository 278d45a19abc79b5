import { parseArgs } from 'node:util';
import { z } from 'zod';
import { connectNats, createLogger, describeIssues, exitOnStartError, natsSettingsOf, runUntilStopped } from '@ferry/runtime';
import { agentIdentity } from '@ferry/protocol';
import { Agent } from './agent.ts';
import { loadAgentConfig } from './config.ts';
import { openHostRuntime, removeCgroupParent } from './host.ts';
import { stopGuard } from './guard/launcher.ts';

const log = createLogger('agent');

const Args = z.object({
  config: z.string().min(1).optional(),
  /** destroy every container this host's agent created, then exit (lab teardown, decommissioning) */
  'destroy-all': z.boolean().default(false),
});

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { config: { type: 'string', short: 'c' }, 'destroy-all': { type: 'boolean' } },
    strict: true,
  });
  const args = Args.safeParse(values);
  if (!args.success) throw new Error(`bad arguments: ${describeIssues(args.error).join('; ')}`);
  const config = loadAgentConfig(args.data.config ?? process.env.FERRY_AGENT_CONFIG);
  const hostLog = log.child({ hostId: config.hostId });
  const host = await openHostRuntime(config, hostLog);
  if (args.data['destroy-all']) {
    await stopGuard(config.dataDir);
    const migrations = await host.migrations.abandonAll();
    const count = await host.containers.destroyAll();
    await removeCgroupParent(config);
    hostLog.info({ count, migrations }, 'destroyed every container of this host');
    return;
  }
  const nc = await connectNats(natsSettingsOf(config, agentIdentity(config.hostId).name), hostLog);
  const agent = await Agent.start(config, hostLog, nc, host);
  runUntilStopped(hostLog, () => agent.stop());
}

main().catch((err: unknown) => exitOnStartError(log, err));
