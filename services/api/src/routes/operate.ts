import type { FastifyInstance } from 'fastify';
import { CONSOLE_TICKET_TTL_MS, ConsoleTicketRequest, ExecRequest, ExecResult, WorkloadParams, execSubject, type ConsoleTicket } from '@ferry/protocol';
import type { ClusterStore } from '@ferry/store';
import { ApiError, parseRequest } from '../errors.ts';
import { operableHost, type AgentLink, type ConsoleTickets } from '../operate.ts';

/** the agent's answer may take the command's timeout plus this (runc's start, NATS) */
const EXEC_SLACK_MS = 10_000;

/**
 * Operating a running workload (operator role, OPERATIONS in openapi.ts):
 * - POST /v1/workloads/:id/exec runs one command (an argument array) in it on its current host
 *   and answers its exit code and output;
 * - POST /v1/workloads/:id/console gives a one-time ticket for an interactive shell, opened as a
 *   WebSocket on /v1/console/<ticket> (console-socket.ts).
 * Input is checked before anything is asked of an agent: a bad request runs nothing.
 */
export function operateRoutes(app: FastifyInstance, store: ClusterStore, agents: AgentLink, tickets: ConsoleTickets): void {
  const runningWorkload = async (params: unknown) => {
    const { id } = parseRequest(WorkloadParams, params, 'params');
    const record = await store.workloads.get(id);
    if (!record) throw new ApiError('NOT_FOUND', `no workload ${id}`, { id });
    return { record, hostId: operableHost(record) };
  };

  app.post('/v1/workloads/:id/exec', async (request): Promise<ExecResult> => {
    parseRequest(WorkloadParams, request.params, 'params');
    const body = parseRequest(ExecRequest, request.body, 'body');
    const { record, hostId } = await runningWorkload(request.params);
    return agents.ask(hostId, execSubject(hostId), { ...body, workloadId: record.spec.id, epoch: record.epoch }, ExecResult, body.timeoutMs + EXEC_SLACK_MS);
  });

  app.post('/v1/workloads/:id/console', async (request, reply) => {
    parseRequest(WorkloadParams, request.params, 'params');
    const body = parseRequest(ConsoleTicketRequest, request.body, 'body');
    const { record, hostId } = await runningWorkload(request.params);
    const expiresAt = Date.now() + CONSOLE_TICKET_TTL_MS;
    const ticket = await tickets.issue({ workloadId: record.spec.id, hostId, epoch: record.epoch, who: request.principal?.who ?? 'unknown', ...body, expiresAt });
    const answer: ConsoleTicket = { ticket, path: `/v1/console/${ticket}`, expiresAt, workloadId: record.spec.id, hostId };
    return reply.status(201).send(answer);
  });
}
