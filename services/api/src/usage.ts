import type { NatsConnection } from 'nats';
import { UsageReply, usageSubject, type MigrationRecord, type UsageSample } from '@ferry/protocol';
import { decodeText, encodeJson } from '@ferry/runtime';

/** how long an agent has to answer (it answers from memory: a late one is down or overloaded) */
const ASK_TIMEOUT_MS = 1_500;
const HOUR_MS = 3_600_000;

export type AskedUsage = { ok: true; reply: UsageReply } | { ok: false; unavailable: string };

/** Asks agents for their last hour of usage (usage.ts in @ferry/protocol); without NATS every answer is "unavailable". */
export class UsageAsker {
  constructor(private readonly nc: NatsConnection | null) {}

  async ask(hostId: string, workloadId?: string): Promise<AskedUsage> {
    if (!this.nc) return { ok: false, unavailable: 'this API process has no NATS connection' };
    try {
      const msg = await this.nc.request(usageSubject(hostId), encodeJson(workloadId === undefined ? {} : { workloadId }), { timeout: ASK_TIMEOUT_MS });
      const parsed = UsageReply.safeParse(JSON.parse(decodeText(msg.data)));
      if (!parsed.success || parsed.data.hostId !== hostId) return { ok: false, unavailable: `${hostId} answered something that is not its usage` };
      return { ok: true, reply: parsed.data };
    } catch (err) {
      const code = (err as { code?: string }).code;
      // 503: no agent listens there (down, or one older than usage history)
      return { ok: false, unavailable: code === '503' ? `${hostId} has no agent answering usage requests` : `${hostId} did not answer (${(err as Error).message})` };
    }
  }
}

/**
 * The hosts a workload ran on in the hour before `now`, oldest first: those its migrations of the
 * hour left and reached, and where it is now. (A failover's dead host has no agent to ask; its
 * restarts are not migrations and are left out.)
 */
export function hostsOfTheHour(current: string | null, migrations: readonly MigrationRecord[], now: number): string[] {
  const hosts: string[] = [];
  const add = (h: string | null | undefined) => {
    if (h && !hosts.includes(h)) hosts.push(h);
  };
  const recent = migrations.filter((m) => m.state === 'completed' && (m.finishedAt ?? m.createdAt) >= now - HOUR_MS).sort((a, b) => a.createdAt - b.createdAt);
  for (const m of recent) {
    add(m.source);
    add(m.destination);
  }
  add(current);
  return hosts;
}

/** Every host's part of a workload's hour as one series, oldest first, each sample naming its host. */
export function mergeSeries(parts: ReadonlyArray<{ hostId: string; samples: readonly UsageSample[] }>): Array<UsageSample & { hostId: string }> {
  return parts.flatMap((p) => p.samples.map((s) => ({ ...s, hostId: p.hostId }))).sort((a, b) => a.at - b.at);
}
