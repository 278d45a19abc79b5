/**
 * Builds Ferry's Debian packages from this checkout (run by deploy/packaging/build-debs):
 *
 *   ferry-common   /usr/lib/ferry/node_modules: the shared workspace packages (@ferry/protocol,
 *                  runtime, core, store, security) as built JavaScript, and the third-party
 *                  production dependencies every shipped package needs, transitively
 *   ferry-agent    @ferry/agent, /usr/sbin/ferry-agent, /usr/lib/ferry/bin/ferry-fence-guard and
 *                  their units
 *   ferry-control  @ferry/scheduler, @ferry/api (with its dashboard files), @ferry/admin,
 *                  /usr/sbin/ferry-admin, /usr/lib/ferry/bin/ferry-{scheduler,api} and the units of
 *                  the control plane (NATS, Redis, scheduler, API)
 *   ferry-cli      /usr/bin/ferry: the self-contained CLI bundle, with node only
 *
 * Usage: build-debs.ts [OUT_DIR] [--skip-build]   (OUT_DIR default build/debs)
 * Version: the root package.json's, plus FERRY_DEB_VERSION_SUFFIX when set (e.g. `~git1234567`).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const here = join(repo, 'deploy', 'packaging');
const LIB = '/usr/lib/ferry';
const MODULES = `${LIB}/node_modules`;
const NODE = '/usr/bin/node';
/** node from NodeSource (Debian package `nodejs`); bookworm's own nodejs is 18, too old */
const NODE_DEPENDS = 'nodejs (>= 20.19)';
const MAINTAINER = 'Ferry developers <ferry@localhost>';

