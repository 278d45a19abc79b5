/**
 * The host simulator as its own process (bench only): `node --import tsx bench/sim/main.ts`.
 *
 *   SIM_NATS_URL       the cluster's NATS (tls://…)
 *   SIM_CONTROL_DIR    the control plane's secrets directory (the hosts' identities are admitted there)
 *   SIM_HOSTS          how many hosts (sim-00001 … by default), or SIM_HOST_IDS (comma-separated)
 *   SIM_REPORT_MS      report interval (default 1000)
 *   SIM_CONNECT_CONCURRENCY  connections opened at once (default 16)
 *   SIM_STORAGE_GROUP  hosts per storage group sharing one pool (default 0: none; see Simulator)
 *
 * Prints one JSON line per second on stdout: `{"type":"connecting",…}` while connecting, then
 * `{"type":"ready",…}` once every host is connected, then `{"type":"stats",…}` (SimulatorTotals,
 * its own RSS and CPU seconds). Stops on SIGTERM or SIGINT, or when stdin closes.
 *
 * Commands, one JSON line each on stdin, answered by one line on stdout with the same `ref`:
 *   {"cmd":"kill","ref":1,"hosts":["sim-00001"]}  → {"type":"killed","ref":1,"killedAt":…}
 *   {"cmd":"owners","ref":2,"ids":["w1"]}         → {"type":"owners","ref":2,"owners":{"w1":["sim-00007"]},"doubleOwners":[…]}
 */
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { Simulator, simHostIds } from './simulator.ts';

const Settings = z.object({
  SIM_NATS_URL: z.string().min(1),
  SIM_CONTROL_DIR: z.string().startsWith('/'),
  SIM_HOSTS: z.coerce.number().int().positive().max(100_000).optional(),
  SIM_HOST_IDS: z.string().optional(),
  SIM_REPORT_MS: z.coerce.number().int().min(100).default(1000),
  SIM_CONNECT_CONCURRENCY: z.coerce.number().int().min(1).max(1000).default(16),
  SIM_STORAGE_GROUP: z.coerce.number().int().min(0).max(4096).default(0),
});
const Command = z.discriminatedUnion('cmd', [
  z.object({ cmd: z.literal('kill'), ref: z.number(), hosts: z.array(z.string()) }),
  z.object({ cmd: z.literal('owners'), ref: z.number(), ids: z.array(z.string()).optional() }),
]);
const settings = Settings.parse(process.env);
const hostIds = settings.SIM_HOST_IDS ? settings.SIM_HOST_IDS.split(',') : simHostIds(settings.SIM_HOSTS ?? 10);

const sim = new Simulator({
  natsUrl: settings.SIM_NATS_URL,
  controlDir: settings.SIM_CONTROL_DIR,
  hostIds,
  reportIntervalMs: settings.SIM_REPORT_MS,
  connectConcurrency: settings.SIM_CONNECT_CONCURRENCY,
  storageGroupSize: settings.SIM_STORAGE_GROUP,
});
const line = (type: string, extra: object) => {
  const cpu = process.cpuUsage();
  process.stdout.write(`${JSON.stringify({ type, at: Date.now(), rssBytes: process.memoryUsage.rss(), cpuSeconds: (cpu.user + cpu.system) / 1e6, ...extra })}\n`);
};

let connected = 0;
const connecting = setInterval(() => line('connecting', { connected, hosts: hostIds.length }), 1000);
const started = Date.now();
const timers: { stats?: NodeJS.Timeout } = {};
let stopping = false;
const stop = async (code = 0) => {
  if (stopping) return;
  stopping = true;
  clearInterval(connecting);
  clearInterval(timers.stats);
  await sim.stop();
  process.exit(code);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
const commands = createInterface({ input: process.stdin });
commands.on('line', (text) => {
  void (async () => {
    const command = Command.parse(JSON.parse(text));
    if (command.cmd === 'kill') line('killed', { ref: command.ref, hosts: command.hosts, killedAt: await sim.kill(command.hosts) });
    else line('owners', { ref: command.ref, owners: Object.fromEntries(sim.owners(command.ids)), doubleOwners: sim.doubleOwners() });
  })().catch((err: unknown) => console.error(`simulator: command ${text.slice(0, 200)}: ${(err as Error).message}`));
});
commands.on('close', () => void stop());

try {
  await sim.start((n) => (connected = n));
} catch (err) {
  console.error(`simulator: ${(err as Error).message}`);
  await stop(1);
}
clearInterval(connecting);
line('ready', { hosts: hostIds.length, connectMs: Date.now() - started });
timers.stats = setInterval(() => line('stats', sim.totals()), 1000);
