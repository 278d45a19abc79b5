import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { repoRoot } from '@ferry/deploy';
import type { ConsoleTicket, ExecResult, MigrationRecord, TokenCreated } from '@ferry/protocol';
import { ConsoleConnection } from '../packages/cli/src/console-client.ts';
import { eventually } from './helpers/cluster.ts';
import { skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { labApi, labWorkload } from './helpers/workload.ts';

const ID = 'op-1';
// eslint-disable-next-line no-control-regex -- terminal control sequences are what is stripped
const controls = /\x1b\[[0-9;?]*[A-Za-z]/g;
/** a root shell's prompt at the end of the output, once control sequences are left out (busybox ash follows its prompt with a cursor-position query, ESC [6n, and redraws it) */
const PROMPT = { test: (output: string) => /[#$] $/.test(output.replace(controls, '')) };
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))]!;

describe.skipIf(skipLab())('exec and console in a running container, through the API (issue 17 part 6)', () => {
  let t: LabCluster;
  let viewer: string;
  let operator: string;
  const { api, get, running, finished } = labApi(() => t);
  const as = (token: string, method: string, path: string, body?: unknown) =>
    fetch(`${t.cluster.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(async (r) => ({
      status: r.status,
      body: (await r.json()) as any,
    }));
  const exec = async (argv: string[], extra: Record<string, unknown> = {}) => {
    const res = await as(operator, 'POST', `/v1/workloads/${ID}/exec`, { argv, ...extra });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body as ExecResult;
  };
  const ferry = (token: string, args: string[]) =>
    execa(join(repoRoot, 'packages', 'cli', 'bin', 'ferry'), args, {
      reject: false,
      cwd: repoRoot,
      env: { FERRY_CONFIG: '/nonexistent/ferry.yaml', FERRY_API_URL: t.cluster.apiUrl, FERRY_API_TOKEN: token },
    });
  /** pids inside the container's pid namespace (its /proc), as exec sees them, without exec's own `ls` */
  const containerPids = async () => {
    // sh's own builtins only (no fork), sh itself ($$) left out, and zombies: the lab's init (ferry-workload)
    // reaps no orphans, so a killed background job stays a zombie in /proc until the container stops
    const { stdout } = await exec([
      'sh',
      '-c',
      'for p in /proc/[0-9]*; do n=${p#/proc/}; [ "$n" = "$$" ] && continue; read -r s < "$p/stat" || continue; case "$s" in *") Z "*) ;; *) echo "$n";; esac; done',
    ]);
    return stdout.split('\n').filter((p) => /^\d+$/.test(p));
  };
  /** runc exec -t of this workload still on the host (a session's leftovers) */
  const hostConsoleProcesses = async () => {
    const { stdout } = await execa('ps', ['-eo', 'pid,args'], { reject: false });
    return stdout.split('\n').filter((line) => line.includes(' exec -t ') && line.includes(` ${ID} `));
  };
  const openConsole = async (token = operator) => {
    const res = await as(token, 'POST', `/v1/workloads/${ID}/console`, { rows: 30, cols: 100 });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const ticket = res.body as ConsoleTicket;
    const connection = await ConsoleConnection.open({ url: t.cluster.apiUrl, token, from: 'test' }, ticket);
    let output = '';
    connection.onData = (bytes) => (output += Buffer.from(bytes).toString('utf8'));
    return { ticket, connection, output: () => output };
  };

  /** until `re` matches the session's output; on a timeout the error shows the output's end */
  const seen = (what: string, output: () => string, re: { test(text: string): boolean }, timeoutMs = 15_000) =>
    eventually(what, async () => re.test(output()), timeoutMs, 20).catch((err: Error) => {
      throw new Error(`${err.message}; the output ended with ${JSON.stringify(output().slice(-300))}`);
    });

  beforeAll(async () => {
    t = await startLabCluster(['h1', 'h2']);
    await running(labWorkload(ID, '10.77.0.61'));
    const made = async (name: string, role: string) => ((await api('POST', '/v1/tokens', { name, role })).body as TokenCreated).token;
    viewer = await made('ro', 'viewer');
    operator = await made('ops', 'operator');
  }, 120_000);

  afterAll(async () => {
    await t?.close();
  });

  it('exec: output, exit codes, stdin, a timeout; bad input is a 400 that runs nothing; a missing workload 404; a viewer 403; the CLI exits with the code', async () => {
    expect(await exec(['echo', 'hello', 'a b; echo $HOME'])).toMatchObject({
      exitCode: 0,
      stdout: 'hello a b; echo $HOME\n',
      stderr: '',
      timedOut: false,
      truncated: { stdout: false, stderr: false },
    });
    expect(await exec(['sh', '-c', 'echo out; echo err >&2; exit 7'])).toMatchObject({ exitCode: 7, stdout: 'out\n', stderr: 'err\n' });
    expect(await exec(['cat'], { stdin: 'typed\n' })).toMatchObject({ exitCode: 0, stdout: 'typed\n' });
    const big = await exec(['sh', '-c', 'yes 0123456789 | head -c 400000']);
    expect(big.stdout.length).toBe(256 * 1024);
    expect(big.truncated.stdout).toBe(true);

    const before = await containerPids();
    const slow = await exec(['sleep', '30'], { timeoutMs: 500 });
    expect(slow).toMatchObject({ timedOut: true, exitCode: null, signal: 'SIGKILL' });
    expect(slow.ms).toBeLessThan(5_000);
    expect(await containerPids()).toEqual(before); // the sleep is gone

    // bad input: each problem named, nothing runs (the touch would leave a file)
    for (const body of [
      { argv: [] },
      { argv: [''] },
      { argv: ['touch', '/tmp/bad'], timeoutMs: 5 },
      { argv: ['touch', '/tmp/bad'], shell: true },
      { argv: 'touch /tmp/bad' },
      { argv: ['touch', '/tmp/b\u0000ad'] },
    ]) {
      const res = await as(operator, 'POST', `/v1/workloads/${ID}/exec`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.code).toBe('BAD_REQUEST');
      expect(res.body.message).toMatch(/^invalid body: /);
    }
    expect((await exec(['ls', '/tmp/bad'])).exitCode).not.toBe(0);

    const missing = await as(operator, 'POST', '/v1/workloads/nope/exec', { argv: ['true'] });
    expect(missing.status).toBe(404);
    expect(missing.body.message).toBe('no workload nope');
    const refused = await as(viewer, 'POST', `/v1/workloads/${ID}/exec`, { argv: ['touch', '/tmp/viewer'] });
    expect(refused.status).toBe(403);
    expect(refused.body.message).toContain('needs the operator role');
    expect((await as(viewer, 'POST', `/v1/workloads/${ID}/console`, {})).status).toBe(403);
    expect((await exec(['ls', '/tmp/viewer'])).exitCode).not.toBe(0);

    const cli = await ferry(operator, ['exec', ID, '--', 'sh', '-c', 'echo from-cli; echo oops >&2; exit 3']);
    expect(cli.exitCode).toBe(3);
    expect(cli.stdout).toBe('from-cli');
    expect(cli.stderr).toBe('oops');
    const cliViewer = await ferry(viewer, ['exec', ID, '--', 'true']);
    expect(cliViewer.exitCode).toBe(3);
    expect(cliViewer.stderr).toContain('needs the operator role');

    // round trips of a trivial command (API → NATS → agent → runc exec and back), noisy: 2 shared cores
    const ms: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      await exec(['true']);
      ms.push(performance.now() - started);
    }
    console.log(`exec round trip of 'true' over 20 runs: p50 ${percentile(ms, 50).toFixed(0)} ms, p99 ${percentile(ms, 99).toFixed(0)} ms`);
  }, 120_000);

  it('console: a shell prompt over the WebSocket, 6*7 is 42, exit ends it with its code and leaves nothing; a ticket works once; a detach ends the shell too', async () => {
    const before = await containerPids();
    const started = performance.now();
    const { ticket, connection, output } = await openConsole();
    await seen('a shell prompt', output, PROMPT);
    console.log(`console: prompt ${(performance.now() - started).toFixed(0)} ms after asking for the ticket`);
    expect(await hostConsoleProcesses()).toHaveLength(1);
    connection.write(Buffer.from('echo $((6*7))\n'));
    await seen('42', output, /\r\n42\r\n/);
    // the terminal's size: the ticket's, then a resize (set on the host's terminal, copied by runc into the container's)
    connection.write(Buffer.from('busybox stty size\n'));
    await seen('the size asked for', output, /\r\n30 100\r\n/);
    connection.resize(40, 120);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    connection.write(Buffer.from('busybox stty size\n'));
    await seen('the new size', output, /\r\n40 120\r\n/);
    connection.write(Buffer.from('exit 5\n'));
    expect(await connection.ended).toEqual({ exitCode: 5, reason: 'the shell exited' });
    await eventually('no runc exec -t left on the host', async () => (await hostConsoleProcesses()).length === 0, 10_000);
    expect(await containerPids()).toEqual(before);

    // the ticket was spent: a second connection with it is refused
    await expect(ConsoleConnection.open({ url: t.cluster.apiUrl, token: operator, from: 'test' }, ticket)).rejects.toThrow(/unknown, used or expired console ticket/);

    // detaching (the client closes) ends the shell, a background job in it included
    const second = await openConsole();
    await seen('a shell prompt', second.output, PROMPT);
    second.connection.write(Buffer.from('sleep 300 &\n'));
    await eventually('the sleep in the container', async () => (await containerPids()).length > before.length + 1, 10_000);
    second.connection.close();
    await eventually('the detached session cleaned up', async () => (await hostConsoleProcesses()).length === 0 && (await containerPids()).length === before.length, 15_000);
    expect(await containerPids()).toEqual(before);
  }, 120_000);

  it('ferry console: the local terminal attached in raw mode, 42 on it, the shell’s exit code as ferry’s', async () => {
    const bin = join(repoRoot, 'packages', 'cli', 'bin', 'ferry');
    // a terminal for ferry (script's; a constant line, the path in the environment), typed into once the prompt is there
    const run = execa('script', ['-qfec', `"$FERRY_BIN" console ${ID}`, '/dev/null'], {
      reject: false,
      cwd: repoRoot,
      env: { FERRY_BIN: bin, FERRY_CONFIG: '/nonexistent/ferry.yaml', FERRY_API_URL: t.cluster.apiUrl, FERRY_API_TOKEN: operator, TERM: 'xterm' },
      timeout: 60_000,
    });
    let screen = '';
    run.stdout!.on('data', (chunk: Buffer) => (screen += chunk.toString('utf8')));
    await seen('a shell prompt through ferry console', () => screen, PROMPT, 40_000);
    run.stdin!.write('echo $((6*7))\n');
    // the outer terminal (script's) adds a CR of its own to each line end
    await seen('42 through ferry console', () => screen, /\n42\r+\n/);
    run.stdin!.write('exit 4\n');
    const done = await run;
    expect(screen).toContain(`console of ${ID} on`);
    expect(screen).toContain('the shell exited (exit 4)');
    expect(done.exitCode).toBe(4);
    await eventually('no runc exec -t left on the host', async () => (await hostConsoleProcesses()).length === 0, 10_000);
  }, 90_000);

  it('a migration ends the workload’s console sessions first, saying so, and then moves it', async () => {
    const { connection, output } = await openConsole();
    await seen('a shell prompt', output, PROMPT);
    const from = (await get(ID)).hostId!;
    const res = await api('POST', `/v1/workloads/${ID}/migrate`, {});
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const ended = await connection.ended;
    expect(ended).toEqual({ exitCode: null, reason: 'the workload is migrating to another host' });
    const m = await finished((res.body as { migration: MigrationRecord }).migration.id);
    expect(m.state).toBe('completed');
    expect((await get(ID)).hostId).not.toBe(from);
    // on its new host, exec and console work again
    expect((await exec(['echo', 'moved'])).stdout).toBe('moved\n');
    const again = await openConsole();
    await seen('a shell prompt after the move', again.output, PROMPT);
    again.connection.write(Buffer.from('exit\n'));
    expect((await again.connection.ended).exitCode).toBe(0);
  }, 180_000);
});
