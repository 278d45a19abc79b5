import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { Name, Resources, type TemplateReport } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';

/** The init systems a template may run as its container's first process ('none': the workload's command is). */
export const INIT_SYSTEMS = ['none', 'runit', 'sysvinit', 'systemd'] as const;

/**
 * A template's template.json (written by deploy/setup). distribution, init and resources came
 * with the Debian template; a template.json without them (an older build) still loads.
 */
export const TemplateManifest = z.object({
  name: Name,
  version: z.string().min(1).max(64),
  description: z.string().max(1024).optional(),
  /** what the root filesystem is: `debian` `12` `bookworm`, `busybox` `1.35.0` */
  distribution: z.strictObject({ name: Name, release: z.string().min(1).max(64), codename: Name.optional() }).optional(),
  init: z
    .strictObject({
      system: z.enum(INIT_SYSTEMS),
      /** the container's process: the init (`/sbin/init`), or the default command when system is `none` */
      command: z.array(z.string().min(1).max(4096)).min(1).max(256),
      /** what the init starts (documentation: `ssh`, `nginx`) */
      services: z.array(Name).max(64).default([]),
    })
    .optional(),
  /** what a container of this template is given when nothing else is said */
  resources: Resources.optional(),
});
export type TemplateManifest = z.infer<typeof TemplateManifest>;

export interface Template extends TemplateReport {
  rootfs: string;
  manifest: TemplateManifest;
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
        found.set(manifest.name, { name: manifest.name, version: manifest.version, rootfs, manifest });
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
