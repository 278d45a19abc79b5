import { createHash } from 'node:crypto';
import type { NatsConnection, Subscription } from 'nats';
import type { z } from 'zod';
import { AGENT_COMMANDS, agentRequestSchemas, subjects, type AgentCommand, type AgentReply } from '@ferry/protocol';
import { decodeText, describeIssues, encodeJson, type Logger } from '@ferry/runtime';
import { CommandError } from './containers/errors.ts';
import type { ContainerManager } from './containers/manager.ts';
import type { ContainerSuspends } from './containers/suspend.ts';
import type { OperateServer } from './containers/exec-server.ts';
import type { MigrationManager } from './migration/manager.ts';
import type { AgentMetrics } from './metrics.ts';
import type { StorageHeartbeats } from './storage/heartbeats.ts';

const KNOWN_COMMANDS = new Set<string>(AGENT_COMMANDS);

export interface CommandTargets {
  containers: ContainerManager;
  migrations: MigrationManager;
  /** suspend to disk and resume (absent: those commands are refused) */
  suspends?: ContainerSuspends;
  /** the storage heartbeat channel (absent: this host answers storage commands with not-shared) */
  storage?: StorageHeartbeats;
  /** exec and console (containers/exec-server.ts): ends a container's console sessions before it is checkpointed */
  operate?: Pick<OperateServer, 'beforeCommand'>;
}

const MAX_REQUEST_BYTES = 256 * 1024;
const isCommand = (name: string): name is AgentCommand => (AGENT_COMMANDS as readonly string[]).includes(name);

function parseRequest<C extends AgentCommand>(command: C, body: unknown): z.output<(typeof agentRequestSchemas)[C]> {
  const parsed = agentRequestSchemas[command].safeParse(body);
  if (!parsed.success) throw new CommandError('BAD_REQUEST', `invalid ${command} request: ${describeIssues(parsed.error).join('; ')}`);
  return parsed.data as z.output<(typeof agentRequestSchemas)[C]>;
}

function requireSuspends(targets: CommandTargets): ContainerSuspends {
  if (!targets.suspends) throw new CommandError('BAD_REQUEST', 'this agent does not suspend containers');
  return targets.suspends;
}

/** Parses and runs one command; never throws (every failure becomes an error reply). */
export async function handleCommand(targets: CommandTargets, command: string, data: Uint8Array): Promise<AgentReply> {
  const manager = targets.containers;
  const migrations = targets.migrations;
  try {
    if (!isCommand(command)) throw new CommandError('BAD_REQUEST', `unknown command ${command}`);
    if (data.byteLength > MAX_REQUEST_BYTES) throw new CommandError('BAD_REQUEST', `request of ${data.byteLength} bytes is too large`);
    let body: unknown;
    try {
      body = JSON.parse(decodeText(data) || '{}');
    } catch (err) {
      throw new CommandError('BAD_REQUEST', `request is not JSON: ${(err as Error).message}`);
    }
    await targets.operate?.beforeCommand(command, body);
    switch (command) {
      case 'container.create': {
        const request = parseRequest(command, body);
        return { ok: true, result: await manager.create(request.spec, request.epoch) };
      }
      case 'container.start': {
        const { id, epoch } = parseRequest(command, body);
        return { ok: true, result: await manager.start(id, epoch) };
      }
      case 'container.stop': {
        const request = parseRequest(command, body);
        return { ok: true, result: await manager.stop(request.id, request.graceMs) };
      }
      case 'container.destroy': {
        const { id, keepRootfs } = parseRequest(command, body);
        const result = await manager.destroy(id, keepRootfs);
        // no container here: a suspended one's pool directory goes (the delete of a suspended workload)
        if (!result.destroyed && !keepRootfs && targets.suspends) return { ok: true, result: { id, destroyed: await targets.suspends.discard(id) } };
        return { ok: true, result };
      }
      case 'container.suspend': {
        const { id, epoch } = parseRequest(command, body);
        return { ok: true, result: await requireSuspends(targets).suspend(id, epoch) };
      }
      case 'container.resume': {
        const { spec, epoch, suspendedOn } = parseRequest(command, body);
        return { ok: true, result: await requireSuspends(targets).resume(spec, epoch, suspendedOn) };
      }
      case 'container.thaw': {
        const { id } = parseRequest(command, body);
        return { ok: true, result: await manager.thaw(id) };
      }
      case 'container.adopt': {
        const { spec, epoch, fromHost } = parseRequest(command, body);
        return { ok: true, result: await manager.adopt(spec, epoch, fromHost) };
      }
      case 'container.stamp': {
        const { generation, ids } = parseRequest(command, body);
        return { ok: true, result: await manager.stamp(generation, ids) };
      }
      case 'container.status': {
        const { id } = parseRequest(command, body);
        return { ok: true, result: await manager.status(id) };
      }
      case 'container.list':
        parseRequest(command, body);
        return { ok: true, result: await manager.list() };
      case 'migration.prepare': {
        const request = parseRequest(command, body);
        return { ok: true, result: await migrations.prepare(request) };
      }
      case 'migration.presync': {
        const request = parseRequest(command, body);
        return { ok: true, result: await migrations.presync(request) };
      }
      case 'migration.dump': {
        const request = parseRequest(command, body);
        return { ok: true, result: await migrations.dump(request) };
      }
      case 'migration.transfer': {
        const request = parseRequest(command, body);
        return { ok: true, result: await migrations.transfer(request) };
      }
      case 'migration.restore': {
        const request = parseRequest(command, body);
        return { ok: true, result: await migrations.restore(request) };
      }
      case 'migration.resume': {
        const request = parseRequest(command, body);
        return { ok: true, result: await migrations.resume(request) };
      }
      case 'migration.abort': {
        const { migrationId } = parseRequest(command, body);
        return { ok: true, result: await migrations.abort(migrationId) };
      }
      case 'migration.finish': {
        const { migrationId, role, abandon } = parseRequest(command, body);
        if (abandon && role === 'source') return { ok: true, result: await migrations.abandonPages(migrationId) };
        return { ok: true, result: await migrations.finish(migrationId, role) };
      }
      case 'storage.confirm-failed': {
        const { hostId, pool, staleAfterMs } = parseRequest(command, body);
        if (!targets.storage) return { ok: true, result: { confirmed: false, reason: 'not-shared', unchangedForMs: null } };
        return { ok: true, result: await targets.storage.confirmFailed(hostId, pool, staleAfterMs) };
      }
    }
  } catch (err) {
    if (err instanceof CommandError) return { ok: false, error: err.toReply() };
    return { ok: false, error: { code: 'RUNTIME_ERROR', message: (err as Error).message } };
  }
}

