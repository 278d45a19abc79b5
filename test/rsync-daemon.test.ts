import { mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RsyncDaemon, rsyncPull, rsyncPush } from '../services/agent/src/migration/rsync.ts';

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

/**
 * The migration's transfer daemon with the real rsync: a root filesystem arrives as it left,
 * absolute symlinks included. (Unchrooted, rsyncd rewrote every absolute symlink it received to
 * `/rsyncd-munged/…`: a moved Debian lost /etc/service and every /etc/alternatives link.)
 */
describe('the transfer daemon (real rsync)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-rsyncd-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps absolute and relative symlinks, pushed and pulled', async () => {
    const from = join(dir, 'from');
    mkdirSync(join(from, 'rootfs/etc/runit/runsvdir/default'), { recursive: true });
    symlinkSync('/etc/runit/runsvdir/default', join(from, 'rootfs/etc/runit/runsvdir/current'));
    symlinkSync('runit/runsvdir/current', join(from, 'rootfs/etc/service'));
    writeFileSync(join(from, 'rootfs/etc/hostname'), 'vps1\n');
    const module = join(dir, 'module');
    mkdirSync(module);
    const port = await freePort();
    const secret = 's'.repeat(40);
    const daemon = await RsyncDaemon.start({ dir: mkdtempSync(join(dir, 'd-')), address: '127.0.0.1', port, user: 'ferry', secret, allowFrom: '127.0.0.1', modules: [{ name: 'ct', path: module }] });
    try {
      const target = { address: '127.0.0.1', port, user: 'ferry', secret };
      await rsyncPush(from, target, 'ct');
      expect(readlinkSync(join(module, 'rootfs/etc/runit/runsvdir/current'))).toBe('/etc/runit/runsvdir/default');
      expect(readlinkSync(join(module, 'rootfs/etc/service'))).toBe('runit/runsvdir/current');
      expect(readFileSync(join(module, 'rootfs/etc/hostname'), 'utf8')).toBe('vps1\n');
      // and back (a page-server rollback pulls from the destination's daemon)
      const back = join(dir, 'back');
      mkdirSync(back);
      await rsyncPull(target, 'ct', 'rootfs/etc/runit/runsvdir', back, ['current']);
      expect(readlinkSync(join(back, 'current'))).toBe('/etc/runit/runsvdir/default');
    } finally {
      daemon.stop();
    }
  });
});
