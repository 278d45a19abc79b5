import { mkdir } from 'node:fs/promises';
import type { Msg, NatsConnection, Subscription } from 'nats';
import {
  AgentExecRequest,
  CONSOLE_PING_MS,
  CONSOLE_SILENCE_MS,
  ConsoleOpenRequest,
  consoleSubjects,
  decodeConsoleMessage,
  encodeConsoleMessage,
  execSubject,
  type AgentReply,
  type ConsoleMessage,
} from '@ferry/protocol';
import { decodeText, describeIssues, encodeJson, type Logger } from '@ferry/runtime';
import type { z } from 'zod';
import { CommandError } from './errors.ts';
import { requireOperable, runExec, type OperableContainers } from './exec.ts';
import { startConsole, type ConsoleSession } from './exec-console.ts';
import { workloadOf } from '../migration/common.ts';

/** at most this many console sessions on one host at once, and per workload */
const MAX_SESSIONS = 32;
const MAX_SESSIONS_PER_WORKLOAD = 4;
const MAX_REQUEST_BYTES = 512 * 1024;

/** Commands that checkpoint a container: its console sessions end first (see beforeCheckpoint). */
const CHECKPOINTING = new Set(['migration.presync', 'migration.dump', 'container.suspend']);

function parse<S extends z.ZodType>(schema: S, data: Uint8Array): z.output<S> {
  if (data.byteLength > MAX_REQUEST_BYTES) throw new CommandError('BAD_REQUEST', `a request of ${data.byteLength} bytes is too large`);
  let body: unknown;
  try {
    body = JSON.parse(decodeText(data) || '{}');
  } catch (err) {
    throw new CommandError('BAD_REQUEST', `the request is not JSON: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new CommandError('BAD_REQUEST', `invalid request: ${describeIssues(parsed.error).join('; ')}`);
  return parsed.data;
}

const failure = (err: unknown): AgentReply => (err instanceof CommandError ? { ok: false, error: err.toReply() } : { ok: false, error: { code: 'RUNTIME_ERROR', message: (err as Error).message } });

interface LiveSession {
  session: ConsoleSession;
  subscription: Subscription;
  lastHeard: number;
}

/**
 * Answers the API's exec and console requests for this host's containers (operate.ts in
 * @ferry/protocol; only the API may send them, natsPermissions). Each console session lives on
 * its own pair of subjects; it ends when the shell exits, the API says so, the API falls silent
 * for CONSOLE_SILENCE_MS, the container is about to be checkpointed (a migration or a suspend:
 * CRIU cannot dump a terminal whose other end is outside the container), or the agent stops.
 */
export class OperateServer {
  private readonly sessions = new Map<string, LiveSession>();
  private readonly subscriptions: Subscription[] = [];
  /** commands running, by workload: killed before a checkpoint like the sessions */
  private readonly commands = new Map<string, Set<AbortController>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly hostId: string,
    private readonly containers: OperableContainers,
    private readonly runDir: string,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await mkdir(this.runDir, { recursive: true });
    this.subscriptions.push(this.nc.subscribe(execSubject(this.hostId), { callback: (err, msg) => !err && void this.exec(msg) }));
    this.subscriptions.push(this.nc.subscribe(consoleSubjects.open(this.hostId), { callback: (err, msg) => !err && this.open(msg) }));
    this.timer = setInterval(() => this.keepAlive(), CONSOLE_PING_MS);
    this.timer.unref();
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  private async exec(msg: Msg): Promise<void> {
    let reply: AgentReply;
    try {
      const request = parse(AgentExecRequest, msg.data);
      requireOperable(this.containers, request.workloadId, request.epoch);
      const abort = new AbortController();
      const running = this.commands.get(request.workloadId) ?? new Set();
      this.commands.set(request.workloadId, running.add(abort));
      const result = await runExec(this.containers.runc, request.workloadId, {
        argv: request.argv,
        stdin: request.stdin,
        timeoutMs: request.timeoutMs,
        runDir: this.runDir,
        hostId: this.hostId,
        signal: abort.signal,
      }).finally(() => {
        running.delete(abort);
        if (running.size === 0 && this.commands.get(request.workloadId) === running) this.commands.delete(request.workloadId);
      });
      this.log.info({ workloadId: request.workloadId, program: request.argv[0], exitCode: result.exitCode, ms: result.ms }, 'exec');
      reply = { ok: true, result };
    } catch (err) {
      reply = failure(err);
    }
    msg.respond(encodeJson(reply));
  }

  private open(msg: Msg): void {
    let reply: AgentReply;
    try {
      const request = parse(ConsoleOpenRequest, msg.data);
      requireOperable(this.containers, request.workloadId, request.epoch);
      if (this.sessions.has(request.sessionId)) throw new CommandError('CONFLICT', 'that session is open already');
      if (this.sessions.size >= MAX_SESSIONS) throw new CommandError('BUSY', `${MAX_SESSIONS} console sessions are open on this host already`);
      const mine = [...this.sessions.values()].filter((s) => s.session.workloadId === request.workloadId).length;
      if (mine >= MAX_SESSIONS_PER_WORKLOAD) throw new CommandError('BUSY', `${MAX_SESSIONS_PER_WORKLOAD} console sessions are open in ${request.workloadId} already`);
      const { sessionId, workloadId } = request;
      const out = consoleSubjects.output(this.hostId, sessionId);
      const send = (message: ConsoleMessage) => this.nc.publish(out, encodeConsoleMessage(message));
      const subscription = this.nc.subscribe(consoleSubjects.input(this.hostId, sessionId), { callback: (err, m) => !err && this.input(sessionId, m.data) });
      const session = startConsole(
        this.containers.runc,
        { sessionId, workloadId, size: { rows: request.rows, cols: request.cols }, term: request.term },
        this.runDir,
        {
          output: (data) => send({ type: 'data', data }),
          ended: (exitCode, reason) => {
            send({ type: 'end', exitCode, reason });
            subscription.unsubscribe();
            this.sessions.delete(sessionId);
            this.log.info({ workloadId, sessionId: sessionId.slice(0, 6), exitCode, reason }, 'console session ended');
          },
        },
        this.log,
      );
      this.sessions.set(sessionId, { session, subscription, lastHeard: Date.now() });
      this.log.info({ workloadId, sessionId: sessionId.slice(0, 6) }, 'console session opened');
      reply = { ok: true, result: { sessionId, hostId: this.hostId } };
    } catch (err) {
      reply = failure(err);
    }
    msg.respond(encodeJson(reply));
  }

  private input(sessionId: string, data: Uint8Array): void {
    const live = this.sessions.get(sessionId);
    if (!live) return;
    let message: ConsoleMessage;
    try {
      message = decodeConsoleMessage(data);
    } catch (err) {
      this.log.debug({ err }, 'a malformed console message dropped');
      return;
    }
    live.lastHeard = Date.now();
    if (message.type === 'data') live.session.write(message.data);
    else if (message.type === 'resize') void live.session.resize(message).catch((err: unknown) => this.log.debug({ err }, 'resize failed'));
    else if (message.type === 'end') void live.session.end('the client closed the session');
  }

  /** Pings every session's API side; ends those whose API has been silent too long. */
  private keepAlive(): void {
    const now = Date.now();
    for (const [sessionId, live] of this.sessions) {
      if (now - live.lastHeard > CONSOLE_SILENCE_MS) void live.session.end(`the API was silent for ${CONSOLE_SILENCE_MS / 1000} s`);
      else this.nc.publish(consoleSubjects.output(this.hostId, sessionId), encodeConsoleMessage({ type: 'ping' }));
    }
  }

  /** Ends every console session in a workload and kills its exec commands (resolves when the shells are gone). */
  async endFor(workloadId: string, reason: string): Promise<number> {
    for (const command of this.commands.get(workloadId) ?? []) command.abort(reason);
    const ending = [...this.sessions.values()].filter((s) => s.session.workloadId === workloadId).map((s) => s.session.end(reason));
    await Promise.all(ending);
    return ending.length;
  }

  /**
   * Called before every agent command: one that checkpoints a container (a migration's presync or
   * dump, a suspend) first ends its console sessions. Never throws: a malformed request is the
   * command's own to refuse.
   */
  async beforeCommand(command: string, body: unknown): Promise<void> {
    if (!CHECKPOINTING.has(command) || typeof body !== 'object' || body === null) return;
    const fields = body as { migrationId?: unknown; id?: unknown };
    let workloadId: string | null = typeof fields.id === 'string' ? fields.id : null;
    try {
      if (typeof fields.migrationId === 'string') workloadId = workloadOf(fields.migrationId);
    } catch {
      return;
    }
    if (!workloadId) return;
    const ended = await this.endFor(workloadId, command === 'container.suspend' ? 'the workload is being suspended' : 'the workload is migrating to another host');
    if (ended > 0) this.log.info({ workloadId, command, ended }, 'console sessions ended before a checkpoint');
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    for (const s of this.subscriptions) s.unsubscribe();
    await Promise.all([...this.sessions.values()].map((s) => s.session.end('the agent is stopping')));
  }
}