interface PackageJson {
  name: string;
  version: string;
  description?: string;
  type?: string;
  exports?: unknown;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

const readJson = (file: string): PackageJson => JSON.parse(readFileSync(file, 'utf8')) as PackageJson;
const say = (message: string) => console.log(`[build-debs] ${message}`);
const run = (command: string, args: string[]) => execFileSync(command, args, { cwd: repo, stdio: 'inherit' });

// --- arguments, version -----------------------------------------------------------------------
const argv = process.argv.slice(2);
const skipBuild = argv.includes('--skip-build');
const outDir = resolve(argv.find((a) => !a.startsWith('--')) ?? join(repo, 'build', 'debs'));
const version = `${readJson(join(repo, 'package.json')).version}${process.env.FERRY_DEB_VERSION_SUFFIX ?? ''}`;
if (!/^[0-9][A-Za-z0-9.+~-]*$/.test(version)) throw new Error(`not a Debian version: ${version}`);

// --- the build: tsc to build/js, the CLI bundle ------------------------------------------------
if (!skipBuild) {
  say('compiling (tsc -p tsconfig.build.json → build/js)');
  rmSync(join(repo, 'build', 'js'), { recursive: true, force: true });
  run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json']);
  say('bundling the CLI (packages/cli/build.mjs)');
  run(process.execPath, [join(repo, 'packages', 'cli', 'build.mjs')]);
}
const built = join(repo, 'build', 'js');
const cliBundle = join(repo, 'packages', 'cli', 'dist', 'ferry.mjs');
for (const needed of [built, cliBundle]) if (!existsSync(needed)) throw new Error(`${needed} missing: build first (npm run build)`);

// --- workspace packages: which ones, in which Debian package -------------------------------------
const workspaces = new Map<string, string>(); // @ferry/x → its directory in the checkout
for (const group of ['packages', 'services']) {
  for (const entry of readdirSync(join(repo, group))) {
    const file = join(repo, group, entry, 'package.json');
    if (existsSync(file)) workspaces.set(readJson(file).name, join(repo, group, entry));
  }
}
const SERVICES: Record<string, string[]> = {
  'ferry-agent': ['@ferry/agent'],
  'ferry-control': ['@ferry/scheduler', '@ferry/api', '@ferry/admin'],
};
// ferry-admin (services/admin) is new: a checkout without its main yet builds packages without it
if (!existsSync(join(repo, 'services', 'admin', 'src', 'main.ts'))) {
  say('warning: services/admin/src/main.ts does not exist yet: ferry-control is built without @ferry/admin and /usr/sbin/ferry-admin');
  SERVICES['ferry-control'] = SERVICES['ferry-control']!.filter((name) => name !== '@ferry/admin');
}
const withAdmin = SERVICES['ferry-control']!.includes('@ferry/admin');
/** what a workspace package needs at run time besides its compiled src/ (read relative to the code) */
const ASSETS: Record<string, string[]> = { '@ferry/api': ['ui'] };

function workspaceClosure(roots: string[]): string[] {
  const seen = new Set<string>();
  const visit = (name: string) => {
    if (seen.has(name)) return;
    const dir = workspaces.get(name);
    if (!dir) throw new Error(`workspace package ${name} not found`);
    seen.add(name);
    for (const dep of Object.keys(readJson(join(dir, 'package.json')).dependencies ?? {})) if (workspaces.has(dep)) visit(dep);
  };
  roots.forEach(visit);
  return [...seen];
}
const allShipped = workspaceClosure(Object.values(SERVICES).flat());
const serviceNames = new Set(Object.values(SERVICES).flat());
const commonWorkspaces = allShipped.filter((name) => !serviceNames.has(name));

// --- third-party production dependencies, transitively, resolved as node resolves them ----------
/** Finds the directory `name` resolves to from `fromDir` (node_modules of it and its ancestors, up to the checkout). */
function resolvePackage(name: string, fromDir: string): string | null {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === repo || dir === dirname(dir)) return null;
  }
}
const rootModules = join(repo, 'node_modules');
const thirdParty = new Map<string, string>(); // path under node_modules (e.g. "a/node_modules/b") → source dir
function collect(fromDir: string, pkg: PackageJson, optionalNames: Set<string>): void {
  const wanted = { ...pkg.dependencies, ...pkg.optionalDependencies, ...pkg.peerDependencies };
  for (const name of Object.keys(wanted)) {
    if (workspaces.has(name)) continue;
    const found = resolvePackage(name, fromDir);
    if (!found) {
      // optional ones (another platform's binary) and peers nobody installed are fine to lack
      if (optionalNames.has(name)) continue;
      throw new Error(`${pkg.name} needs ${name}, which is not installed (npm ci)`);
    }
    const real = realpathSync(found);
    const key = relative(rootModules, found);
    if (key.startsWith('..')) throw new Error(`${name} resolves outside the root node_modules (${found}): not supported`);
    if (thirdParty.has(key)) continue;
    thirdParty.set(key, real);
    const dep = readJson(join(real, 'package.json'));
    collect(found, dep, new Set([...Object.keys(dep.optionalDependencies ?? {}), ...Object.keys(dep.peerDependencies ?? {})]));
  }
}
for (const name of allShipped) {
  const dir = workspaces.get(name)!;
  const pkg = readJson(join(dir, 'package.json'));
  collect(dir, pkg, new Set(Object.keys(pkg.optionalDependencies ?? {})));
}
const DEV_ONLY = ['tsx', 'typescript', 'vitest', 'esbuild', 'playwright-core', '@types/node'];
for (const key of thirdParty.keys()) {
  const name = key.split('/node_modules/').pop()!;
  if (DEV_ONLY.includes(name)) throw new Error(`a development tool would be shipped: ${key}`);
}

// --- staging ------------------------------------------------------------------------------------
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const staging = join(outDir, '.staging');
const rootOf = (deb: string) => join(staging, deb);
const put = (deb: string, path: string, content: string, mode = 0o644) => {
  const file = join(rootOf(deb), path);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, content, { mode });
  chmodSync(file, mode);
};

