import { z } from 'zod';
import { NAME_PATTERN } from './ids.ts';

/**
 * Who connects to NATS, and what each may publish and subscribe to: the one home of Ferry's NATS
 * permissions. nats-server enforces them (Ferry writes its configuration from natsPermissions);
 * nobody connects anonymously.
 *
 * - an agent publishes its own capacity reports and its own migrations' copy progress, hears only
 *   commands addressed to it and its own lease acknowledgements, and answers the requests it
 *   received (NATS `allow_responses`: one reply per request, to the requester's private inbox);
 * - a scheduler commands agents, acknowledges leases and publishes cluster events;
 * - the API (and an observer, such as a test or a dashboard relay) only reads events; the API may
 *   also ask an agent for its last hour of usage (`ferry.usage.<host>`, read-only: the agent
 *   answers with samples and changes nothing) and a workload's console output (`ferry.logs.<host>`,
 *   read-only too), which the agent hears for its own host only;
 * - the probe only connects (readiness checks).
 * Every identity's request inboxes live under its own prefix, which only it may subscribe to: a
 * reply (a migration's secrets among them) reaches the requester and nobody else.
 */
export const NATS_ROLES = ['agent', 'scheduler', 'api', 'observer', 'probe'] as const;
export type NatsRole = (typeof NATS_ROLES)[number];

export const NatsIdentity = z.object({
  /** unique in the cluster; names the identity's inbox prefix */
  name: z.string().regex(NAME_PATTERN, 'must be 1-63 lowercase letters, digits or dashes'),
  role: z.enum(NATS_ROLES),
  /** for an agent: the host it speaks for */
  hostId: z.string().regex(NAME_PATTERN).optional(),
});
export type NatsIdentity = z.infer<typeof NatsIdentity>;

export interface NatsPermissions {
  publish: { allow?: string[]; deny?: string[] };
  subscribe: { allow?: string[]; deny?: string[] };
  /** may answer requests it received: at most `max` replies each, within `expires` */
  allowResponses?: { max: number; expires: string };
}

/** An identity's agent is named after its host: agent-<hostId>. */
export const agentIdentity = (hostId: string): NatsIdentity => ({ name: `agent-${hostId}`, role: 'agent', hostId });

/** Where an identity's request replies arrive; only it may subscribe there. */
export const inboxPrefix = (name: string): string => `_INBOX_${name}`;

/** Longest an agent command may take and still have its reply delivered (migration copies run 10 min). */
const LONGEST_REPLY = '30m';

export function natsPermissions(identity: NatsIdentity): NatsPermissions {
  const inbox = `${inboxPrefix(identity.name)}.>`;
  switch (identity.role) {
    case 'agent': {
      const host = identity.hostId;
      if (!host) throw new Error(`agent identity ${identity.name} names no host`);
      return {
        // a console session's output (operate.ts): on its own host's session subjects only
        publish: { allow: [`ferry.host.${host}.capacity`, `ferry.events.migrations.*.progress.${host}`, `ferry.console.${host}.*.out`] },
        subscribe: {
          allow: [
            `ferry.agent.${host}.>`,
            `ferry.host.${host}.lease`,
            `ferry.usage.${host}`,
            `ferry.logs.${host}`,
            `ferry.exec.${host}`,
            `ferry.console.${host}.open`,
            `ferry.console.${host}.*.in`,
            inbox,
          ],
        },
        allowResponses: { max: 1, expires: LONGEST_REPLY },
      };
    }
    case 'scheduler':
      return {
        publish: {
          allow: ['ferry.agent.*.>', 'ferry.host.*.lease', 'ferry.events.hosts', 'ferry.events.failovers', 'ferry.events.workloads.*', 'ferry.events.migrations.*'],
        },
        subscribe: { allow: ['ferry.host.*.capacity', inbox] },
      };
    case 'api':
      // what it publishes: usage and log requests (the console's charts, usage.ts; a workload's
      // console output, logs.ts), both read-only on the agent's side; and, for operators
      // (operate.ts), a command in a container (`ferry.exec.<host>`) and console sessions: open
      // one, type into it, read it
      return {
        publish: { allow: ['ferry.usage.*', 'ferry.logs.*', 'ferry.exec.*', 'ferry.console.*.open', 'ferry.console.*.*.in'] },
        subscribe: { allow: ['ferry.events.>', 'ferry.console.*.*.out', inbox] },
      };
    case 'observer':
      return { publish: { deny: ['>'] }, subscribe: { allow: ['ferry.events.>', inbox] } };
    case 'probe':
      return { publish: { deny: ['>'] }, subscribe: { deny: ['>'] } };
  }
}
