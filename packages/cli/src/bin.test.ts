import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(cli, 'dist', 'ferry.mjs');
const build = () => execFileSync(process.execPath, [join(cli, 'build.mjs')], { stdio: 'pipe' });

/** `sh -x` shows which command bin/ferry ran; from a directory far from the checkout. */
const run = (path: string, args: string[]) => spawnSync('sh', ['-x', path, ...args], { cwd: tmpdir(), encoding: 'utf8', env: { ...process.env, FERRY_CONFIG: '/nonexistent/ferry.yaml' } });

describe('bin/ferry', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bin-'));
  const link = join(dir, 'ferry');
  const chained = join(dir, 'ferry-again');

  beforeAll(() => {
    build();
    symlinkSync(join(cli, 'bin', 'ferry'), link); // like a link on PATH or node_modules/.bin (npx)
    symlinkSync(link, chained);
  });

  afterAll(() => {
    build(); // leave a fresh bundle behind
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs the bundle through a symlink (and a link to it), from another directory', () => {
    for (const path of [link, chained]) {
      const help = run(path, ['--help']);
      expect(help.status, help.stderr).toBe(0);
      expect(help.stdout).toContain('Usage: ferry [options] [command]');
      expect(help.stderr).toContain(`exec node ${bundle} --help`);
    }
    const hosts = run(link, ['hosts', '--help']);
    expect(hosts.stdout).toMatch(/Global Options:\n\s+-o, --output <format>/); // -o in every subcommand's help
  });

  it('falls back to tsx from source, still through the symlink, when the bundle is older than the sources', () => {
    utimesSync(bundle, new Date(0), new Date(0));
    const help = run(link, ['--help']);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('Usage: ferry [options] [command]');
    expect(help.stderr).toMatch(/exec node --import file:\/\/\S+\/node_modules\/tsx\/dist\/loader\.mjs \S+\/src\/main\.ts --help/);
  }, 30_000);
});
