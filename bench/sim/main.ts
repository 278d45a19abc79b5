/**
 * The host simulator as its own process (bench only): `node --import tsx bench/sim/main.ts`.
 *
 *   SIM_NATS_URL       the cluster's NATS (tls://…)
 *   SIM_CONTROL_DIR    the control plane's secrets directory (the hosts' identities are admitted there)
 *   SIM_HOSTS          how many hosts (sim-00001 … by default), or SIM_HOST_IDS (comma-separated)
 *   SIM_REPORT_MS      report interval (default 1000)
 *   SIM_CONNECT_CONCURRENCY  connections opened at once (default 16)
 *
 * Prints one JSON line per second on stdout: `{"type":"connecting",…}` while connecting, then
 * `{"type":"ready",…}` once every host is connected, then `{"type":"stats",…}` (SimulatorTotals,
 * its own RSS and CPU seconds). Stops on SIGTERM or SIGINT, or when stdin closes.
 */
import { z } from 'zod';
import { Simulator, simHostIds } from './simulator.ts';

const Settings = z.object({
  SIM_NATS_URL: z.string().min(1),
  SIM_CONTROL_DIR: z.string().startsWith('/'),
  SIM_HOSTS: z.coerce.number().int().positive().max(100_000).optional(),
  SIM_HOST_IDS: z.string().optional(),
  SIM_REPORT_MS: z.coerce.number().int().min(100).default(1000),
  SIM_CONNECT_CONCURRENCY: z.coerce.number().int().min(1).max(1000).default(16),
});
const settings = Settings.parse(process.env);
const hostIds = settings.SIM_HOST_IDS ? settings.SIM_HOST_IDS.split(',') : simHostIds(settings.SIM_HOSTS ?? 10);

const sim = new Simulator({
  natsUrl: settings.SIM_NATS_URL,
  controlDir: settings.SIM_CONTROL_DIR,
  hostIds,
  reportIntervalMs: settings.SIM_REPORT_MS,
  connectConcurrency: settings.SIM_CONNECT_CONCURRENCY,
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
process.stdin.on('end', () => void stop());
process.stdin.resume();

try {
  await sim.start((n) => (connected = n));
} catch (err) {
  console.error(`simulator: ${(err as Error).message}`);
  await stop(1);
}
clearInterval(connecting);
line('ready', { hosts: hostIds.length, connectMs: Date.now() - started });
timers.stats = setInterval(() => line('stats', sim.totals()), 1000);
