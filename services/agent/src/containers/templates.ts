import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { Name, type TemplateReport } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';

const TemplateManifest = z.object({ name: Name, version: z.string().min(1).max(64), description: z.string().optional() });

export interface Template extends TemplateReport {
  rootfs: string;
}

/**
 * OS templates registered on this host: each directory of `dir` holding a template.json and a
 * rootfs/ directory. A directory that does not qualify is skipped with a warning, once.
 */
export class TemplateRegistry {
  private templates = new Map<string, Template>();
  private readonly warned = new Set<string>();

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  async refresh(): Promise<void> {
    const found = new Map<string, Template>();
    let entries: string[] = [];
    try {
      entries = await readdir(this.dir);
    } catch (err) {
      if (!this.warned.has(this.dir)) this.log.warn({ dir: this.dir, err: (err as Error).message }, 'no templates directory');
      this.warned.add(this.dir);
    }
    for (const entry of entries.sort()) {
      const base = join(this.dir, entry);
      try {
        const manifest = TemplateManifest.parse(JSON.parse(await readFile(join(base, 'template.json'), 'utf8')));
        const rootfs = join(base, 'rootfs');
        if (!(await stat(rootfs)).isDirectory()) throw new Error('rootfs is not a directory');
        found.set(manifest.name, { name: manifest.name, version: manifest.version, rootfs });
      } catch (err) {
        if (!this.warned.has(base)) this.log.warn({ template: base, err: (err as Error).message }, 'not a usable template; skipped');
        this.warned.add(base);
      }
    }
    this.templates = found;
  }

  get(name: string): Template | undefined {
    return this.templates.get(name);
  }

  list(): TemplateReport[] {
    return [...this.templates.values()].map(({ name, version }) => ({ name, version }));
  }
}
