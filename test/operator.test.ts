import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { parse as parseYaml } from 'yaml';
import { chromium, type Browser } from 'playwright-core';
import { repoRoot } from '@ferry/deploy';
import type { HostListResponse, MigrationRecord, PlanRecord, WorkloadSpecInput, WorkloadView } from '@ferry/protocol';
import { eventually, http } from './helpers/cluster.ts';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';

const CHROMIUM = '/usr/lib/chromium/chromium';
const ARTIFACTS = join(repoRoot, 'test', 'artifacts');

/** The dashboard test needs Debian's chromium (deploy/setup installs it); only outside CI may it be missing. */
function skipBrowser(): boolean {
  if (existsSync(CHROMIUM)) return false;
  if (process.env.CI) throw new Error(`the dashboard test cannot run in CI: ${CHROMIUM} is missing (deploy/setup installs chromium)`);
  console.warn(`skipping the dashboard test: ${CHROMIUM} is missing (run deploy/setup)`);
  return true;
}

/** One sample's value: `name{…labels…} value`, every given label present. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.split(' ').pop());
  }
  return null;
}

describe.skipIf(skipLab())('operator experience: CLI, dashboard, OpenAPI, metrics', () => {
  let t: LabCluster;
  const dir = mkdtempSync(join(tmpdir(), 'ferry-operator-'));
  const configFile = join(dir, 'config.yaml');
  const ferry = (args: string[], env: Record<string, string> = {}) =>
    execa(join(repoRoot, 'packages', 'cli', 'bin', 'ferry'), ['--config', configFile, ...args], { reject: false, cwd: repoRoot, env: { FERRY_API_URL: '', FERRY_API_TOKEN: '', ...env } });
  const api = (method: string, path: string, body?: unknown) => http(`${t.cluster.apiUrl}${path}`, { token: t.cluster.token, method, body });
  const spec = (id: string, address: string, memMiB: number, ha = true, pool = 'shared'): WorkloadSpecInput => ({
    id,
    template: 'busybox',
    command: ['/usr/bin/ferry-workload', '--mem', String(memMiB), '--port', '7000'],
    resources: { vcpus: 0.25, memoryMiB: memMiB + 128, diskMiB: 64 },
    networks: [{ network: PROD.name, address }],
    pool,
    ha: { enabled: ha, priority: 5 },
  });
  const hostOf = async (id: string) => ((await api('GET', `/v1/workloads/${id}`)).body as WorkloadView).hostId!;
  const create = async (s: WorkloadSpecInput) => {
    expect((await api('POST', '/v1/workloads', s)).status).toBe(202);
    return eventually(
      `${s.id} running`,
      async () => {
        const w = (await api('GET', `/v1/workloads/${s.id}`)).body as WorkloadView;
        if (w.phase === 'failed') throw new Error(`${s.id} failed: ${w.error?.message}`);
        return w.phase === 'running' && w.observed?.state === 'running' ? w : null;
      },
      60_000,
    );
  };

  beforeAll(async () => {
    // plans expire after 3 s here (1 h by default), so the test can watch a dry run expire
    t = await startLabCluster(['h1', 'h2'], [PROD], {}, { FERRY_PLAN_TTL_MS: '3000' });
    // not HA: with two hosts, draining one for maintenance would leave no room for any HA workload to fail over
    await create(spec('op-a', '10.77.0.160', 64, false));
  });

  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ferry: contexts, tables and JSON/YAML, a live migration with progress and its result, clear errors and exit codes', async () => {
    const set = await ferry(['context', 'set', 'lab', '--url', t.cluster.apiUrl, '--token', t.cluster.token]);
    expect(set.exitCode, set.stderr).toBe(0);
    expect(statSync(configFile).mode & 0o777).toBe(0o600);
    const contexts = JSON.parse((await ferry(['context', 'list', '-o', 'json'])).stdout);
    expect(contexts.current).toBe('lab');
    expect(contexts.contexts[0].token).not.toBe(t.cluster.token); // masked

    const table = await ferry(['hosts']);
    expect(table.exitCode, table.stderr).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^HOST\s+STATE\s+ADDRESS\s+CPUS/);
    expect(table.stdout).toMatch(/\nh1\s+up\s/);
    const json = JSON.parse((await ferry(['hosts', '-o', 'json'])).stdout) as HostListResponse;
    expect(json.hosts.map((h) => [h.id, h.state])).toEqual([
      ['h1', 'up'],
      ['h2', 'up'],
    ]);
    const yaml = parseYaml((await ferry(['workloads', '-o', 'yaml'])).stdout) as { workloads: WorkloadView[] };
    expect(yaml.workloads.map((w) => w.spec.id)).toContain('op-a');

    const from = await hostOf('op-a');
    const to = from === 'h1' ? 'h2' : 'h1';
    const run = await ferry(['migrate', 'op-a', '--to', to]);
    expect(run.exitCode, run.stderr).toBe(0);
    console.log(`$ ferry migrate op-a --to ${to}\n${run.stderr}${run.stdout}`);
    expect(run.stderr).toContain(`migrating op-a ${from} → ${to}`);
    expect(run.stderr).toMatch(/\[#+\.*\]\s+\d+%\s+restore (started|done)/); // the bar went through the phases
    expect(run.stdout).toMatch(new RegExp(`migrated op-a ${from} → ${to}\\n  mode      \\S+ \\(.+\\)\\n  freeze    [\\d.]+ m?s\\n  total     [\\d.]+ m?s\\n  bytes     [\\d.]+ (B|KiB|MiB|GiB)`));
    expect(await hostOf('op-a')).toBe(to);
    // post-copy: the 64 MiB the workload touched were pulled after the restore, and count
    const moved = /bytes {5}([\d.]+) MiB/.exec(run.stdout);
    expect(Number(moved?.[1])).toBeGreaterThanOrEqual(60);
    const id = /id {8}(m-\S+)/.exec(run.stdout)![1]!;
    const timeline = await ferry(['migrations', 'show', id]);
    expect(timeline.stdout).toMatch(/STARTED\s+PHASE\s+TOOK/);
    for (const phase of ['validate', 'prepare', 'freeze', 'restore', 'commit']) expect(timeline.stdout).toContain(phase);

    // a root filesystem on a local pool is copied: the bar shows the copy as rsync counts it
    await create(spec('op-local', '10.77.0.162', 16, false, 'local'));
    const localFrom = await hostOf('op-local');
    const copy = await ferry(['migrate', 'op-local', '--to', localFrom === 'h1' ? 'h2' : 'h1']);
    expect(copy.exitCode, copy.stderr).toBe(0);
    expect(copy.stderr).toMatch(/presync copying \d+%\s+[\d.]+ (B|KiB|MiB)/);
    expect((await api('DELETE', '/v1/workloads/op-local')).status).toBe(202);
    await eventually('op-local destroyed', async () => (await api('GET', '/v1/workloads/op-local')).status === 404, 30_000);

    const unknown = await ferry(['migrate', 'no-such-workload', '--to', 'h1']);
    expect(unknown.exitCode).toBe(4);
    expect(unknown.stderr).toMatch(/no workload no-such-workload.*ferry workloads/);
    const badToken = await ferry(['hosts', '--token', 'not-the-token-0000']);
    expect(badToken.exitCode).toBe(3);
    expect(badToken.stderr).toContain('refused the token');
    const noApi = await ferry(['hosts', '--url', 'http://127.0.0.1:1']);
    expect(noApi.exitCode).toBe(3);
    expect(noApi.stderr).toContain('cannot reach the Ferry API');
    expect((await ferry(['migrate'])).exitCode).toBe(2);
    const events = await ferry(['events']);
    expect(events).toMatchObject({ exitCode: 2, stderr: expect.stringContaining('--follow') });

    const dry = await ferry(['rebalance', '--dry-run', '-o', 'json']);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ kind: 'rebalance', state: 'planned' });
  }, 180_000);

  it('ferry through a symlink: migrate --dry-run, workloads show, -o in every help', async () => {
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    symlinkSync(join(repoRoot, 'packages', 'cli', 'bin', 'ferry'), join(bin, 'ferry')); // a link on PATH
    const linked = (args: string[]) => execa(join(bin, 'ferry'), ['--config', configFile, ...args], { reject: false, cwd: dir, env: { FERRY_API_URL: '', FERRY_API_TOKEN: '' } });

    const host = await hostOf('op-a');
    const before = ((await api('GET', '/v1/migrations?workload=op-a')).body as { migrations: MigrationRecord[] }).migrations.length;
    const dry = await linked(['migrate', 'op-a', '--dry-run']);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`dry run: op-a could move ${host} → ${host === 'h1' ? 'h2' : 'h1'}`);
    expect(dry.stdout).toMatch(/\n {2}destination {2}h\d \(.+\)\n {2}strategy {5}\S+ \(.+\)\n {2}expect {7}freeze [\d.]+ (ms|s), total [\d.]+ (ms|s), .+ to send \(.+\)\n {2}checks {7}passed: /);
    const dryJson = JSON.parse((await linked(['migrate', 'op-a', '--dry-run', '-o', 'json'])).stdout);
    expect(dryJson).toMatchObject({ dryRun: true, ok: true, workloadId: 'op-a', source: host, destination: host === 'h1' ? 'h2' : 'h1' });
    expect(await hostOf('op-a')).toBe(host); // nothing moved
    expect(((await api('GET', '/v1/migrations?workload=op-a')).body as { migrations: MigrationRecord[] }).migrations).toHaveLength(before);

    const w = (await api('GET', '/v1/workloads/op-a')).body as WorkloadView;
    const show = await linked(['workloads', 'show', 'op-a']);
    expect(show.exitCode, show.stderr).toBe(0);
    expect(show.stdout).toMatch(new RegExp(`^host +${host}$`, 'm'));
    expect(show.stdout).toMatch(/^phase +running \(desired running\)$/m);
    expect(show.stdout).toMatch(new RegExp(`^epoch +${w.epoch}$`, 'm'));
    expect(w.epoch).toBeGreaterThan(1); // it migrated in the test before
    expect(show.stdout).toMatch(new RegExp(`^observed +running, pid ${w.observed!.pid}, epoch ${w.epoch}, memory [\\d.]+ MiB of`, 'm'));
    expect(show.stdout).not.toMatch(/^placed/m); // the reason from its creation named the host it left

    // predicted next to measured: every migration records what it was expected to cost, and once
    // three of a kind completed the prediction is learned from them instead of the cost model
    for (let i = 0; i < 3; i++) {
      const res = await api('POST', '/v1/workloads/op-a/migrate', {});
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      const id = (res.body as { migration: MigrationRecord }).migration.id;
      await eventually(`${id} completed`, async () => ((await api('GET', `/v1/migrations/${id}`)).body as MigrationRecord).state === 'completed', 60_000);
    }
    const moved = ((await api('GET', '/v1/migrations?workload=op-a')).body as { migrations: MigrationRecord[] }).migrations;
    expect(
      moved.every((m) => m.predicted && m.predicted.freezeMs >= 0 && m.predicted.seconds > 0),
      JSON.stringify(moved.map((m) => m.predicted)),
    ).toBe(true);
    const learned = JSON.parse((await linked(['migrate', 'op-a', '--dry-run', '-o', 'json'])).stdout) as { predicted: { basis: string } };
    expect(learned.predicted.basis).toMatch(/^\d+ measured \(/);
    const list = await linked(['migrations', '--workload', 'op-a']);
    expect(list.stdout).toMatch(/FREEZE \(PREDICTED\) +TOTAL \(PREDICTED\)/);
    expect(list.stdout).toMatch(/ [\d.]+ (ms|s) \([\d.]+ (ms|s)\) +[\d.]+ (ms|s) \([\d.]+ (ms|s)\)$/m);
    const shown = await linked(['migrations', 'show', moved[0]!.id]);
    expect(shown.stdout).toMatch(/^predicted: freeze [\d.]+ (ms|s), total [\d.]+ (ms|s) \(.+\); measured: freeze [\d.]+ (ms|s), total [\d.]+ (ms|s)$/m);
    console.log(`prediction after ${moved.length} migrations of op-a: ${JSON.stringify(learned.predicted)}; measured last: freeze ${moved[0]!.freeze.agentMs} ms`);

    for (const command of [['workloads', 'show'], ['migrate'], ['plans', 'execute'], ['hosts']]) {
      expect((await linked([...command, '--help'])).stdout, command.join(' ')).toContain('-o, --output <format>');
    }
  }, 180_000);

  it('the API: a clear 400 for bad addresses and tiny CPU limits, optional bodies may be empty, warnings, plans expire', async () => {
    const bad = await api('POST', '/v1/workloads', { ...spec('op-bad', '999.1.1.1', 16, false), resources: { vcpus: 1e-300, memoryMiB: 144, diskMiB: 64 } });
    expect(bad.status, JSON.stringify(bad.body)).toBe(400);
    const fields = (bad.body.details.problems as Array<{ field: string; message: string }>).map((p) => p.field);
    expect(fields).toEqual(expect.arrayContaining(['networks.0.address', 'resources.vcpus']));
    expect(bad.body.message).toMatch(/resources\.vcpus: must be at least 0\.01/);
    expect((await api('GET', '/v1/workloads/op-bad')).status).toBe(404); // nothing created

    // Content-Type: application/json with nothing after it, as curl -H and many SDKs send it
    const empty = (method: string, path: string) =>
      fetch(`${t.cluster.apiUrl}${path}`, { method, headers: { authorization: `Bearer ${t.cluster.token}`, 'content-type': 'application/json' } }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as any,
      }));
    const created = await api('POST', '/v1/workloads', spec('op-empty', '10.77.0.163', 16, false));
    expect(created.status).toBe(202);
    expect(created.body.warnings).toEqual([]);
    const phase = async (id: string, want: string) => eventually(`${id} ${want}`, async () => ((await api('GET', `/v1/workloads/${id}`)).body as WorkloadView).phase === want, 60_000);
    await phase('op-empty', 'running');
    expect(await empty('POST', '/v1/workloads/op-empty/stop')).toMatchObject({ status: 202 });
    await phase('op-empty', 'stopped');
    expect(await empty('POST', '/v1/workloads/op-empty/start')).toMatchObject({ status: 202 });
    await phase('op-empty', 'running');
    expect(await empty('POST', '/v1/workloads/op-empty/migrate?dryRun=true')).toMatchObject({ status: 200, body: { dryRun: true } });
    const noSpec = await empty('POST', '/v1/workloads');
    expect(noSpec.status).toBe(400); // a body that is required is still required
    expect(noSpec.body.details.problems[0].field).toBe('(body)');

    // HA on a pool only its own host sees: accepted, with a warning saying why it protects nothing
    const local = await api('POST', '/v1/workloads?start=false', spec('op-warn', '10.77.0.164', 16, true, 'local'));
    expect(local.status).toBe(202);
    expect(local.body.warnings).toEqual([{ code: 'HA_POOL_LOCAL', message: expect.stringContaining('pool local is local to each host') }]);
    const doc = (await http(`${t.cluster.apiUrl}/v1/openapi.json`)).body;
    expect(Object.keys(doc.paths['/v1/workloads'].post.responses['202'].content['application/json'].schema.properties)).toContain('warnings');
    for (const id of ['op-empty', 'op-warn']) expect((await api('DELETE', `/v1/workloads/${id}`)).status).toBe(202);

    // dry-run plans expire (FERRY_PLAN_TTL_MS=3000 here)
    const first = (await empty('POST', '/v1/rebalance?dryRun=true')).body as PlanRecord;
    const second = (await api('POST', '/v1/rebalance?dryRun=true', {})).body as PlanRecord;
    expect([first.state, second.state]).toEqual(['planned', 'planned']);
    expect(((await api('GET', '/v1/plans')).body.plans as PlanRecord[]).map((p) => p.id)).toEqual(expect.arrayContaining([first.id, second.id]));
    await new Promise((resolve) => setTimeout(resolve, 3500));
    const late = await api('POST', `/v1/plans/${first.id}/execute`);
    expect(late.status).toBe(404);
    expect(late.body).toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining(`plan ${first.id} expired`), details: { code: 'PLAN_EXPIRED' } });
    expect(((await api('GET', '/v1/plans')).body.plans as PlanRecord[]).map((p) => p.id)).not.toContain(second.id); // swept
    const gone = await api('POST', `/v1/plans/${second.id}/execute`);
    expect(gone).toMatchObject({ status: 404, body: { message: expect.stringContaining('expire') } });
    const cliLate = await ferry(['plans', 'execute', second.id]);
    expect(cliLate.exitCode).toBe(4);

    for (const id of ['op-empty', 'op-warn']) await eventually(`${id} destroyed`, async () => (await api('GET', `/v1/workloads/${id}`)).status === 404, 60_000);
  }, 180_000);

  it('ferry events --follow and maintenance enter/exit with per-workload progress', async () => {
    const follow = execa(join(repoRoot, 'packages', 'cli', 'bin', 'ferry'), ['--config', configFile, 'events', '--follow', '-o', 'json'], { reject: false, cwd: repoRoot });
    let seen = '';
    follow.stdout!.on('data', (chunk: Buffer) => (seen += chunk.toString()));
    await new Promise((resolve) => setTimeout(resolve, 1500)); // subscribed
    const host = await hostOf('op-a');
    const enter = await ferry(['maintenance', 'enter', host]);
    expect(enter.exitCode, enter.stderr).toBe(0);
    expect(enter.stderr).toMatch(new RegExp(`${host}: maintenance \\S+, 1 workload\\(s\\) to move`));
    expect(enter.stderr).toMatch(/op-a\s+h\d → h\d\s+completed/);
    expect(await hostOf('op-a')).not.toBe(host);
    expect((await ferry(['maintenance', 'exit', host])).exitCode).toBe(0);
    await eventually('migration events on the stream', async () => seen.includes('"type":"migration.finished"'), 15_000);
    follow.kill('SIGINT');
    expect((await follow).exitCode).toBe(0);
    const lines = seen
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string });
    expect(lines.some((e) => e.type === 'migration.phase')).toBe(true);
  }, 180_000);

  it('serves OpenAPI 3 from the zod schemas, with a docs page, without a token', async () => {
    const doc = (await http(`${t.cluster.apiUrl}/v1/openapi.json`)).body as {
      openapi: string;
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: Record<string, unknown> } }> } }>>;
    };
    expect(doc.openapi).toBe('3.0.3');
    const migrate = doc.paths['/v1/workloads/{id}/migrate']!.post!;
    expect(Object.keys(migrate.requestBody!.content['application/json']!.schema.properties)).toEqual(expect.arrayContaining(['destination', 'strategy']));
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/hosts', '/v1/events', '/v1/failovers', '/v1/plans/{id}/execute']));
    const page = await fetch(`${t.cluster.apiUrl}/docs`);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('POST /v1/workloads/{id}/migrate');
  });

  it('exports Prometheus metrics from the scheduler, the agents and the API, and the Grafana dashboard asks only for those', async () => {
    const scheduler = await (await fetch(t.cluster.schedulerMetrics.get('scheduler')!)).text();
    expect(sample(scheduler, 'ferry_capacity_reports_total', { result: 'accepted' })).toBeGreaterThan(0);
    expect(sample(scheduler, 'ferry_hosts', { state: 'up' })).toBe(2);
    expect(sample(scheduler, 'ferry_queue_jobs', { queue: 'migrations', state: 'waiting' })).toBe(0);
    // the scheduler that drove the migrations counted them (the only one here)
    expect(sample(scheduler, 'ferry_migrations_total', { result: 'completed' })).toBeGreaterThanOrEqual(2);
    expect(sample(scheduler, 'ferry_migration_freeze_seconds_count')).toBeGreaterThanOrEqual(2);
    expect(sample(scheduler, 'ferry_scheduler_leader')).toBe(1);
    expect(sample(scheduler, 'ferry_plan_score', { kind: 'rebalance', stage: 'before' })).toBeNull(); // plans are the API's here (no automatic rebalancing)

    const agentHost = await hostOf('op-a');
    const agent = await (await fetch(`http://${t.lab.host(agentHost).address}:9465/metrics`)).text();
    expect(sample(agent, 'ferry_agent_containers', { state: 'running' })).toBe(1);
    expect(sample(agent, 'ferry_agent_lease_remaining_seconds')).toBeGreaterThan(0);
    expect(sample(agent, 'ferry_agent_reports_total')).toBeGreaterThan(0);
    expect(sample(agent, 'ferry_agent_commands_total', { result: 'ok' })).toBeGreaterThan(0);

    const apiText = await (await fetch(`${t.cluster.apiUrl}/metrics`)).text(); // no token needed
    expect(sample(apiText, 'ferry_api_requests_total', { route: '/v1/hosts', status: '200' })).toBeGreaterThan(0);
    expect(sample(apiText, 'ferry_plan_score', { kind: 'rebalance', stage: 'before' })).not.toBeNull(); // the CLI's dry run
    expect(sample(apiText, 'ferry_api_event_streams')).not.toBeNull();

    const grafana = JSON.parse(readFileSync(join(repoRoot, 'deploy', 'grafana', 'ferry.json'), 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
    const exported = new Set([scheduler, agent, apiText].flatMap((text) => [...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!)));
    const asked = new Set(grafana.panels.flatMap((p) => p.targets.flatMap((x) => [...x.expr.matchAll(/\b(ferry_[a-z_]+?)(?:_bucket|_count|_sum)?\b/g)].map((m) => m[1]!))));
    for (const name of asked) expect(exported, `the Grafana dashboard asks for ${name}`).toContain(name);
  });

  describe.skipIf(skipBrowser())('the dashboard, in headless Chromium', () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
    });
    afterAll(async () => {
      await browser?.close();
    });

    it('shows hosts and workloads, and a migration in progress live (screenshot kept)', async () => {
      await create(spec('op-big', '10.77.0.161', 512));
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(`${t.cluster.apiUrl}/ui/#token=${encodeURIComponent(t.cluster.token)}`);
      await page.locator('#status', { hasText: 'live' }).waitFor({ timeout: 20_000 });
      await page.locator('#hosts [data-host="h1"]').waitFor();
      expect(await page.locator('#hosts [data-host]').count()).toBe(2);
      await page.locator('#workloads tr[data-workload="op-big"]').waitFor();

      const from = await hostOf('op-big');
      const res = await api('POST', '/v1/workloads/op-big/migrate', { destination: from === 'h1' ? 'h2' : 'h1', strategy: 'lazy' });
      expect(res.status).toBe(202);
      const { migration } = res.body as { migration: MigrationRecord };
      const row = page.locator(`#migrations tr[data-migration="${migration.id}"]`);
      await row.waitFor({ timeout: 20_000 });
      const text = await row.innerText();
      expect(text).toContain('op-big');
      expect(text).toMatch(/validate|reserve|prepare|presync|freeze|transfer|restore|verify|commit|cleanup/);
      mkdirSync(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, 'dashboard-migration.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect(statSync(shot).size).toBeGreaterThan(10_000);
      console.log(`dashboard screenshot with migration ${migration.id} in progress (${text.replace(/\s+/g, ' ')}): ${shot}`);

      await eventually('the migration done', async () => ((await api('GET', `/v1/migrations/${migration.id}`)).body as MigrationRecord).state === 'completed', 120_000);
      await row.waitFor({ state: 'detached', timeout: 20_000 });
      await page.locator('#events li', { hasText: 'migration.finished' }).first().waitFor();
      await page.close();

      // a console opened afterwards lists what just happened: the API replays its latest events
      const later = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await later.goto(`${t.cluster.apiUrl}/ui/#token=${encodeURIComponent(t.cluster.token)}`);
      await later.locator('#status', { hasText: 'live' }).waitFor({ timeout: 20_000 });
      await later.locator('#events li', { hasText: 'migration.finished' }).first().waitFor({ timeout: 10_000 });
      expect(await later.locator('#events li', { hasText: 'op-big' }).count()).toBeGreaterThan(1);
      await later.close();
    }, 240_000);
  });
});
