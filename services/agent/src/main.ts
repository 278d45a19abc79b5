import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { z } from 'zod';
import { connectNats, createLogger, describeIssues, exitOnStartError, natsSettingsOf, runUntilStopped } from '@ferry/runtime';
import { agentIdentity } from '@ferry/protocol';
import { Agent } from './agent.ts';
import { loadAgentConfig, loadAgentHostConfig } from './config.ts';
import { openHostRuntime, removeCgroupParent } from './host.ts';
import { stopGuard } from './guard/launcher.ts';
import { JoinOptions, joinCluster } from './join.ts';

const log = createLogger('agent');

const Args = z.object({
  config: z.string().min(1).optional(),
  /** destroy every container this host's agent created, then exit (lab teardown, decommissioning) */
  'destroy-all': z.boolean().default(false),
});

const JOIN_USAGE = `usage: ferry-agent join API_URL TOKEN [--host-id ID] [--address IP] [--config /etc/ferry/agent.json] [--secrets-dir /etc/ferry/agent] [--start]
  joins this host to a Ferry cluster with a one-time token from ferry-admin join-token`;

/** `ferry-agent join URL TOKEN`: this host gets its own identity and certificate (docs/install.md). */
async function join(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { 'host-id': { type: 'string' }, address: { type: 'string' }, config: { type: 'string' }, 'secrets-dir': { type: 'string' }, start: { type: 'boolean' } },
    strict: true,
  });
  if (positionals.length !== 2) throw new Error(`join needs the API URL and the token\n${JOIN_USAGE}`);
  const options = JoinOptions.safeParse({
    apiUrl: positionals[0],
    token: positionals[1],
    hostId: values['host-id'],
    address: values.address,
    configFile: values.config,
    secretsDir: values['secrets-dir'],
  });
  if (!options.success) throw new Error(`bad arguments: ${describeIssues(options.error).join('; ')}\n${JOIN_USAGE}`);
  const joined = await joinCluster(options.data);
  console.log(`joined as host ${joined.hostId} (NATS identity ${joined.identity}, ${joined.natsUrl}); config written to ${joined.configFile}`);
  if (values.start) {
    // only where systemd runs the machine; elsewhere the operator starts the unit's command line
    if (!existsSync('/run/systemd/system')) throw new Error('--start needs systemd (not running here): start the agent with: ferry-agent --config ' + joined.configFile);
    await execa('systemctl', ['enable', '--now', 'ferry-agent.service'], { stdio: 'inherit' });
    console.log('ferry-agent started (systemctl status ferry-agent)');
  } else {
    console.log('start it: systemctl enable --now ferry-agent');
  }
}

async function main(): Promise<void> {
  if (process.argv[2] === 'join') {
    // a command a person runs: plain messages, not the service's JSON log
    await join(process.argv.slice(3)).catch((err: unknown) => {
      console.error(`ferry-agent join: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    });
    return;
  }
  const { values } = parseArgs({
    options: { config: { type: 'string', short: 'c' }, 'destroy-all': { type: 'boolean' } },
    strict: true,
  });
  const args = Args.safeParse(values);
  if (!args.success) throw new Error(`bad arguments: ${describeIssues(args.error).join('; ')}`);
  const configFile = args.data.config ?? process.env.FERRY_AGENT_CONFIG;
  if (args.data['destroy-all']) {
    // decommissioning: the host's part of the config only (a host that never joined has no NATS identity)
    const config = loadAgentHostConfig(configFile);
    const hostLog = log.child({ hostId: config.hostId });
    const host = await openHostRuntime(config, hostLog);
    await stopGuard(config.dataDir);
    const migrations = await host.migrations.abandonAll();
    const count = await host.containers.destroyAll();
    await removeCgroupParent(config);
    hostLog.info({ count, migrations }, 'destroyed every container of this host');
    return;
  }
  const config = loadAgentConfig(configFile);
  const hostLog = log.child({ hostId: config.hostId });
  const host = await openHostRuntime(config, hostLog);
  const nc = await connectNats(natsSettingsOf(config, agentIdentity(config.hostId).name), hostLog);
  const agent = await Agent.start(config, hostLog, nc, host);
  runUntilStopped(hostLog, () => agent.stop());
}

main().catch((err: unknown) => exitOnStartError(log, err));
