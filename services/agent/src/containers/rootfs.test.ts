import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '@ferry/runtime';
import { RootfsStore, diskLimitBytes } from './rootfs.ts';
import type { Template } from './templates.ts';

// A plain directory pool (what a tmpfs or ext4 directory is): copy mode. The btrfs mode needs
// root and a loop device: test/cow-quota.test.ts runs it in the lab.
let dir: string;
let template: Template;
const log = createLogger('test', { level: 'silent' });
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-rootfs-'));
  const rootfs = join(dir, 'tpl', 'rootfs');
  await mkdir(join(rootfs, 'etc'), { recursive: true });
  await writeFile(join(rootfs, 'etc', 'hostname'), 'tpl\n');
  template = { name: 'tiny', version: 'abc123', rootfs, manifest: { name: 'tiny', version: 'abc123' } };
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('RootfsStore on a plain directory pool', () => {
  const pool = () => ({ id: 'local', path: join(dir, 'pool'), shared: false });

  it('copies the template into <pool>/containers/<id>/rootfs and records which template it came from', async () => {
    const store = new RootfsStore(log);
    await mkdir(pool().path);
    expect(await store.mode(pool())).toBe('copy');
    const { rootfs, mode } = await store.create(pool(), template, 'w1', 64 * 1024 * 1024);
    expect(mode).toBe('copy');
    expect(rootfs).toBe(join(dir, 'pool', 'containers', 'w1', 'rootfs'));
    expect(await readFile(join(rootfs, 'etc', 'hostname'), 'utf8')).toBe('tpl\n');
    expect(existsSync(`${rootfs}.partial`)).toBe(false);
    expect(await RootfsStore.readBase(join(dir, 'pool', 'containers', 'w1'))).toEqual({ template: 'tiny', version: 'abc123' });
  });

  it('prepares nothing for a migration (rsync makes the directories), reports no quota usage, and removes a container directory', async () => {
    const store = new RootfsStore(log);
    await mkdir(pool().path);
    expect(await store.receive(pool(), template, 'w2', 1)).toBeNull();
    expect(existsSync(join(dir, 'pool', 'containers', 'w2'))).toBe(false);
    await store.create(pool(), template, 'w3', 1);
    expect(await store.usage([pool()])).toEqual(new Map());
    await store.removeContainerDir(pool(), join(dir, 'pool', 'containers', 'w3'));
    expect(existsSync(join(dir, 'pool', 'containers', 'w3'))).toBe(false);
  });

  it('limits a container to its workload disk size', () => {
    expect(diskLimitBytes({ resources: { vcpus: 1, memoryMiB: 64, diskMiB: 256, pids: 64 } })).toBe(256 * 1024 * 1024);
  });
});
