import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '@ferry/runtime';
import { TemplateRegistry } from './templates.ts';

const log = createLogger('templates-test').child({}, { level: 'silent' });

describe('TemplateRegistry', () => {
  let dir: string;
  const template = (name: string, manifest: unknown) => {
    mkdirSync(join(dir, name, 'rootfs'), { recursive: true });
    writeFileSync(join(dir, name, 'template.json'), JSON.stringify(manifest));
  };
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads distribution, init and default resources, and still takes a template.json without them', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-templates-'));
    template('debian-12', {
      name: 'debian-12',
      version: 'abc',
      distribution: { name: 'debian', release: '12', codename: 'bookworm' },
      init: { system: 'sysvinit', command: ['/sbin/init'], services: ['ssh', 'nginx'] },
      resources: { vcpus: 0.5, memoryMiB: 256, diskMiB: 1024 },
    });
    template('old', { name: 'old', version: '1' });
    const registry = new TemplateRegistry(dir, log);
    await registry.refresh();
    expect(registry.list()).toEqual([
      { name: 'debian-12', version: 'abc' },
      { name: 'old', version: '1' },
    ]);
    const debian = registry.get('debian-12')!;
    expect(debian.rootfs).toBe(join(dir, 'debian-12', 'rootfs'));
    expect(debian.manifest.init).toEqual({ system: 'sysvinit', command: ['/sbin/init'], services: ['ssh', 'nginx'] });
    expect(debian.manifest.resources).toEqual({ vcpus: 0.5, memoryMiB: 256, diskMiB: 1024, pids: 1024 });
    expect(registry.get('old')!.manifest.init).toBeUndefined();
  });

  it('skips a template whose template.json does not validate', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-templates-'));
    template('bad-init', { name: 'bad-init', version: '1', init: { system: 'upstart', command: ['/sbin/init'] } });
    template('no-command', { name: 'no-command', version: '1', init: { system: 'sysvinit', command: [] } });
    template('bad-resources', { name: 'bad-resources', version: '1', resources: { vcpus: 0, memoryMiB: 1, diskMiB: 1 } });
    template('good', { name: 'good', version: '1', init: { system: 'none', command: ['/usr/bin/ferry-workload'] } });
    const registry = new TemplateRegistry(dir, log);
    await registry.refresh();
    expect(registry.list().map((t) => t.name)).toEqual(['good']);
  });
});
