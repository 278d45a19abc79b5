import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { TokenCreated } from '@ferry/protocol';
import { freshPage, keepScreenshot, launchBrowser, skipBrowser } from './helpers/browser.ts';
import { eventually } from './helpers/cluster.ts';
import { skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { labApi, labWorkload, talk } from './helpers/workload.ts';

const ID = 'ca-web';
const ADDRESS = '10.77.0.190';

/**
 * A workload's console, logs, suspend and resume from the browser (issue 18 part 1), in Debian's
 * headless Chromium against the lab: real agents, runc, CRIU, NATS, Redis and BullMQ.
 */
describe.skipIf(skipLab() || skipBrowser('the console actions test'))('a workload’s console, logs, suspend and resume in headless Chromium (issue 18, part 1)', () => {
  let t: LabCluster;
  let browser: Browser;
  let page: Page;
  const { api, get, running } = labApi(() => t);
  const shot = keepScreenshot;
  /** A page of its own signed in with `token`, once the event stream is live. */
  const open = async (token: string) => {
    const p = await freshPage(browser);
    await p.goto(`${t.cluster.apiUrl}/ui/#token=${encodeURIComponent(token)}`);
    await p.locator('#status', { hasText: 'live' }).waitFor({ timeout: 20_000 });
    return p;
  };
  const go = (p: Page, hash: string) => p.evaluate(`location.hash = ${JSON.stringify(hash)}`);
  const screenText = () => page.locator('#console-screen').innerText();
  const counter = async () => Number(await talk(t.lab, 'h2', ADDRESS, 'get'));

  beforeAll(async () => {
    t = await startLabCluster(['h1', 'h2']);
    browser = await launchBrowser();
    // not HA: nothing else moves it while the test suspends it
    await running(labWorkload(ID, ADDRESS, { ha: { enabled: false, priority: 0 } }));
    page = await open(t.cluster.token);
    await go(page, `#/workloads/${ID}`);
    await page.locator('#page-id', { hasText: ID }).waitFor({ timeout: 20_000 });
  });

  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('logs: the workload’s output, then followed live; the console: a shell prompt, 6*7 is 42, exit ends it with its reason', async () => {
    await page.click('#logs-follow');
    // ferry-workload's first line, from the tail
    await expect.poll(() => page.locator('#logs-text').innerText(), { timeout: 20_000 }).toMatch(/ferry-workload pid \d+: 16 MiB/);
    await page.locator('#logs-state', { hasText: 'following' }).waitFor();

    await page.click('#console-open');
    await page.locator('#console-state', { hasText: 'connected' }).waitFor({ timeout: 20_000 });
    // the shell's prompt, its escape sequences (busybox ash asks for the cursor position) left out
    await expect.poll(screenText, { timeout: 20_000 }).toMatch(/[#$]$/);
    await page.locator('#console-screen').click();
    await page.keyboard.type('echo $((6*7))');
    await page.keyboard.press('Enter');
    await expect.poll(screenText, { timeout: 10_000 }).toMatch(/^42$/m);
    // typed keys are the shell's: its line editor erases with backspace
    await page.keyboard.type('echo nope');
    for (let i = 0; i < 4; i++) await page.keyboard.press('Backspace');
    await page.keyboard.type('yes-$((40+2))');
    await page.keyboard.press('Enter');
    await expect.poll(screenText, { timeout: 10_000 }).toMatch(/^yes-42$/m);
    const text = await screenText();
    // eslint-disable-next-line no-control-regex -- no escape byte reaches the screen
    expect(text).not.toMatch(/\x1b/);

    // a line written to the workload's own output (its PID 1's stdout) reaches the followed log
    await page.keyboard.type('echo from-the-browser-$((6*7)) > /proc/1/fd/1');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#logs-text').innerText(), { timeout: 20_000 }).toMatch(/^from-the-browser-42$/m);
    await shot(page, 'workload-console.png', `${ID}'s page: the console with a shell prompt and 42, the logs followed with the line the shell wrote`);

    await page.keyboard.type('exit 3');
    await page.keyboard.press('Enter');
    await page.locator('#console-state', { hasText: 'Console ended' }).waitFor({ timeout: 10_000 });
    expect(await page.locator('#console-state').innerText()).toContain('(exit 3)');
    expect(await page.locator('#console-open').isVisible()).toBe(true);

    await page.click('#logs-stop');
    await page.locator('#logs-state', { hasText: 'Stopped' }).waitFor();
  });

  it('suspend from the workload page, resume from its row: the states shown on the way, and it runs again with its memory', async () => {
    for (let i = 0; i < 5; i++) await talk(t.lab, 'h2', ADDRESS, 'inc');
    const before = await counter();
    expect(before).toBeGreaterThanOrEqual(5);
    // every phase the page's badge shows, in order (the head is drawn again on each event)
    await page.evaluate(`(() => {
      window.phasesSeen = [];
      const note = () => {
        const p = document.querySelector('#page-phase')?.textContent;
        if (p && window.phasesSeen.at(-1) !== p) window.phasesSeen.push(p);
      };
      note();
      new MutationObserver(note).observe(document.querySelector('#page-head'), { childList: true, subtree: true, characterData: true });
    })()`);
    await page.click(`.page-actions button[data-action="suspend"]`);
    await page.locator('#notice', { hasText: `Suspending ${ID}` }).waitFor();
    await page.locator('#page-phase', { hasText: 'suspended' }).waitFor({ timeout: 90_000 });
    // a suspended workload offers Resume, not Suspend, and says where its checkpoint is
    expect(await page.locator('.page-actions button[data-action="resume"]').count()).toBe(1);
    expect(await page.locator('.page-actions button[data-action="suspend"]').count()).toBe(0);
    await page.locator('.facts', { hasText: 'checkpoint' }).waitFor();
    expect((await get(ID)).phase).toBe('suspended');
    expect(await talk(t.lab, 'h2', ADDRESS, 'get')).toBe('');
    await shot(page, 'workload-suspended.png', `${ID}'s page once suspended: the badge, its checkpoint, the Resume button`);

    await go(page, '#/');
    const row = page.locator(`#workloads tr[data-workload="${ID}"]`);
    await row.locator('button[data-action="resume"]').waitFor({ timeout: 20_000 });
    await row.locator('button[data-action="resume"]').click();
    await page.locator('#notice', { hasText: `Resuming ${ID}` }).waitFor();
    await row.locator('.badge.running').waitFor({ timeout: 90_000 });
    await row.locator('button[data-action="suspend"]').waitFor();
    // its memory came back: the counter goes on from where it was
    const after = await eventually('it answers again', async () => {
      const n = await talk(t.lab, 'h2', ADDRESS, 'get');
      return /^\d+$/.test(n) ? Number(n) : null;
    });
    expect(after).toBe(before);
    await talk(t.lab, 'h2', ADDRESS, 'inc');
    expect(await counter()).toBe(before + 1);

    const seen = (await page.evaluate('window.phasesSeen')) as string[];
    console.log(`phases the workload page showed: ${seen.join(' → ')}`);
    expect(seen[0]).toBe('running');
    expect(seen).toContain('suspended');
    expect(seen.indexOf('suspending')).toBeGreaterThan(0);
    expect(seen.indexOf('suspending')).toBeLessThan(seen.indexOf('suspended'));
    // the overview's row showed the resume on its way
    const w = await get(ID);
    expect(w).toMatchObject({ phase: 'running', desired: 'running' });
  });

  it('a viewer sees no suspend, resume, console or logs', async () => {
    const made = await api('POST', '/v1/tokens', { name: 'actions-viewer', role: 'viewer' });
    expect(made.status).toBe(201);
    const viewer = await open((made.body as TokenCreated).token);
    await viewer.locator('#whoami', { hasText: 'actions-viewer (viewer)' }).waitFor();
    await viewer.locator(`#workloads tr[data-workload="${ID}"]`).waitFor({ timeout: 20_000 });
    expect(await viewer.locator('#workloads button').count()).toBe(0);
    await go(viewer, `#/workloads/${ID}`);
    await viewer.locator('#page-id', { hasText: ID }).waitFor({ timeout: 20_000 });
    await viewer.locator('#moves, #migration-history').first().waitFor();
    expect(await viewer.locator('#console-panel, #logs-panel, .page-actions, #page button').count()).toBe(0);
    // and the API agrees: the log and a console ticket are an operator's
    const asViewer = (method: string, path: string) =>
      fetch(`${t.cluster.apiUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${(made.body as TokenCreated).token}`, 'content-type': 'application/json' },
        body: method === 'POST' ? '{}' : undefined,
      });
    expect((await asViewer('GET', `/v1/workloads/${ID}/logs`)).status).toBe(403);
    expect((await asViewer('POST', `/v1/workloads/${ID}/console`)).status).toBe(403);
    expect((await asViewer('POST', `/v1/workloads/${ID}/suspend`)).status).toBe(403);
    await shot(viewer, 'workload-viewer.png', `${ID}'s page as a viewer: no console, logs, suspend or resume`);
  });
});
