import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { MigrationRecord, TokenCreated } from '@ferry/protocol';
import { SHOTS, freshPage, keepScreenshot, launchBrowser, skipBrowser } from './helpers/browser.ts';
import { eventually } from './helpers/cluster.ts';
import { endTcpClient, startTcpClient } from './helpers/tcp-client.ts';
import { InvariantChecker } from './helpers/invariants.ts';
import { skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { labApi, labWorkload, talk } from './helpers/workload.ts';

describe.skipIf(skipLab() || skipBrowser('the console test'))('the management console in headless Chromium (issue 18)', () => {
  let t: LabCluster;
  let browser: Browser;
  const { api, get, running } = labApi(() => t);
  const other = (host: string) => (host === 'h1' ? 'h2' : 'h1');
  const shot = keepScreenshot;
  /** A page of its own (its own local storage) signed in with `token`, once the lists and the event stream are there. */
  const open = async (token: string) => {
    const page = await freshPage(browser);
    await page.goto(`${t.cluster.apiUrl}/ui/#token=${encodeURIComponent(token)}`);
    await page.locator('#status', { hasText: 'live' }).waitFor({ timeout: 20_000 });
    await page.locator('#hosts [data-host="h2"]').waitFor();
    return page;
  };
  const client = (fromHost: string, address: string) => startTcpClient(t.lab, fromHost, address);
  const endClient = endTcpClient;
  const migrationsOf = async (id: string) => ((await api('GET', `/v1/migrations?workload=${id}`)).body as { migrations: MigrationRecord[] }).migrations;
  /** Drags a workload's row onto a host's row and holds it there (the mouse stays down): two moves over the target, so dragover fires. */
  const dragOver = async (page: Page, workload: string, host: string) => {
    await page.locator(`#workloads tr[data-workload="${workload}"][draggable="true"]`).hover();
    await page.mouse.down();
    const target = page.locator(`#hosts [data-host="${host}"]`);
    await target.hover();
    await target.hover({ position: { x: 40, y: 8 } });
  };

  beforeAll(async () => {
    console.log(`console screenshots go to ${SHOTS}`);
    t = await startLabCluster(['h1', 'h2']);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('drag a workload onto another host: checked while over it, migrated on the drop, seen arriving while it keeps answering', async () => {
    // not HA: with two hosts, the maintenance of the next test would leave it nowhere to fail over
    const w = await running(labWorkload('drag-a', '10.77.0.170', { ha: { enabled: false, priority: 0 } }));
    const from = w.hostId!;
    const to = other(from);
    const checker = await InvariantChecker.start(t);
    const page = await open(t.cluster.token);
    await page.locator('#whoami', { hasText: 'bootstrap (admin)' }).waitFor();

    const conn = client(to, '10.77.0.170');
    // connected: its `inc` every 20 ms moves the counter
    const counter = async () => Number(await talk(t.lab, to, '10.77.0.170', 'get'));
    const start = await counter();
    await eventually('the client connected', async () => (await counter()) > start + 3, 10_000);
    await dragOver(page, 'drag-a', to);
    // the dry run ran while it was over the host: where and how, before anything moved
    const hint = page.locator('#drag-hint');
    await page.locator('#drag-hint.ok').waitFor({ timeout: 15_000 });
    expect(await hint.innerText()).toMatch(new RegExp(`${to} can take drag-a: \\S+, freeze about`));
    await expect.poll(() => page.locator(`#hosts [data-host="${to}"]`).getAttribute('class')).toContain('compat-ok');
    expect(await migrationsOf('drag-a')).toEqual([]); // nothing moved yet
    expect((await get('drag-a')).hostId).toBe(from);
    await shot(page, 'drag-over-compatible.png', `drag-a held over ${to}: the host row marked compatible, the hint with strategy and predicted freeze`);
    await page.mouse.up();

    // the drop started it; the page shows it under way and then arriving
    await hint.filter({ hasText: /Migrating drag-a|arrived on/ }).waitFor({ timeout: 15_000 });
    const [migration] = await migrationsOf('drag-a');
    expect(migration).toMatchObject({ workloadId: 'drag-a', source: from, destination: to });
    const row = page.locator(`#migrations tr[data-migration="${migration!.id}"]`);
    if (await row.isVisible()) await shot(page, 'drag-migrating.png', `migration ${migration!.id} of drag-a in progress after the drop`);
    await hint.filter({ hasText: `arrived on ${to}` }).waitFor({ timeout: 90_000 });
    await page.locator(`#workloads tr[data-workload="drag-a"].arrived td.host`, { hasText: to }).waitFor();
    await shot(page, 'drag-arrived.png', `drag-a arrived on ${to}: its row shows the new host, highlighted; the hint says it arrived`);
    expect(await get('drag-a')).toMatchObject({ hostId: to, phase: 'running' });

    // it kept answering on one TCP connection throughout, and ran on one host at a time
    const summary = await endClient(conn);
    expect(summary.error).toBeNull();
    expect(summary.ok).toBe(true);
    expect(summary.requests).toBeGreaterThan(20);
    console.log(`drag-a ${from} → ${to} (${migration!.id}): the client's ${summary.requests} requests all answered, longest wait ${summary.maxGapMs} ms`);
    expect(/^\d+$/.test(await talk(t.lab, from, '10.77.0.170', 'get'))).toBe(true);
    await checker.check();
    await page.context().close();
  }, 180_000);

  it('a refused drop (onto a host in maintenance) shows its reasons and moves nothing; maintenance is left from the page', async () => {
    const at = (await get('drag-a')).hostId!;
    const target = other(at);
    const before = await migrationsOf('drag-a');
    const checker = await InvariantChecker.start(t);
    const page = await open(t.cluster.token);
    // maintenance from the page: the dialog shows the evacuation plan's dry run (nothing: the host is empty), then it enters
    await page.getByRole('button', { name: `Enter maintenance on ${target}` }).click();
    const dialog = page.locator('#dialog');
    await dialog.getByText('it runs no workload, so nothing moves').waitFor();
    await dialog.getByLabel('reason').fill('console test');
    await dialog.getByRole('button', { name: 'Enter maintenance' }).click();
    await page.locator('#notice', { hasText: new RegExp(`${target}: (in|entering) maintenance, 0 workload`) }).waitFor();
    expect((await api('GET', `/v1/hosts/${target}`)).body.maintenance).toMatchObject({ reason: 'console test' });
    // the API's copy of the hosts follows within a second
    await eventually('the API refuses the move', async () => (await api('POST', '/v1/workloads/drag-a/migrate?dryRun=true', { destination: target })).status === 409);
    await page.locator(`#hosts [data-host="${target}"] .badge`, { hasText: /maintenance/ }).waitFor();

    await dragOver(page, 'drag-a', target);
    await page.locator('#drag-hint.refused').waitFor({ timeout: 15_000 });
    const hint = page.locator('#drag-hint');
    expect(await hint.innerText()).toContain(`${target} refuses drag-a`);
    expect(await hint.innerText()).toContain('host is in planned maintenance');
    expect(await hint.innerText()).toContain('HOST_IN_MAINTENANCE');
    await expect.poll(() => page.locator(`#hosts [data-host="${target}"]`).getAttribute('class')).toContain('compat-refused');
    await shot(page, 'drag-refused.png', `drag-a held over ${target}, which is in maintenance: the row marked refused, the hint lists the reason (HOST_IN_MAINTENANCE)`);
    await page.mouse.up();
    await hint.filter({ hasText: 'drag-a was not moved' }).waitFor();

    // nothing moved, nothing started
    expect(await migrationsOf('drag-a')).toHaveLength(before.length);
    expect(await get('drag-a')).toMatchObject({ hostId: at, phase: 'running', migratingTo: null });
    await checker.check();

    // maintenance ends from the page (an operator's action)
    await page.getByRole('button', { name: `Exit maintenance on ${target}` }).click();
    await page.locator('#notice', { hasText: `${target} leaves maintenance` }).waitFor();
    expect((await api('GET', `/v1/hosts/${target}`)).body.maintenance).toBeNull();
    await page.context().close();
  }, 120_000);

  it('create: a bad address is shown at its field and nothing is made; a good one is created, stopped, started and destroyed (with a confirmation) from the page', async () => {
    const page = await open(t.cluster.token);
    await page.locator('#create-details summary').click();
    const form = page.locator('#create');
    await form.getByLabel('name').fill('form-a');
    await form.getByLabel('template').selectOption('busybox');
    await form.getByLabel('command').fill('/usr/bin/ferry-workload --mem 16 --port 7000');
    await form.getByLabel('storage pool').selectOption('shared');
    await form.getByLabel('network').selectOption('prod');
    await form.getByLabel('address').fill('999.1.1.1');
    await form.getByRole('button', { name: 'Create' }).click();

    const error = page.locator('#e-address');
    await error.filter({ hasText: /\S/ }).waitFor();
    console.log(`the address field's error: ${await error.innerText()}`);
    expect(await page.locator('#c-address').getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('#e-id').innerText()).toBe(''); // only the field that is wrong
    await page.locator('#notice.error', { hasText: 'form-a was not created' }).waitFor();
    await shot(page, 'create-field-error.png', 'the create form with 999.1.1.1 as the address: the API’s message under the address field, the field outlined');
    expect((await api('GET', '/v1/workloads/form-a')).status).toBe(404);

    await form.getByLabel('address').fill('10.77.0.171');
    await form.getByRole('button', { name: 'Create' }).click();
    await page.locator('#notice', { hasText: 'Creating form-a' }).waitFor();
    expect(await error.innerText()).toBe('');
    const row = page.locator('#workloads tr[data-workload="form-a"]');
    await row.locator('.badge.running').waitFor({ timeout: 60_000 });

    await page.getByRole('button', { name: 'Stop form-a' }).click();
    await row.locator('.badge.stopped').waitFor({ timeout: 30_000 });
    expect((await get('form-a')).phase).toBe('stopped');
    await page.getByRole('button', { name: 'Start form-a' }).click();
    await row.locator('.badge.running').waitFor({ timeout: 30_000 });

    await page.getByRole('button', { name: 'Destroy form-a' }).click();
    const dialog = page.locator('#dialog');
    await dialog.getByText('It cannot be undone').waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click(); // the first time: thought better of it
    expect((await get('form-a')).phase).toBe('running');
    await page.getByRole('button', { name: 'Destroy form-a' }).click();
    await dialog.getByRole('button', { name: 'Destroy form-a' }).click();
    await row.waitFor({ state: 'detached', timeout: 60_000 });
    await eventually('form-a destroyed', async () => (await api('GET', '/v1/workloads/form-a')).status === 404, 30_000);
    await page.context().close();
  }, 180_000);

  it('a viewer sees the cluster and no action; an operator moves things but neither creates nor destroys', async () => {
    const make = async (name: string, role: string) => {
      const made = await api('POST', '/v1/tokens', { name, role });
      expect(made.status, JSON.stringify(made.body)).toBe(201);
      return (made.body as TokenCreated).token;
    };
    const viewer = await open(await make('console-viewer', 'viewer'));
    await viewer.locator('#workloads tr[data-workload="drag-a"]').waitFor();
    await viewer.locator('#whoami', { hasText: 'console-viewer (viewer)' }).waitFor();
    expect(await viewer.locator('button[data-action]').count()).toBe(0);
    expect(await viewer.locator('tr[draggable="true"]').count()).toBe(0);
    expect(await viewer.locator('#create-section').isVisible()).toBe(false);
    expect(await viewer.locator('#rebalance').isVisible()).toBe(false);
    expect(await viewer.locator('th.act:visible').count()).toBe(0);
    await shot(viewer, 'viewer.png', 'the console as a viewer sees it: hosts, workloads, plans, no buttons, no create form, nothing draggable');
    await viewer.context().close();

    const operator = await open(await make('console-operator', 'operator'));
    await operator.locator('#workloads tr[data-workload="drag-a"]').waitFor();
    await operator.locator('#whoami', { hasText: 'console-operator (operator)' }).waitFor();
    await operator.getByRole('button', { name: 'Migrate drag-a' }).waitFor();
    expect(await operator.getByRole('button', { name: 'Stop drag-a' }).count()).toBe(1);
    expect(await operator.locator('#workloads tr[data-workload="drag-a"][draggable="true"]').count()).toBe(1);
    expect(await operator.locator('button[data-action="destroy"]').count()).toBe(0);
    expect(await operator.locator('#create-section').isVisible()).toBe(false);
    // rebalance: a dry run to review (moves, score before → after) before anything runs
    await operator.getByRole('button', { name: 'Plan a rebalance…' }).click();
    const review = operator.locator('#dialog');
    await review.getByText(/^Score [\d.—]+ → [\d.—]+/).waitFor();
    console.log(`the rebalance review: ${(await review.innerText()).replace(/\s+/g, ' ')}`);
    await review.getByRole('button', { name: 'Close' }).click();
    expect(await review.isVisible()).toBe(false);
    await operator.context().close();
  }, 60_000);
});
