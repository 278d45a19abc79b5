import { parseArgs } from 'node:util';
import { z } from 'zod';
import { connectNats, createLogger, describeIssues, exitOnStartError, runUntilStopped } from '@ferry/runtime';
import { Agent } from './agent.ts';
import { loadAgentConfig } from './config.ts';

const log = createLogger('agent');

const Args = z.object({ config: z.string().min(1).optional() });

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' } }, strict: true });
  const args = Args.safeParse(values);
  if (!args.success) throw new Error(`bad arguments: ${describeIssues(args.error).join('; ')}`);
  const config = loadAgentConfig(args.data.config ?? process.env.FERRY_AGENT_CONFIG);
  const hostLog = log.child({ hostId: config.hostId });
  const nc = await connectNats(config.natsUrl, `ferry-agent-${config.hostId}`, hostLog);
  const agent = await Agent.start(config, hostLog, nc);
  runUntilStopped(hostLog, () => agent.stop());
}

main().catch((err: unknown) => exitOnStartError(log, err));
