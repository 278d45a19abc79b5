import type { NatsConnection, Subscription } from 'nats';
import { UsageRequest, usageSubject } from '@ferry/protocol';
import { decodeText, encodeJson, type Logger } from '@ferry/runtime';
import type { UsageHistory } from './history.ts';

/**
 * Answers `ferry.usage.<host>` (only the API may ask: natsPermissions): this host's last hour, and
 * one container's when the request names it. Read-only: nothing here changes the host. A bad
 * request gets `{error}` and is logged at debug (nobody else can publish there).
 */
export function serveUsage(nc: NatsConnection, hostId: string, history: UsageHistory, log: Logger): Subscription {
  return nc.subscribe(usageSubject(hostId), {
    callback: (err, msg) => {
      if (err || !msg.reply) return;
      let request: UsageRequest;
      try {
        const parsed = UsageRequest.safeParse(msg.data.length ? JSON.parse(decodeText(msg.data)) : {});
        if (!parsed.success) throw new Error(parsed.error.issues.map((i) => i.message).join('; '));
        request = parsed.data;
      } catch (error) {
        log.debug({ err: error }, 'bad usage request');
        msg.respond(encodeJson({ error: (error as Error).message }));
        return;
      }
      msg.respond(encodeJson(history.reply(hostId, request.workloadId)));
    },
  });
}