/** A workspace package as built JavaScript: src/**.js, its assets, a package.json exporting the JS. */
function stageWorkspace(deb: string, name: string): void {
  const dir = workspaces.get(name)!;
  const source = readJson(join(dir, 'package.json'));
  const target = join(rootOf(deb), MODULES, name);
  const compiled = join(built, relative(repo, dir), 'src');
  if (!existsSync(compiled)) throw new Error(`${name}: no compiled code at ${compiled}`);
  cpSync(compiled, join(target, 'src'), { recursive: true });
  // files in src/ that are not TypeScript (data read at run time), without tests
  cpSync(join(dir, 'src'), join(target, 'src'), {
    recursive: true,
    filter: (from) => statSync(from).isDirectory() || !/\.(ts|mts|cts)$/.test(from),
  });
  for (const asset of ASSETS[name] ?? []) cpSync(join(dir, asset), join(target, asset), { recursive: true });
  const toJs = (value: unknown): unknown =>
    typeof value === 'string' ? value.replace(/\.(m|c)?ts$/, '.$1js') : value && typeof value === 'object' ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJs(v)])) : value;
  const pkg = {
    name: source.name,
    version: source.version,
    private: true,
    type: source.type ?? 'module',
    description: source.description,
    exports: toJs(source.exports),
    dependencies: source.dependencies,
  };
  put(deb, join(MODULES, name, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
}

const wrapper = (main: string) => `#!/bin/sh\n# Ferry, installed by a Debian package: runs the built JavaScript with plain node.\nexec ${NODE} ${main} "$@"\n`;
const mainOf = (name: string, file = 'main.js') => `${MODULES}/${name}/src/${file}`;

say(`staging ${version} in ${staging}`);
// ferry-common
for (const name of commonWorkspaces) stageWorkspace('ferry-common', name);
for (const [key, source] of thirdParty) {
  cpSync(source, join(rootOf('ferry-common'), MODULES, key), {
    recursive: true,
    dereference: true,
    // nested node_modules are staged one by one, only what is needed; type declarations and
    // source maps are for editors and debuggers, not for node
    filter: (from) => relative(source, from).split('/')[0] !== 'node_modules' && !/\.(d\.[mc]?ts|map)$/.test(from),
  });
}
// ferry-agent
stageWorkspace('ferry-agent', '@ferry/agent');
put('ferry-agent', '/usr/sbin/ferry-agent', wrapper(mainOf('@ferry/agent')), 0o755);
put('ferry-agent', `${LIB}/bin/ferry-fence-guard`, wrapper(mainOf('@ferry/agent', 'guard/main.js')), 0o755);
// ferry-control
for (const name of SERVICES['ferry-control']!) stageWorkspace('ferry-control', name);
if (withAdmin) put('ferry-control', '/usr/sbin/ferry-admin', wrapper(mainOf('@ferry/admin')), 0o755);
put('ferry-control', `${LIB}/bin/ferry-scheduler`, wrapper(mainOf('@ferry/scheduler')), 0o755);
put('ferry-control', `${LIB}/bin/ferry-api`, wrapper(mainOf('@ferry/api')), 0o755);
// ferry-cli
put('ferry-cli', `${LIB}/cli/ferry.mjs`, readFileSync(cliBundle, 'utf8'));
put('ferry-cli', '/usr/bin/ferry', wrapper(`${LIB}/cli/ferry.mjs`), 0o755);

// units (bookworm's packages still ship them in /lib/systemd/system) and maintainer scripts
const UNITS: Record<string, string[]> = {
  'ferry-agent': ['ferry-agent.service', 'ferry-fence-guard.service'],
  'ferry-control': ['ferry-nats.service', 'ferry-redis.service', 'ferry-redis-sentinel.service', 'ferry-scheduler.service', 'ferry-api.service'],
};
for (const [deb, units] of Object.entries(UNITS)) {
  for (const unit of units) put(deb, `/lib/systemd/system/${unit}`, readFileSync(join(here, 'units', unit), 'utf8'));
}
const helpers = readFileSync(join(here, 'debian', 'systemd-snippet.sh'), 'utf8');
for (const deb of Object.keys(UNITS)) {
  for (const script of ['postinst', 'prerm', 'postrm']) {
    const text = readFileSync(join(here, 'debian', deb, script), 'utf8').replace('@SYSTEMD_HELPERS@', helpers.trimEnd());
    put(deb, `DEBIAN/${script}`, text, 0o755);
  }
}
const readme = readFileSync(join(here, 'README.md'), 'utf8');
for (const deb of ['ferry-common', 'ferry-agent', 'ferry-control', 'ferry-cli']) put(deb, `/usr/share/doc/${deb}/README.packaging.md`, readme);

// --- control files and the build ------------------------------------------------------------------
const hasNative = (dir: string): boolean => readdirSync(dir, { withFileTypes: true }).some((e) => (e.isDirectory() ? hasNative(join(dir, e.name)) : e.name.endsWith('.node')));
const hostArch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
const exact = `(= ${version})`;
const CONTROL: Record<string, { depends: string; description: string[] }> = {
  'ferry-common': {
    depends: NODE_DEPENDS,
    description: [
      'Ferry: shared runtime (built JavaScript and its dependencies)',
      'The workspace libraries and third-party modules under /usr/lib/ferry that',
      'ferry-agent and ferry-control run with.',
    ],
  },
  'ferry-agent': {
    // CRIU >= 4.2 is not in bookworm: deploy/setup installs it privately (/usr/local/sbin/criu); postinst warns without it
    depends: `ferry-common ${exact}, ${NODE_DEPENDS}, runc, rsync, nftables, iproute2`,
    description: [
      'Ferry: host agent and fence guard',
      'Runs OS containers (runc), reports capacity, moves containers with rsync and',
      'CRIU (>= 4.2, installed separately), fences HA containers when its lease lapses.',
    ],
  },
  'ferry-control': {
    depends: `ferry-common ${exact}, ${NODE_DEPENDS}, nats-server, redis-server, openssl, adduser | passwd`,
    description: [
      'Ferry: control plane (scheduler, API, NATS and Redis units)',
      'The scheduler, the HTTP API and dashboard, ferry-admin, and systemd units for',
      'the NATS and Redis servers they use (separate from the stock ones).',
    ],
  },
  'ferry-cli': {
    depends: NODE_DEPENDS,
    description: ['Ferry: command line (ferry)', 'One self-contained JavaScript bundle, run with node.'],
  },
};
const debs: string[] = [];
for (const [deb, control] of Object.entries(CONTROL)) {
  const root = rootOf(deb);
  const arch = hasNative(root) ? hostArch : 'all';
  const installedKb = execFileSync('du', ['-sk', '--exclude=DEBIAN', root], { encoding: 'utf8' }).split('\t')[0];
  const [summary, ...long] = control.description;
  put(
    deb,
    'DEBIAN/control',
    [
      `Package: ${deb}`,
      `Version: ${version}`,
      `Architecture: ${arch}`,
      `Maintainer: ${MAINTAINER}`,
      `Installed-Size: ${installedKb}`,
      `Depends: ${control.depends}`,
      'Section: admin',
      'Priority: optional',
      'Homepage: https://github.com/ferry/ferry',
      `Description: ${summary}`,
      ...long.map((line) => ` ${line}`),
      '',
    ].join('\n'),
  );
  // no group- or world-writable files, whatever the checkout's umask was
  execFileSync('chmod', ['-R', 'u+rwX,go+rX,go-w', root]);
  const file = join(outDir, `${deb}_${version}_${arch}.deb`);
  execFileSync('dpkg-deb', ['--build', '--root-owner-group', '-Zgzip', root, file], { stdio: ['ignore', 'ignore', 'inherit'] });
  debs.push(file);
}
rmSync(staging, { recursive: true, force: true });
say(`${thirdParty.size} third-party modules; built:`);
for (const file of debs) console.log(`  ${file} (${Math.round(statSync(file).size / 1024)} KiB)`);
