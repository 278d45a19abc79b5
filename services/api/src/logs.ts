import type { NatsConnection } from 'nats';
import { LogsReply, logsSubject, type LogChunk } from '@ferry/protocol';
import { decodeText, encodeJson } from '@ferry/runtime';

/** how long an agent has to answer (a read of at most 256 KiB of a local file) */
const ASK_TIMEOUT_MS = 3_000;

export type AskedLogs = { ok: true; chunk: LogChunk } | { ok: false; missing: boolean; message: string };

/**
 * Asks a workload's agent for a chunk of its console log (logs.ts in @ferry/protocol). `missing`:
 * the agent has no such container (it moved, or is moving) or no agent answered — worth asking
 * the workload's host again; otherwise the agent refused the request.
 */
export class LogsAsker {
  constructor(private readonly nc: NatsConnection | null) {}

  async ask(hostId: string, request: { workloadId: string; from?: number | undefined; tail: number }): Promise<AskedLogs> {
    if (!this.nc) return { ok: false, missing: true, message: 'this API process has no NATS connection' };
    try {
      const body = { workloadId: request.workloadId, tail: request.tail, ...(request.from === undefined ? {} : { from: request.from }) };
      const msg = await this.nc.request(logsSubject(hostId), encodeJson(body), { timeout: ASK_TIMEOUT_MS });
      const parsed = LogsReply.safeParse(JSON.parse(decodeText(msg.data)));
      if (!parsed.success) return { ok: false, missing: false, message: `${hostId} answered something that is not a log chunk` };
      if (parsed.data.ok) return parsed.data.chunk.hostId === hostId ? parsed.data : { ok: false, missing: false, message: `${hostId} answered for another host` };
      return { ok: false, missing: parsed.data.code === 'NOT_FOUND', message: parsed.data.message };
    } catch (err) {
      const code = (err as { code?: string }).code;
      return { ok: false, missing: true, message: code === '503' ? `${hostId} has no agent answering log requests` : `${hostId} did not answer (${(err as Error).message})` };
    }
  }
}
