import { dirname } from 'node:path';
import type { NatsConnection, Subscription } from 'nats';
import { LOG_CHUNK_BYTES, LogsRequest, logsSubject, type LogsReply } from '@ferry/protocol';
import { decodeText, encodeJson, type Logger } from '@ferry/runtime';
import { consoleLogFile, readConsoleLog } from './console-log.ts';

/** What the log server needs of the containers: where a workload's root filesystem is, if here. */
export interface LogSources {
  record(workloadId: string): { rootfs: string } | undefined;
}

/**
 * Answers `ferry.logs.<host>` (only the API may ask: natsPermissions): a chunk of a container's
 * console log, from an offset or its last lines. Read-only: nothing here changes the host. A
 * workload with no record here (never here, or gone with a migration) is NOT_FOUND: the API asks
 * the workload's host again.
 */
export function serveLogs(nc: NatsConnection, hostId: string, containers: LogSources, log: Logger): Subscription {
  return nc.subscribe(logsSubject(hostId), {
    callback: (err, msg) => {
      if (err || !msg.reply) return;
      void answer(msg.data)
        .catch((error: unknown): LogsReply => ({ ok: false, code: 'UNREADABLE', message: (error as Error).message }))
        .then((reply) => msg.respond(encodeJson(reply)));
    },
  });

  async function answer(data: Uint8Array): Promise<LogsReply> {
    let request: ReturnType<typeof LogsRequest.parse>;
    try {
      const parsed = LogsRequest.safeParse(JSON.parse(decodeText(data)));
      if (!parsed.success) return { ok: false, code: 'BAD_REQUEST', message: parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ') };
      request = parsed.data;
    } catch (error) {
      log.debug({ err: error }, 'bad logs request');
      return { ok: false, code: 'BAD_REQUEST', message: (error as Error).message };
    }
    const record = containers.record(request.workloadId);
    if (!record) return { ok: false, code: 'NOT_FOUND', message: `no container ${request.workloadId} on host ${hostId}` };
    const read = await readConsoleLog(consoleLogFile(dirname(record.rootfs)), { from: request.from, tail: request.tail, maxBytes: LOG_CHUNK_BYTES });
    return { ok: true, chunk: { hostId, workloadId: request.workloadId, ...read } };
  }
}
