import { z } from 'zod';
import { ContainerStatus, WorkloadId, WorkloadSpec } from './workloads.ts';

/** Commands the scheduler sends an agent by NATS request/reply on ferry.agent.<hostId>.<command>. */
export const AGENT_COMMANDS = [
  'container.create',
  'container.start',
  'container.stop',
  'container.destroy',
  'container.status',
  'container.list',
] as const;
export type AgentCommand = (typeof AGENT_COMMANDS)[number];

export const CreateContainerRequest = z.strictObject({ spec: WorkloadSpec, epoch: z.number().int().positive() });
export const ContainerIdRequest = z.strictObject({ id: WorkloadId });
export const StopContainerRequest = z.strictObject({
  id: WorkloadId,
  /** SIGTERM, then SIGKILL after this long */
  graceMs: z.number().int().min(0).max(300_000).default(10_000),
});
export const ListContainersRequest = z.strictObject({});

export const agentRequestSchemas = {
  'container.create': CreateContainerRequest,
  'container.start': ContainerIdRequest,
  'container.stop': StopContainerRequest,
  'container.destroy': ContainerIdRequest,
  'container.status': ContainerIdRequest,
  'container.list': ListContainersRequest,
} as const satisfies Record<AgentCommand, z.ZodType>;

export type AgentRequest<C extends AgentCommand> = z.input<(typeof agentRequestSchemas)[C]>;

export const agentResultSchemas = {
  'container.create': ContainerStatus,
  'container.start': ContainerStatus,
  'container.stop': ContainerStatus,
  'container.destroy': z.object({ id: WorkloadId, destroyed: z.boolean() }),
  'container.status': ContainerStatus,
  'container.list': z.array(ContainerStatus),
} as const satisfies Record<AgentCommand, z.ZodType>;

export type AgentResult<C extends AgentCommand> = z.infer<(typeof agentResultSchemas)[C]>;

/** Stable error codes in agent replies. Retryable ones may succeed if tried again later. */
export const AGENT_ERROR_CODES = [
  'BAD_REQUEST',
  'NOT_FOUND',
  'CONFLICT',
  'TEMPLATE_MISSING',
  'POOL_MISSING',
  'NETWORK_MISSING',
  'RUNTIME_ERROR',
  'BUSY',
] as const;
export const RETRYABLE_AGENT_ERRORS: ReadonlySet<string> = new Set(['BUSY', 'RUNTIME_ERROR']);

export const AgentError = z.object({
  code: z.enum(AGENT_ERROR_CODES),
  message: z.string(),
  details: z.unknown().optional(),
});
export type AgentError = z.infer<typeof AgentError>;

export const AgentReply = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), result: z.unknown() }),
  z.object({ ok: z.literal(false), error: AgentError }),
]);
export type AgentReply = z.infer<typeof AgentReply>;
