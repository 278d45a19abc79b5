/**
 * The Debian packages (deploy/packaging): built from this checkout into a temporary directory,
 * their contents and control fields checked, every systemd unit verified with
 * `systemd-analyze verify`, and the packaged programs run with plain node.
 *
 * Nothing is installed on this machine: the packages are unpacked (dpkg -x) into a throwaway
 * root, and each check that needs them at their real paths (/usr/sbin/ferry-agent, …) runs in a
 * private mount namespace with that root laid over /usr (overlayfs) — what a `dpkg -i` would
 * put there, seen by nothing else. (The full install walk-through is another test's.) Root only.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = resolve(import.meta.dirname, '..');
const version = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version;
const withAdmin = existsSync(join(repo, 'services', 'admin', 'src', 'main.ts'));
const UNITS = {
  'ferry-agent': ['ferry-agent.service', 'ferry-fence-guard.service'],
  'ferry-control': ['ferry-nats.service', 'ferry-redis.service', 'ferry-redis-sentinel.service', 'ferry-scheduler.service', 'ferry-api.service'],
};
const ALL_UNITS = Object.values(UNITS).flat();
const DEV_TOOLS = ['tsx', 'typescript', 'vitest', 'esbuild', 'playwright-core', '@types/node', '@vitest'];

let work: string;
let root: string; // the packages unpacked
let debs: Record<string, string>; // package → .deb file

const sh = (command: string, args: string[]) => execFileSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
const field = (deb: string, name: string) => sh('dpkg-deb', ['-f', debs[deb]!, name]).trim();
const contents = (deb: string) =>
  sh('dpkg-deb', ['--contents', debs[deb]!])
    .split('\n')
    .filter(Boolean)
    .map((line) => line.slice(line.indexOf(' ./') + 2).replace(/ -> .*$/, ''));

/** Runs a shell script where the packages look installed: the unpacked /usr over the real one, in a private mount namespace. */
function inPackageRoot(script: string, timeoutMs = 30_000) {
  const result = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-ec', `mount -t overlay ferry-packages -o lowerdir=${root}/usr:/usr /usr\n${script}`], {
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A unit's ExecStart= command line and Environment= settings. */
function unitCommand(unit: string): { command: string; env: string[] } {
  const text = readFileSync(join(root, 'usr', 'lib', 'systemd', 'system', unit), 'utf8');
  const command = /^ExecStart=(.+)$/m.exec(text)![1]!;
  const env = [...text.matchAll(/^Environment=(.+)$/gm)].map((m) => m[1]!);
  return { command, env };
}

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('the packaging test needs root (unshare, mount)');
  // the overlay stands in for an installation only where /lib is /usr/lib (merged /usr, Debian 12)
  expect(readlinkSync('/lib')).toMatch(/^(\/)?usr\/lib$/);
  work = mkdtempSync(join(tmpdir(), 'ferry-packaging-'));
  const out = join(work, 'debs');
  const started = Date.now();
  execFileSync(join(repo, 'deploy', 'packaging', 'build-debs'), [out], { cwd: repo, stdio: ['ignore', 'inherit', 'inherit'] });
  console.log(`packages built in ${Date.now() - started} ms`);
  debs = {};
  for (const file of readdirSync(out).filter((f) => f.endsWith('.deb'))) debs[file.split('_')[0]!] = join(out, file);
  root = join(work, 'root');
  mkdirSync(root);
  for (const file of Object.values(debs)) sh('dpkg-deb', ['-x', file, root]);
  // bookworm's packages ship units in /lib/systemd/system, which is /usr/lib/systemd/system here
  if (existsSync(join(root, 'lib'))) {
    cpSync(join(root, 'lib'), join(root, 'usr', 'lib'), { recursive: true });
    rmSync(join(root, 'lib'), { recursive: true });
  }
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('Debian packages', () => {
  it('are the four packages, at the checkout version, with dependencies this Debian can satisfy', () => {
    expect(Object.keys(debs).sort()).toEqual(['ferry-agent', 'ferry-cli', 'ferry-common', 'ferry-control']);
    for (const deb of Object.keys(debs)) expect(field(deb, 'Version')).toBe(version);
    const depends = (deb: string) => field(deb, 'Depends').split(/,\s*/);
    expect(depends('ferry-common')).toEqual(['nodejs (>= 20.19)']);
    expect(depends('ferry-cli')).toEqual(['nodejs (>= 20.19)']);
    expect(depends('ferry-agent')).toEqual(expect.arrayContaining([`ferry-common (= ${version})`, 'runc', 'rsync', 'nftables', 'iproute2']));
    expect(depends('ferry-control')).toEqual(expect.arrayContaining([`ferry-common (= ${version})`, 'nats-server', 'redis-server', 'openssl']));
    // every dependency outside Ferry's own packages has an installation candidate from apt
    const external = new Map<string, string | null>();
    for (const deb of Object.keys(debs)) {
      for (const dep of depends(deb)) {
        const first = dep.split('|')[0]!.trim(); // an alternative's first choice
        const [, name, relation] = /^([a-z0-9.+-]+)(?:\s*\((.+)\))?$/.exec(first)!;
        if (!name!.startsWith('ferry-')) external.set(name!, relation ?? null);
      }
    }
    for (const [name, relation] of external) {
      const policy = sh('apt-cache', ['policy', name]);
      const candidate = /Candidate: (\S+)/.exec(policy)?.[1];
      expect(candidate, `${name} has no installation candidate`).toBeDefined();
      expect(candidate).not.toBe('(none)');
      if (relation) {
        const [op, wanted] = relation.split(/\s+/);
        const dpkgOp = { '>=': 'ge', '<=': 'le', '=': 'eq', '>>': 'gt', '<<': 'lt' }[op!]!;
        expect(spawnSync('dpkg', ['--compare-versions', candidate!, dpkgOp, wanted!]).status, `${name} ${candidate} is not ${relation}`).toBe(0);
      }
    }
  });

  it('hold the layout other code relies on', () => {
    const common = contents('ferry-common');
    for (const pkg of ['protocol', 'runtime', 'core', 'store']) {
      expect(common).toContain(`/usr/lib/ferry/node_modules/@ferry/${pkg}/package.json`);
      expect(common).toContain(`/usr/lib/ferry/node_modules/@ferry/${pkg}/src/index.js`);
    }
    for (const dep of ['zod', 'nats', 'pino', 'ioredis', 'bullmq', 'fastify', 'prom-client', 'execa']) {
      expect(common).toContain(`/usr/lib/ferry/node_modules/${dep}/package.json`);
    }
    for (const tool of DEV_TOOLS) expect(common.filter((path) => path.startsWith(`/usr/lib/ferry/node_modules/${tool}/`))).toEqual([]);

    const agent = contents('ferry-agent');
    for (const path of [
      '/usr/sbin/ferry-agent',
      '/usr/lib/ferry/bin/ferry-fence-guard',
      '/usr/lib/ferry/node_modules/@ferry/agent/package.json',
      '/usr/lib/ferry/node_modules/@ferry/agent/src/main.js',
      '/usr/lib/ferry/node_modules/@ferry/agent/src/guard/main.js',
      '/lib/systemd/system/ferry-agent.service',
      '/lib/systemd/system/ferry-fence-guard.service',
    ]) {
      expect(agent).toContain(path);
    }
    const control = contents('ferry-control');
    for (const path of [
      '/usr/lib/ferry/bin/ferry-scheduler',
      '/usr/lib/ferry/bin/ferry-api',
      '/usr/lib/ferry/node_modules/@ferry/scheduler/src/main.js',
      '/usr/lib/ferry/node_modules/@ferry/api/src/main.js',
      // the dashboard, where the API's code finds it (../../ui/ from src/routes/)
      '/usr/lib/ferry/node_modules/@ferry/api/ui/index.html',
      '/usr/lib/ferry/node_modules/@ferry/api/ui/app.js',
      '/usr/lib/ferry/node_modules/@ferry/api/ui/style.css',
      ...UNITS['ferry-control'].map((unit) => `/lib/systemd/system/${unit}`),
      ...(withAdmin ? ['/usr/sbin/ferry-admin', '/usr/lib/ferry/node_modules/@ferry/admin/src/main.js'] : []),
    ]) {
      expect(control).toContain(path);
    }
    expect(contents('ferry-cli')).toEqual(expect.arrayContaining(['/usr/bin/ferry', '/usr/lib/ferry/cli/ferry.mjs']));
    // built JavaScript only: no TypeScript sources, no tests
    for (const deb of ['ferry-common', 'ferry-agent', 'ferry-control']) {
      expect(contents(deb).filter((path) => path.startsWith('/usr/lib/ferry/node_modules/@ferry/') && /\.ts$|\.test\.js$/.test(path))).toEqual([]);
    }
    // each workspace package's exports name its built JavaScript
    const api = JSON.parse(readFileSync(join(root, 'usr/lib/ferry/node_modules/@ferry/api/package.json'), 'utf8')) as { exports: Record<string, string> };
    expect(api.exports['.']).toBe('./src/index.js');
    // maintainer scripts: shell that parses, with the systemd helpers pasted in
    for (const deb of ['ferry-agent', 'ferry-control']) {
      const control = join(work, `${deb}.control`);
      sh('dpkg-deb', ['--control', debs[deb]!, control]);
      for (const script of ['postinst', 'prerm', 'postrm']) {
        const text = readFileSync(join(control, script), 'utf8');
        expect(text).not.toContain('@SYSTEMD_HELPERS@');
        expect(spawnSync('sh', ['-n', join(control, script)]).status, `${deb} ${script}`).toBe(0);
      }
    }
  });

  it('have units that systemd-analyze verify accepts, with nothing to say', () => {
    const result = inPackageRoot(`systemd-analyze verify ${ALL_UNITS.join(' ')}`);
    const said = `${result.stdout}${result.stderr}`.trim();
    console.log(`systemd-analyze verify ${ALL_UNITS.join(' ')}: exit ${result.status}${said ? `\n${said}` : ', no output'}`);
    expect(said).toBe('');
    expect(result.status).toBe(0);
    // what the units promise besides what verify checks
    const unit = (name: string) => readFileSync(join(root, 'usr/lib/systemd/system', name), 'utf8');
    expect(unit('ferry-fence-guard.service')).toMatch(/^Restart=always$/m);
    expect(unit('ferry-fence-guard.service')).toMatch(/^ExecStart=.*--persistent/m);
    expect(unit('ferry-fence-guard.service')).not.toMatch(/^(PartOf|BindsTo)=/m);
    expect(unit('ferry-agent.service')).toMatch(/^Wants=ferry-fence-guard\.service$/m);
    expect(unit('ferry-agent.service')).toMatch(/^Environment=FERRY_FENCE_GUARD=unit$/m);
    for (const name of ALL_UNITS.filter((u) => u !== 'ferry-fence-guard.service')) expect(unit(name)).toMatch(/^Restart=on-failure$/m);
    for (const name of UNITS['ferry-control']) {
      expect(unit(name)).toMatch(/^User=ferry$/m);
      expect(unit(name)).toMatch(/^NoNewPrivileges=yes$/m);
      expect(unit(name)).toMatch(/^ProtectSystem=strict$/m);
    }
    for (const name of ['ferry-scheduler.service', 'ferry-api.service']) {
      expect(unit(name)).toMatch(/^After=.*ferry-nats\.service ferry-redis\.service/m);
      expect(unit(name)).toMatch(/^Wants=.*ferry-nats\.service ferry-redis\.service/m);
    }
  });

  it('run with plain node from their units’ command lines', () => {
    // the fence guard as its unit starts it: writes its pid file and keeps waiting without a lease
    // (a private /var/lib in the namespace stands in for the machine's)
    const guard = unitCommand('ferry-fence-guard.service');
    const ran = inPackageRoot(
      `mount -t tmpfs ferry-var-lib /var/lib
${guard.command} > ${work}/guard.out 2>&1 & pid=$!
for i in $(seq 1 50); do [ -s /var/lib/ferry/agent/fence-guard.pid ] && break; sleep 0.1; done
# without --persistent it would give up after 5 s without a lease state
sleep 5.5
kill -0 $pid && echo "guard running"
cat /var/lib/ferry/agent/fence-guard.pid; echo
kill $pid; wait $pid || true
cat ${work}/guard.out`,
    );
    expect(ran.stdout, ran.stderr).toContain('guard running');
    expect(ran.stdout).toContain('"persistent":true');

    // the agent's own guard (fenceGuard: spawn, outside systemd), started from the built code: main.js, not main.ts
    const agentDir = '/usr/lib/ferry/node_modules/@ferry/agent/src';
    // (a script file: process.execArgv, which the launcher passes on, must hold no `-e`)
    const script = join(work, 'spawn-guard.mjs');
    writeFileSync(
      script,
      `import { createLogger } from '/usr/lib/ferry/node_modules/@ferry/runtime/src/index.js';
import { ensureGuard, stopGuard } from '${agentDir}/guard/launcher.js';
const dir = process.argv[2];
console.log('spawned guard', await ensureGuard(dir, 500, createLogger('test')));
await stopGuard(dir);
`,
    );
    const spawned = inPackageRoot(`dir=$(mktemp -d ${work}/spawn-XXXXXX)\nnode ${script} $dir\ncat $dir/fence-guard.log`);
    expect(spawned.status, spawned.stderr).toBe(0);
    expect(spawned.stdout).toMatch(/spawned guard \d+/);
    expect(spawned.stdout).toContain('fence guard started');

    // the agent, the scheduler and the API load their whole module graph and stop at the missing
    // configuration (ferry-admin init / ferry-agent join write it)
    for (const [unit, expected] of [
      ['ferry-agent.service', /cannot read config file \/etc\/ferry\/agent\.json/],
      ['ferry-scheduler.service', /invalid configuration/],
      ['ferry-api.service', /invalid configuration/],
    ] as const) {
      const { command, env } = unitCommand(unit);
      const result = inPackageRoot(`cd / && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin ${env.join(' ')} ${command}`);
      expect(result.status, `${unit}: ${result.stderr}`).not.toBe(0);
      expect(`${result.stdout}${result.stderr}`, unit).toMatch(expected);
      expect(`${result.stdout}${result.stderr}`, unit).not.toMatch(/ERR_MODULE_NOT_FOUND|ERR_UNKNOWN_FILE_EXTENSION|Cannot find (module|package)/);
    }
  });

  it.runIf(withAdmin)('have a ferry-admin that runs from the package', () => {
    const result = inPackageRoot('/usr/sbin/ferry-admin --help');
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/ferry-admin init/);
    expect(result.stdout).toMatch(/ferry-admin join-token/);
  });

  it('put a ferry on PATH that answers in well under a second', () => {
    const result = inPackageRoot(`
      export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
      command -v ferry
      head -c 200 /usr/bin/ferry
      start=$(date +%s%N); ferry --help > ${work}/help.out; end=$(date +%s%N)
      echo "ms=$(( (end - start) / 1000000 ))"
      head -n 3 ${work}/help.out`);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('/usr/bin/ferry');
    expect(result.stdout).not.toContain('tsx');
    expect(result.stdout).toContain('Usage: ferry');
    const ms = Number(/ms=(\d+)/.exec(result.stdout)![1]);
    console.log(`ferry --help from the package: ${ms} ms`);
    expect(ms).toBeLessThan(2000);
  });
});
