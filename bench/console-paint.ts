/**
 * The console's first paint at scale (issue 18, part 2): the local control plane (LocalCluster),
 * the host simulator (bench/sim/main.ts) with N hosts, W workloads created through the API and
 * running on them, then headless Chromium opening the console R times, each in a fresh context
 * (no cache): the time from navigation to the host cards and the first page of workloads drawn,
 * and the same to a filtered view (one host's workloads). Prints p50/p99 and the bytes the page
 * read. Nothing asserted: it only measures. `node --import tsx bench/console-paint.ts`, as root,
 * under the lab lock (`flock /tmp/ferry-lab.lock …`).
 *
 *   BENCH_CONSOLE_HOSTS      simulated hosts (default 500)
 *   BENCH_CONSOLE_WORKLOADS  workloads created (default 5000)
 *   BENCH_CONSOLE_PAINTS     page loads measured (default 10)
 *   BENCH_CONSOLE_DIR        state directory (default /var/tmp/ferry-bench-console; secrets/ kept)
 *   BENCH_CONSOLE_CREATE_CONCURRENCY  creates in flight at once, all through the API (default 16)
 *   BENCH_CONSOLE_SETTLE_S   longest wait for placement to settle before measuring anyway (default 300)
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { z } from 'zod';
import { chromium } from 'playwright-core';
import { LocalCluster, repoRoot } from '@ferry/deploy';
import { agentIdentity } from '@ferry/protocol';
import { createLogger } from '@ferry/runtime';
import { ControlPlaneSecrets } from '@ferry/security';
import { simHostIds } from './sim/simulator.ts';
import { percentile, pool } from './scale-steps.ts';

const Settings = z.object({
  BENCH_CONSOLE_HOSTS: z.coerce.number().int().positive().max(20_000).default(500),
  BENCH_CONSOLE_WORKLOADS: z.coerce.number().int().nonnegative().max(200_000).default(5000),
  BENCH_CONSOLE_PAINTS: z.coerce.number().int().positive().max(100).default(10),
  BENCH_CONSOLE_DIR: z.string().startsWith('/').default('/var/tmp/ferry-bench-console'),
  BENCH_CONSOLE_CREATE_CONCURRENCY: z.coerce.number().int().positive().max(256).default(16),
  BENCH_CONSOLE_SETTLE_S: z.coerce.number().int().nonnegative().max(3600).default(300),
});
const CHROMIUM = '/usr/lib/chromium/chromium';

const settings = Settings.parse(process.env);
const n = settings.BENCH_CONSOLE_HOSTS;
const dir = settings.BENCH_CONSOLE_DIR;
const hostIds = simHostIds(n);
const log = createLogger('bench').child({}, { level: 'warn' });
if (existsSync(dir)) for (const entry of readdirSync(dir)) if (entry !== 'secrets') rmSync(join(dir, entry), { recursive: true, force: true });
const secretsDir = join(dir, 'secrets');
const secrets = await ControlPlaneSecrets.create(secretsDir, ['127.0.0.1']);
await pool(
  hostIds.filter((h) => !secrets.has(agentIdentity(h).name)),
  Math.max(2, cpus().length * 2),
  async (h) => void (await secrets.admit(agentIdentity(h))),
);
const cluster = new LocalCluster({ stateDir: dir, log, hostIds, persistentRedis: false, policyEnv: { FERRY_HA_ADMISSION: 'false' } });
let sim: ReturnType<typeof execa> | null = null;
/** `/v1/workloads/w-000123` → `/v1/workloads/:id` (the reads of single workloads the event stream causes) */
const routeOf = (path: string) => path.replace(/^\/v1\/(workloads|hosts)\/[^/]+$/, '/v1/$1/:id');
/** the 1, 5 and 15 min load averages */
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const request = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${cluster.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${cluster.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
try {
  await cluster.start();
  sim = execa(process.execPath, ['--import', 'tsx', join(repoRoot, 'bench', 'sim', 'main.ts')], {
    cwd: repoRoot,
    env: { SIM_NATS_URL: cluster.natsUrl, SIM_CONTROL_DIR: secretsDir, SIM_HOSTS: String(n), SIM_REPORT_MS: '1000', SIM_CONNECT_CONCURRENCY: '32' },
    stdin: 'pipe',
    stderr: 'inherit',
    buffer: false,
    reject: false,
  });
  await new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: sim!.stdout! });
    lines.on('line', (text) => {
      if (text.includes('"type":"ready"')) resolve();
    });
    lines.on('close', () => reject(new Error('the simulator exited')));
  });
  console.error(`simulator: ${n} hosts connected`);
  for (;;) {
    const up = await request('GET', '/v1/hosts?state=up&limit=1000');
    if ((up.body.hosts as unknown[]).length >= Math.min(n, 1000)) break;
    await sleep(1000);
  }
  const created = Date.now();
  let done = 0;
  await pool(
    Array.from({ length: settings.BENCH_CONSOLE_WORKLOADS }, (_, i) => `w-${String(i).padStart(6, '0')}`),
    settings.BENCH_CONSOLE_CREATE_CONCURRENCY,
    async (id) => {
      const i = Number(id.slice(2));
      const answer = await request('POST', '/v1/workloads', {
        id,
        template: 'busybox',
        command: ['/bin/sleep', 'infinity'],
        resources: { vcpus: 0.01, memoryMiB: 8, diskMiB: 8 },
        pool: 'local',
        labels: { tier: ['web', 'db', 'cache'][i % 3]! },
      });
      if (answer.status !== 202) throw new Error(`create ${id}: ${answer.status} ${JSON.stringify(answer.body)}`);
      if (++done % 1000 === 0) console.error(`workloads: ${done} requested (${((Date.now() - created) / 1000).toFixed(0)} s)`);
    },
  );
  // measured once placement settled (no workload pending): the paint of a cluster at rest, not one placing 5,000 workloads
  const createdS = (Date.now() - created) / 1000;
  console.error(`workloads: ${settings.BENCH_CONSOLE_WORKLOADS} accepted in ${createdS.toFixed(0)} s (${(settings.BENCH_CONSOLE_WORKLOADS / createdS).toFixed(0)}/s, load ${load()})`);
  const settleStarted = Date.now();
  /** whether any workload is in this phase: a filtered page examines ~5,000 records, so every page is walked */
  const anyIn = async (phase: string) => {
    let cursor: string | null = null;
    do {
      const page = await request('GET', `/v1/workloads?phase=${phase}&limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      if ((page.body.workloads as unknown[]).length > 0) return true;
      cursor = page.body.nextCursor as string | null;
    } while (cursor);
    return false;
  };
  let settled = true;
  while ((await anyIn('pending')) || (await anyIn('creating'))) {
    if (Date.now() - settleStarted > settings.BENCH_CONSOLE_SETTLE_S * 1000) {
      settled = false;
      console.error(`placement did not settle in ${settings.BENCH_CONSOLE_SETTLE_S} s: measuring anyway`);
      break;
    }
    await sleep(2000);
  }
  if (settled) console.error(`placement settled ${((Date.now() - created) / 1000).toFixed(0)} s after the first create`);

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  /** what the page read, by route (over every load) */
  const byPath = new Map<string, { bytes: number; n: number }>();
  const measure = async (hash: string, ready: string) => {
    const times: number[] = [];
    let bytes = 0;
    /** each API request's time (request sent → response end, Chromium's own timing) and size, by route and query */
    const requests = new Map<string, { ms: number[]; bytes: number[] }>();
    const loadBefore = load();
    /** per load: when (ms after navigation start) each part of the first paint was there */
    const phases: Array<Record<string, number>> = [];
    for (let k = 0; k < settings.BENCH_CONSOLE_PAINTS; k++) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
      const page = await context.newPage();
      let read = 0;
      page.on('response', (r) => {
        if (!r.url().includes('/v1/') || r.url().includes('/v1/events')) return;
        void r.body().then(
          (b) => {
            read += b.length;
            const url = new URL(r.url());
            // the query's names without their values, one workload's reads as one: a line per kind of request
            const kind = `${routeOf(url.pathname)}?${[...url.searchParams.keys()].join('&')}`;
            const sample = requests.get(kind) ?? { ms: [], bytes: [] };
            const timing = r.request().timing();
            sample.ms.push(timing.responseEnd >= 0 ? timing.responseEnd : NaN);
            sample.bytes.push(b.length);
            requests.set(kind, sample);
            const path = routeOf(new URL(r.url()).pathname);
            const entry = byPath.get(path) ?? { bytes: 0, n: 0 };
            byPath.set(path, { bytes: entry.bytes + b.length, n: entry.n + 1 });
          },
          () => undefined,
        );
      });
      await page.addInitScript(`localStorage.setItem('ferry-token', ${JSON.stringify(cluster.token)})`);
      const started = Date.now();
      await page.goto(`${cluster.apiUrl}/ui/${hash}`);
      await page.locator(ready).first().waitFor({ timeout: 60_000 });
      await page.locator('#hosts [data-host]').first().waitFor({ timeout: 60_000 });
      times.push(Date.now() - started);
      // where the load's time went, from the page's own clock (0: navigation start): the page and
      // its modules, then the API's answers the first paint waits for
      phases.push(
        (await page.evaluate(`(() => {
          const nav = performance.getEntriesByType('navigation')[0];
          const res = performance.getEntriesByType('resource');
          const ui = res.filter((r) => r.name.includes('/ui/'));
          const api = res.filter((r) => r.name.includes('/v1/') && !r.name.includes('/v1/events'));
          const end = (part) => Math.max(0, ...api.filter((r) => r.name.includes(part)).map((r) => r.responseEnd));
          return {
            html: nav.responseEnd,
            modules: Math.max(nav.responseEnd, ...ui.map((r) => r.responseEnd)),
            firstApi: Math.min(...api.map((r) => r.startTime)),
            access: Math.max(end('/v1/whoami'), end('/v1/openapi')),
            hosts: end('/v1/hosts?'),
            workloads: end('/v1/workloads?'),
            drawn: performance.now(),
          };
        })()`)) as Record<string, number>,
      );
      await sleep(300);
      bytes += read;
      await context.close();
    }
    const slowest = [...requests]
      .map(([kind, e]) => ({
        kind,
        n: e.ms.length / settings.BENCH_CONSOLE_PAINTS,
        p50: percentile(e.ms, 50),
        p99: percentile(e.ms, 99),
        kib: e.bytes.reduce((a, b) => a + b, 0) / e.bytes.length / 1024,
      }))
      .sort((a, b) => b.p99 - a.p99);
    return {
      p50: percentile(times, 50),
      p99: percentile(times, 99),
      min: Math.min(...times),
      max: Math.max(...times),
      kib: Math.round(bytes / settings.BENCH_CONSOLE_PAINTS / 1024),
      load: `${loadBefore} → ${load()}`,
      slowest,
      phases: Object.fromEntries(
        Object.keys(phases[0] ?? {}).map((k) => [
          k,
          percentile(
            phases.map((p) => p[k]!),
            50,
          ),
        ]),
      ),
    };
  };
  const running = await request('GET', '/v1/workloads?phase=running&limit=1');
  const hostOfFirst = ((running.body.workloads as Array<{ hostId: string }>)[0] ?? { hostId: hostIds[0] }).hostId;
  const overview = await measure('', '#workloads tr[data-workload]');
  const filtered = await measure(`#/?host=${hostOfFirst}`, '#workloads tr[data-workload]');
  const labelled = await measure('#/?label=tier%3Ddb&phase=running', '#workloads tr[data-workload]');
  await browser.close();
  const row = (what: string, r: typeof overview) => `| ${what} | ${r.p50} / ${r.p99} ms | ${r.min}–${r.max} ms | ${r.kib} KiB | ${r.load} |`;
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`;
  console.log(
    `\nConsole first paint: ${n} simulated hosts, ${settings.BENCH_CONSOLE_WORKLOADS} workloads (${createdS.toFixed(0)} s to create through the API, ${settled ? 'placement settled' : 'placement NOT settled'}), ${settings.BENCH_CONSOLE_PAINTS} loads each (fresh browser context); ${machine}, shared with other work\n`,
  );
  console.log('| view | p50 / p99 | min–max | read per load (API JSON) | load average (1/5/15 min) before → after |');
  console.log('|---|---|---|---|---|');
  console.log(row('overview (48 host cards, 100 workloads)', overview));
  console.log(row(`one host's workloads (#/?host=${hostOfFirst})`, filtered));
  console.log(row('label and phase filter (tier=db, running)', labelled));
  for (const [what, r] of [
    ['overview', overview],
    ['one host', filtered],
    ['label and phase', labelled],
  ] as const) {
    console.log(
      `\n${what}: p50 ms after navigation start — ${Object.entries(r.phases)
        .map(([k, v]) => `${k} ${v.toFixed(0)}`)
        .join(', ')}`,
    );
    console.log(`${what}: API requests per load, slowest first (ms request → response end, p50 / p99; KiB each)`);
    for (const q of r.slowest) console.log(`  ${q.kind}: ×${q.n.toFixed(1)}, ${q.p50.toFixed(0)} / ${q.p99.toFixed(0)} ms, ${q.kib.toFixed(1)} KiB`);
  }
  console.log(
    `\nread by route (KiB per request): ${[...byPath]
      .sort((a, b) => b[1].bytes - a[1].bytes)
      .map(([path, e]) => `${path} ${(e.bytes / e.n / 1024).toFixed(1)}`)
      .join(', ')}`,
  );
} finally {
  sim?.kill('SIGTERM');
  await cluster.stop().catch(() => undefined);
}
