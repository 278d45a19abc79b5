import { NAME_PATTERN } from './ids.ts';

/** NATS subjects. Everything Ferry publishes lives under `ferry.`. */
export const subjects = {
  capacity: (hostId: string) => `ferry.host.${hostId}.capacity`,
  /** where schedulers acknowledge an agent's reports: each acknowledgement renews its lease */
  lease: (hostId: string) => `ferry.host.${hostId}.lease`,
  /** Wildcard the scheduler subscribes to. */
  capacityAll: 'ferry.host.*.capacity',
  hostEvents: 'ferry.events.hosts',
  workloadEvents: (workloadId: string) => `ferry.events.workloads.${workloadId}`,
  migrationEvents: (migrationId: string) => `ferry.events.migrations.${migrationId}`,
  /**
   * a source agent's copy progress for one migration: the host in the subject is the sender,
   * which NATS proves (an agent may publish progress under its own host id only)
   */
  migrationProgress: (migrationId: string, hostId: string) => `ferry.events.migrations.${migrationId}.progress.${hostId}`,
  failoverEvents: 'ferry.events.failovers',
  /** every event above (what the API streams to clients) */
  allEvents: 'ferry.events.>',
  agentCommand: (hostId: string, command: string) => `ferry.agent.${hostId}.${command}`,
} as const;

/** The host id a capacity subject names, or null when the subject is not one. */
export function hostIdFromCapacitySubject(subject: string): string | null {
  const parts = subject.split('.');
  if (parts.length !== 4 || parts[0] !== 'ferry' || parts[1] !== 'host' || parts[3] !== 'capacity') return null;
  const id = parts[2]!;
  return NAME_PATTERN.test(id) ? id : null;
}