export interface CommandServer {
  subscription: Subscription;
  /** stops taking commands and waits for the ones running */
  drain(): Promise<void>;
}

/** Answers `ferry.agent.<hostId>.<command>` requests. */
export function serveCommands(nc: NatsConnection, hostId: string, targets: CommandTargets, log: Logger, metrics?: AgentMetrics): CommandServer {
  const prefix = subjects.agentCommand(hostId, '');
  const inFlight = new Set<Promise<void>>();
  /** requests being run, by command and exact body: a copy joins the run instead of starting another */
  const runningRequests = new Map<string, Promise<AgentReply>>();
  const subscription = nc.subscribe(`${prefix}>`, {
    callback: (err, msg) => {
      if (err) {
        log.error({ err }, 'command subscription error');
        return;
      }
      const command = msg.subject.slice(prefix.length);
      const started = Date.now();
      // A copy of a request still running here (the scheduler sends one again after a NATS
      // reconnection: the first or its answer may have been lost) is answered when that run
      // ends, not run a second time alongside it.
      const key = `${command}\0${createHash('sha256').update(msg.data).digest('hex')}`;
      const running = runningRequests.get(key);
      if (running) {
        log.info({ command }, 'a copy of a request still running: answered when it ends');
        const copy = running.then((reply) => {
          if (msg.reply) msg.respond(encodeJson(reply));
        });
        inFlight.add(copy);
        void copy.finally(() => inFlight.delete(copy));
        return;
      }
      const replied = handleCommand(targets, command, msg.data);
      runningRequests.set(key, replied);
      void replied.finally(() => runningRequests.delete(key));
      const done = replied.then((reply) => {
        const ms = Date.now() - started;
        // unknown subjects all count as one label value: a hostile publisher cannot grow the series
        const label = KNOWN_COMMANDS.has(command) ? command : 'unknown';
        metrics?.commands.inc({ command: label, result: reply.ok ? 'ok' : reply.error.code });
        metrics?.commandSeconds.observe({ command: label }, ms / 1000);
        if (reply.ok) log.debug({ command, ms }, 'command done');
        else log.warn({ command, ms, error: reply.error }, 'command failed');
        if (msg.reply) msg.respond(encodeJson(reply));
      });
      inFlight.add(done);
      void done.finally(() => inFlight.delete(done));
    },
  });
  return {
    subscription,
    async drain() {
      subscription.unsubscribe();
      await Promise.allSettled([...inFlight]);
    },
  };
}
