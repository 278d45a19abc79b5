import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { repoRoot } from '@ferry/deploy';

/**
 * The console's browser tests' Chromium: Debian's (deploy/setup installs it), driven headless by
 * playwright-core, one page per fresh context, screenshots kept as test artifacts.
 */
export const CHROMIUM = '/usr/lib/chromium/chromium';
/** git-ignored (test/artifacts/): the screenshots the console tests keep */
export const SHOTS = join(repoRoot, 'test', 'artifacts', 'console');

/** True when Chromium is missing outside CI (the test is skipped, with a warning); in CI a missing Chromium is an error. */
export function skipBrowser(what: string): boolean {
  if (existsSync(CHROMIUM)) return false;
  if (process.env.CI) throw new Error(`${what} cannot run in CI: ${CHROMIUM} is missing (deploy/setup installs chromium)`);
  console.warn(`skipping ${what}: ${CHROMIUM} is missing (run deploy/setup)`);
  return true;
}

/** Headless Chromium, with the screenshots' directory made. */
export async function launchBrowser(): Promise<Browser> {
  mkdirSync(SHOTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, headless: true });
}

/** A page in a context of its own (its own local storage and cache), at the console's test size. */
export async function freshPage(browser: Browser): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  return context.newPage();
}

/** Keeps a full-page screenshot in SHOTS (checked not blank: more than 10 kB) and says what it shows. */
export async function keepScreenshot(page: Page, name: string, what: string): Promise<void> {
  const file = join(SHOTS, name);
  await page.screenshot({ path: file, fullPage: true });
  expect(statSync(file).size).toBeGreaterThan(10_000);
  console.log(`screenshot ${file}: ${what}`);
}
