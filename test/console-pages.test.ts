import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { HostUsageResponse, MigrationRecord, WorkloadUsageResponse } from '@ferry/protocol';
import { freshPage, keepScreenshot, launchBrowser, skipBrowser } from './helpers/browser.ts';
import { eventually } from './helpers/cluster.ts';
import { skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { labApi, labWorkload } from './helpers/workload.ts';

describe.skipIf(skipLab() || skipBrowser('the console pages test'))('the console at scale and its pages, in headless Chromium (issue 18, parts 2 and 3)', () => {
  let t: LabCluster;
  let browser: Browser;
  let page: Page;
  const { api, get, running } = labApi(() => t);
  const shot = (name: string, what: string) => keepScreenshot(page, name, what);
  /** what an attribute holds on every element a selector finds (the tests' tsconfig has no DOM types) */
  const attrs = (selector: string, name: string) => page.locator(selector).evaluateAll((els, n) => els.map((e) => (e as unknown as { getAttribute(a: string): string }).getAttribute(n)), name);
  const rows = async () => (await attrs('#workloads tbody tr[data-workload]', 'data-workload')).sort();
  /** the console's own navigation: a hash change, no reload */
  const go = (hash: string) => page.evaluate(`location.hash = ${JSON.stringify(hash)}`);

  beforeAll(async () => {
    t = await startLabCluster(['h1', 'h2']);
    browser = await launchBrowser();
    // one running workload on h1 (moved later), two never started: labels and phases to filter by
    await running(labWorkload('pg-web', '10.77.0.180', { ha: { enabled: false, priority: 0 }, labels: { tier: 'web' } }));
    for (const [id, tier] of [
      ['pg-db', 'db'],
      ['pg-cache', 'web'],
    ] as const) {
      const res = await api('POST', '/v1/workloads?start=false', labWorkload(id, id === 'pg-db' ? '10.77.0.181' : '10.77.0.182', { ha: { enabled: false, priority: 0 }, labels: { tier } }));
      expect(res.status, JSON.stringify(res.body)).toBe(202);
    }
    await eventually('pg-db and pg-cache created, not started', async () => (await get('pg-db')).phase === 'stopped' && (await get('pg-cache')).phase === 'stopped', 60_000);
    page = await freshPage(browser);
    const started = Date.now();
    await page.goto(`${t.cluster.apiUrl}/ui/#token=${encodeURIComponent(t.cluster.token)}`);
    await page.locator('#workloads tr[data-workload="pg-web"]').waitFor({ timeout: 20_000 });
    // room for every request of the run (250 by default: a full buffer would hide the reads counted below)
    await page.evaluate('performance.setResourceTimingBufferSize(100000)');
    console.log(`first paint (hosts and workloads drawn) in ${Date.now() - started} ms on a 2-host lab`);
    await page.locator('#status', { hasText: 'live' }).waitFor({ timeout: 20_000 });
  });

  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('filters narrow the hosts and workloads, server-side, and the view can be linked', async () => {
    expect(await rows()).toEqual(['pg-cache', 'pg-db', 'pg-web']);
    expect(await page.locator('#hosts [data-host]').count()).toBe(2);

    await page.fill('#filters input[name="label"]', 'tier=web');
    await page.click('#filters button[type="submit"]');
    await expect.poll(rows).toEqual(['pg-cache', 'pg-web']);
    expect(new URL(page.url()).hash).toBe('#/?label=tier%3Dweb');

    await page.selectOption('#filters select[name="phase"]', 'running');
    await page.click('#filters button[type="submit"]');
    await expect.poll(rows).toEqual(['pg-web']);

    const host = (await get('pg-web')).hostId!;
    await go(`#/?host=${host}`);
    await expect.poll(() => attrs('#hosts [data-host]', 'data-host')).toEqual([host]);
    // the card lists its workloads (from its report); pg-web runs there
    await page.locator(`#hosts [data-host="${host}"] .chip`, { hasText: 'pg-web' }).waitFor();
    expect(await rows()).toContain('pg-web');
    expect(await page.locator('#filters input[name="host"]').inputValue()).toBe(host);

    await go('#/?search=pg-d');
    await expect.poll(rows).toEqual(['pg-db']);
    await shot('filtered.png', 'the overview filtered to workloads whose id starts with pg-d: one row, both host cards');

    // a workload that appears while the view is open comes from the event stream, in place
    await go('#/?label=tier%3Dweb');
    await expect.poll(rows).toEqual(['pg-cache', 'pg-web']);
    const listReads = () => page.evaluate(`performance.getEntriesByType('resource').filter((e) => e.name.includes('/v1/workloads?')).length`) as Promise<number>;
    const before = await listReads();
    const res = await api('POST', '/v1/workloads?start=false', labWorkload('pg-late', '10.77.0.183', { ha: { enabled: false, priority: 0 }, labels: { tier: 'web' } }));
    expect(res.status).toBe(202);
    await expect.poll(rows, { timeout: 20_000 }).toEqual(['pg-cache', 'pg-late', 'pg-web']);
    const after = await listReads();
    expect(after - before, 'the list was not read again: the new workload was read by itself').toBe(0);
    await go('#/');
  });

  it('a workload page shows its migration with the predicted and measured freeze, and its usage chart has points', async () => {
    const from = (await get('pg-web')).hostId!;
    const to = from === 'h1' ? 'h2' : 'h1';
    // let the source's agent take a sample of it (its first report with the container)
    await eventually('usage sampled on the source', async () => ((await api('GET', '/v1/workloads/pg-web/usage')).body as WorkloadUsageResponse).samples.length > 0, 20_000);
    const res = await api('POST', '/v1/workloads/pg-web/migrate', { destination: to });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const { migration } = res.body as { migration: MigrationRecord };
    const done = await eventually(
      'the migration completed',
      async () => {
        const m = (await api('GET', `/v1/migrations/${migration.id}`)).body as MigrationRecord;
        if (m.state === 'failed' || m.state === 'rolled-back') throw new Error(`migration ${m.state}: ${JSON.stringify(m.error)}`);
        return m.state === 'completed' ? m : null;
      },
      90_000,
    );
    expect(done.predicted?.freezeMs).toBeGreaterThan(0);
    expect(done.freeze.agentMs).toBeGreaterThan(0);

    await go('#/workloads/pg-web');
    const row = page.locator(`#moves tr[data-migration="${migration.id}"]`);
    await row.waitFor({ timeout: 20_000 });
    const text = await row.innerText();
    expect(text).toContain(`${from} → ${to}`);
    const predicted = await row.locator('.predicted-freeze').innerText();
    const measured = await row.locator('.measured-freeze').innerText();
    expect(predicted).toMatch(/^\d+(\.\d)? m?s$/);
    expect(measured).toMatch(/^\d+(\.\d)? m?s/);
    // the figures the record holds, as the page words them
    expect(predicted).toBe(done.predicted!.freezeMs >= 1000 ? `${(done.predicted!.freezeMs / 1000).toFixed(1)} s` : `${Math.round(done.predicted!.freezeMs)} ms`);

    // the workload's hour spans both hosts: the source's ring from before the move, the destination's after
    const usage = await eventually(
      'usage on both hosts',
      async () => {
        const u = (await api('GET', '/v1/workloads/pg-web/usage')).body as WorkloadUsageResponse;
        return new Set(u.samples.map((s) => s.hostId)).size === 2 ? u : null;
      },
      20_000,
    );
    expect(usage.hosts.map((h) => h.hostId)).toEqual([from, to]);
    expect(usage.hosts.every((h) => h.unavailable === null)).toBe(true);
    // the CPU chart: a point at least from each host
    await expect.poll(() => page.locator('#usage figure.chart').first().locator('circle.point').count(), { timeout: 20_000 }).toBeGreaterThanOrEqual(2);
    await page.locator('#page-events li', { hasText: 'migration.finished' }).waitFor({ timeout: 20_000 });
    await shot('workload-page.png', `pg-web's page: its move ${from} → ${to} with the predicted and measured freeze, usage charts with points from both hosts, its events`);
  });

  it('a host page shows its capacity, workloads, history and usage', async () => {
    const host = (await get('pg-web')).hostId!;
    await go(`#/hosts/${host}`);
    await page.locator('#page-id', { hasText: host }).waitFor({ timeout: 20_000 });
    await page.locator('#host-workloads tr[data-workload="pg-web"]').waitFor({ timeout: 20_000 });
    // its history as the API keeps it: at least the state change that brought it up
    const history = ((await api('GET', `/v1/hosts/${host}/history`)).body as { history: Array<{ kind: string; message: string }> }).history;
    expect(history.some((e) => e.kind === 'state')).toBe(true);
    await expect.poll(() => page.locator('#host-history tbody tr').count()).toBe(history.length);
    expect(await page.locator('#host-history tbody tr.history-state', { hasText: '→ up' }).count()).toBeGreaterThan(0);
    const usage = (await api('GET', `/v1/hosts/${host}/usage`)).body as HostUsageResponse;
    expect(usage.unavailable).toBeNull();
    expect(usage.samples.length).toBeGreaterThan(0);
    await expect.poll(() => page.locator('#usage svg.spark circle.point').count()).toBeGreaterThan(0);
    await shot('host-page.png', `${host}'s page: capacity, usage charts, pg-web among its workloads, its state history`);

    // a viewer reads the pages too; the usage request is the API's (a viewer's token never reaches NATS)
    const made = await api('POST', '/v1/tokens', { name: 'pages-viewer', role: 'viewer' });
    expect(made.status).toBe(201);
    const token = (made.body as { token: string }).token;
    const viewer = await fetch(`${t.cluster.apiUrl}/v1/hosts/${host}/usage`, { headers: { authorization: `Bearer ${token}` } });
    expect(viewer.status).toBe(200);
  });
});
