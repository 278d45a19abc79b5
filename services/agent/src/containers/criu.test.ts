import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Criu, CriuError } from './criu.ts';
import { Runc } from './runc.ts';

// A stand-in CRIU: records its arguments, writes the pid file it is given (as `--daemon` does), and
// fails when asked to. Proves which binary runs and with what, without a CRIU.
let dir: string;
let fake: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-criu-'));
  fake = join(dir, 'criu');
  const script = [
    '#!/bin/sh',
    `printf '%s\\n' "$@" > "${dir}/args"`,
    'prev=""',
    'for a in "$@"; do if [ "$prev" = "--pidfile" ]; then echo 4242 > "$a"; fi; prev="$a"; done',
    'case "$1" in fail) echo "Error (criu.c:1): no" >&2; exit 1;; esac',
    'exit 0',
  ].join('\n');
  await writeFile(fake, script);
  await chmod(fake, 0o755);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const argsSeen = async () => (await readFile(join(dir, 'args'), 'utf8')).trim().split('\n');

describe('the Criu runner', () => {
  it('runs the configured binary, and runc is told the same one', () => {
    const criu = new Criu('/opt/ferry/bin/criu');
    expect(criu.argv(['check'])).toEqual(['/opt/ferry/bin/criu', ['check']]);
    const [, args] = new Runc('/var/lib/ferry/runc', 'runc', criu).argv(['restore', 'w1']);
    expect(args.slice(0, 4)).toEqual(['--root', '/var/lib/ferry/runc', '--criu', '/opt/ferry/bin/criu']);
  });

  it('starts a page server as a daemon with TLS and answers its pid', async () => {
    const pid = await new Criu(fake).pageServer({ imagesDir: '/img', address: '10.0.0.2', port: 7000, tlsArgs: ['--tls'], pidFile: join(dir, 'ps.pid'), logFile: '/log' });
    expect(pid).toBe(4242);
    expect(await argsSeen()).toEqual(['page-server', '--images-dir', '/img', '--address', '10.0.0.2', '--port', '7000', '--tls', '-o', '/log', '--daemon', '--pidfile', join(dir, 'ps.pid')]);
  });

  it('starts a lazy-pages daemon against the source', async () => {
    const pid = await new Criu(fake).lazyPages({
      source: { address: '10.0.0.1', port: 7001 },
      tlsArgs: ['--tls'],
      imagesDir: '/img',
      workDir: '/work',
      pidFile: join(dir, 'lp.pid'),
      logFile: 'lazy-pages.log',
    });
    expect(pid).toBe(4242);
    expect((await argsSeen()).slice(0, 6)).toEqual(['lazy-pages', '--page-server', '--address', '10.0.0.1', '--port', '7001']);
  });

  it('reports a failed run with what CRIU said', async () => {
    const criu = new Criu(fake);
    expect((await criu.run(['fail'])).exitCode).toBe(1);
    // a daemon that fails to start is an error naming CRIU's message
    const failing = new Criu(join(dir, 'missing-criu'));
    await expect(failing.pageServer({ imagesDir: '/i', address: 'a', port: 1, tlsArgs: [], pidFile: join(dir, 'x.pid'), logFile: '/l' })).rejects.toBeInstanceOf(CriuError);
  });
});
