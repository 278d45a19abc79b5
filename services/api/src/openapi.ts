import { z } from 'zod';
import {
  ClusterCaResponse,
  CreateJoinTokenRequest,
  JoinRequest,
  JoinResponse,
  JoinTokenCreated,
  JoinTokenListResponse,
  JoinTokenParams,
  JoinTokenRevoked,
  AdmitHostResponse,
  RemoveHostQuery,
  RemoveHostResponse,
  ApiErrorBody,
  ClusterSnapshotDocument,
  CreateWorkloadQuery,
  DryRunQuery,
  FailoverListQuery,
  FailoverListResponse,
  HealthResponse,
  HostHistoryEntry,
  HostListQuery,
  HostListResponse,
  HostParams,
  HostView,
  JobParams,
  JobView,
  MaintenanceRecord,
  MaintenanceQuery,
  MaintenancePreview,
  MaintenanceRequest,
  MigrateQuery,
  MigrateRequest,
  MigrationListQuery,
  MigrationListResponse,
  MigrationParams,
  MigrationRecord,
  PlanListQuery,
  PlanListResponse,
  PlanParams,
  PlanRecord,
  RebalanceRequest,
  StatsResponse,
  StopWorkloadQuery,
  ResumeWorkloadBody,
  WorkloadAccepted,
  WorkloadCreated,
  MigrationDryRun,
  WorkloadListQuery,
  WorkloadListResponse,
  WorkloadParams,
  WorkloadSpec,
  WorkloadView,
  HostId,
  WorkloadId,
  HostUsageResponse,
  WorkloadUsageResponse,
  WorkloadLogsQuery,
  WorkloadLogsResponse,
  AuditQuery,
  AuditResponse,
  CreateTokenRequest,
  TokenCreated,
  TokenListResponse,
  TokenListQuery,
  TokenParams,
  TokenRevoked,
  ExecRequest,
  ExecResult,
  ConsoleTicketRequest,
  ConsoleTicket,
  type Role,
} from '@ferry/protocol';
import { EventsQuery } from './routes/events.ts';
import { WhoAmIResponse } from './routes/whoami.ts';

/**
 * Every route of the API, described from the same zod schemas the routes parse with. The server
 * refuses to start when a route is missing here (or listed here and not served), so the
 * document cannot drift from the code.
 */
export interface Operation {
  method: 'GET' | 'POST' | 'DELETE';
  /** Fastify style, e.g. /v1/hosts/:id */
  path: string;
  summary: string;
  tag: string;
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  response?: z.ZodType;
  status?: number;
  /**
   * Who may call it: `open` (no token), or the least role a token needs (viewer < operator <
   * admin). The one place that decides it: the access hook (auth.ts) reads this, the document
   * and /docs show it.
   */
  access: Access;
  /** a text/event-stream instead of JSON */
  stream?: boolean;
  /** an HTML page */
  html?: boolean;
}

/** `open`: served without a token; otherwise the least role a token needs. */
export type Access = 'open' | Role;

const CompatResponse = z.object({ workload: WorkloadId, host: HostId, ok: z.boolean(), reasons: z.array(z.object({ code: z.string(), message: z.string() })) });
const PlanStarted = z.object({ maintenance: MaintenanceRecord.nullable(), plan: PlanRecord });

export const OPERATIONS: Operation[] = [
  { method: 'GET', path: '/healthz', summary: 'Liveness: 200 when Redis answers', tag: 'system', response: HealthResponse, access: 'open' },
  { method: 'GET', path: '/metrics', summary: 'Prometheus metrics of this API process', tag: 'system', access: 'open' },
  { method: 'GET', path: '/v1/openapi.json', summary: 'This document', tag: 'system', access: 'open' },
  { method: 'GET', path: '/docs', summary: 'The API reference as a page', tag: 'system', access: 'open', html: true },
  { method: 'GET', path: '/', summary: 'Redirects to the dashboard', tag: 'dashboard', access: 'open', html: true },
  { method: 'GET', path: '/ui/', summary: 'The dashboard (asks for the token in the browser)', tag: 'dashboard', access: 'open', html: true },
  { method: 'GET', path: '/ui/:file', summary: 'The dashboard’s scripts (modules) and style sheet', tag: 'dashboard', access: 'open' },
  { method: 'GET', path: '/v1/whoami', summary: 'The calling token’s name and role (what the dashboard shows actions by)', tag: 'access', response: WhoAmIResponse, access: 'viewer' },
  { method: 'GET', path: '/v1/stats', summary: 'Capacity reports accepted and rejected, by reason', tag: 'system', response: StatsResponse, access: 'viewer' },
  { method: 'GET', path: '/v1/events', summary: 'Live cluster events as server-sent events (host, workload, migration, failover)', tag: 'events', query: EventsQuery, stream: true, access: 'viewer' },
  {
    method: 'GET',
    path: '/v1/hosts',
    summary: 'Hosts with their newest capacity report; in id order, filtered by state; paged (limit, cursor → nextCursor)',
    tag: 'hosts',
    query: HostListQuery,
    response: HostListResponse,
    access: 'viewer',
  },
  { method: 'GET', path: '/v1/hosts/:id', summary: 'One host', tag: 'hosts', params: HostParams, response: HostView, access: 'viewer' },
  // host removal (docs/operations.md): a dead host out of the cluster, and back
  {
    method: 'DELETE',
    path: '/v1/hosts/:id',
    summary: 'Remove a host that is down (409 while it is up or owns workloads; ?force=true for a host gone for good: its workloads are recorded lost, its reports dropped until admitted)',
    tag: 'hosts',
    params: HostParams,
    query: RemoveHostQuery,
    response: RemoveHostResponse,
    access: 'admin',
  },
  { method: 'POST', path: '/v1/hosts/:id/admit', summary: 'Admit a removed host again (409 when it is not removed)', tag: 'hosts', params: HostParams, response: AdmitHostResponse, access: 'admin' },
  {
    method: 'GET',
    path: '/v1/hosts/:id/history',
    summary: 'State changes, fencing, failovers, restarts of a host (newest first)',
    tag: 'failover',
    params: HostParams,
    response: z.object({ history: z.array(HostHistoryEntry) }),
    access: 'viewer',
  },
  {
    method: 'GET',
    path: '/v1/hosts/:id/usage',
    summary: 'The host’s last hour of usage, one sample a minute (asked of its agent; `unavailable` says why there is none)',
    tag: 'hosts',
    params: HostParams,
    response: HostUsageResponse,
    access: 'viewer',
  },
  {
    method: 'GET',
    path: '/v1/workloads/:id/usage',
    summary: 'The workload’s last hour of usage across the hosts it ran on (asked of their agents)',
    tag: 'workloads',
    params: WorkloadParams,
    response: WorkloadUsageResponse,
    access: 'viewer',
  },
  {
    method: 'GET',
    path: '/v1/workloads/:id/logs',
    summary:
      'The workload’s console output (stdout and stderr), asked of its current agent: the last `tail` lines, or from offset `from`, as one JSON LogChunk; `follow=1` streams `chunk` events (server-sent, each a LogChunk) across migrations. Operator: a console log can hold secrets',
    tag: 'workloads',
    params: WorkloadParams,
    query: WorkloadLogsQuery,
    response: WorkloadLogsResponse,
    // (with follow=1; without it, one JSON chunk) — streams are read by their first bytes, not to their end
    stream: true,
    access: 'operator',
  },
  {
    method: 'GET',
    path: '/v1/failovers',
    summary: 'Failovers and their restarts, newest first; paged (limit, cursor → nextCursor)',
    tag: 'failover',
    query: FailoverListQuery,
    response: FailoverListResponse,
    access: 'viewer',
  },
  {
    method: 'POST',
    path: '/v1/hosts/:id/maintenance',
    summary:
      'Enter maintenance: out of placement, every workload live-migrated away (?partial=true: those that can leave, the rest listed; ?dryRun=true: the evacuation plan it would run, 200, nothing changes)',
    tag: 'maintenance',
    params: HostParams,
    query: MaintenanceQuery,
    body: MaintenanceRequest,
    response: z.union([PlanStarted, MaintenancePreview]),
    status: 202,
    access: 'operator',
  },
  {
    method: 'DELETE',
    path: '/v1/hosts/:id/maintenance',
    summary: 'Leave maintenance',
    tag: 'maintenance',
    params: HostParams,
    response: z.object({ hostId: HostId, maintenance: z.null() }),
    access: 'operator',
  },
  { method: 'GET', path: '/v1/maintenance/groups', summary: 'Hosts that can be drained together (rolling maintenance)', tag: 'maintenance', access: 'viewer' },
  {
    method: 'POST',
    path: '/v1/workloads',
    summary: 'Create a workload (409 HA_ADMISSION when admission control refuses it); `warnings` lists what it asks for that the cluster cannot give (e.g. HA on a local pool)',
    tag: 'workloads',
    query: CreateWorkloadQuery,
    body: WorkloadSpec,
    response: WorkloadCreated,
    status: 202,
    access: 'admin',
  },
  {
    method: 'GET',
    path: '/v1/workloads',
    summary: 'Workloads, where they run, their usage; in id order, filtered by host, phase, label; paged (limit, cursor → nextCursor)',
    tag: 'workloads',
    query: WorkloadListQuery,
    response: WorkloadListResponse,
    access: 'viewer',
  },
  { method: 'GET', path: '/v1/workloads/:id', summary: 'One workload', tag: 'workloads', params: WorkloadParams, response: WorkloadView, access: 'viewer' },
  { method: 'POST', path: '/v1/workloads/:id/start', summary: 'Start a stopped workload', tag: 'workloads', params: WorkloadParams, response: WorkloadAccepted, status: 202, access: 'operator' },
  {
    method: 'POST',
    path: '/v1/workloads/:id/stop',
    summary: 'Stop a workload',
    tag: 'workloads',
    params: WorkloadParams,
    query: StopWorkloadQuery,
    response: WorkloadAccepted,
    status: 202,
    access: 'operator',
  },
  {
    method: 'POST',
    path: '/v1/workloads/:id/suspend',
    summary: 'Suspend a running workload to disk: checkpoint it (memory and processes) into its pool and stop it; 409 unless it runs',
    tag: 'workloads',
    params: WorkloadParams,
    response: WorkloadAccepted,
    status: 202,
    access: 'operator',
  },
  {
    method: 'POST',
    path: '/v1/workloads/:id/resume',
    summary: 'Resume a suspended workload from its checkpoint, with its memory: on its host, or (shared pool) on `host` or the best compatible one; 409 with every reason when it cannot',
    tag: 'workloads',
    params: WorkloadParams,
    body: ResumeWorkloadBody,
    response: WorkloadAccepted,
    status: 202,
    access: 'operator',
  },
  {
    method: 'POST',
    path: '/v1/workloads/:id/exec',
    summary: 'Run one command (an argument array) in a running workload on its host; answers its exit code, stdout and stderr (each capped at 256 KiB)',
    tag: 'workloads',
    params: WorkloadParams,
    body: ExecRequest,
    response: ExecResult,
    access: 'operator',
  },
  {
    method: 'POST',
    path: '/v1/workloads/:id/console',
    summary: 'A one-time ticket (30 s) for an interactive shell in a running workload: open wss://<api>/v1/console/<ticket> as a WebSocket (docs/operations.md, Console access)',
    tag: 'workloads',
    params: WorkloadParams,
    body: ConsoleTicketRequest,
    response: ConsoleTicket,
    status: 201,
    access: 'operator',
  },
  {
    method: 'DELETE',
    path: '/v1/workloads/:id',
    summary: 'Destroy a workload and its root filesystem',
    tag: 'workloads',
    params: WorkloadParams,
    response: WorkloadAccepted,
    status: 202,
    access: 'admin',
  },
  { method: 'GET', path: '/v1/jobs/:id', summary: 'A workload job: state, progress, result or failure', tag: 'workloads', params: JobParams, response: JobView, access: 'viewer' },
  {
    method: 'POST',
    path: '/v1/workloads/:id/migrate',
    summary: 'Migrate a workload (live unless asked otherwise); ?dryRun=true only checks',
    tag: 'migrations',
    params: WorkloadParams,
    query: MigrateQuery,
    body: MigrateRequest,
    response: z.union([z.object({ migration: MigrationRecord, job: z.object({ id: z.string(), name: z.literal('migrate') }) }), MigrationDryRun]),
    status: 202,
    access: 'operator',
  },
  {
    method: 'GET',
    path: '/v1/migrations',
    summary: 'Migrations, newest first; paged (limit, cursor → nextCursor)',
    tag: 'migrations',
    query: MigrationListQuery,
    response: MigrationListResponse,
    access: 'viewer',
  },
  { method: 'GET', path: '/v1/migrations/:id', summary: 'One migration with its timeline', tag: 'migrations', params: MigrationParams, response: MigrationRecord, access: 'viewer' },
  {
    method: 'DELETE',
    path: '/v1/migrations/:id',
    summary: 'Cancel a migration (409 after its commit)',
    tag: 'migrations',
    params: MigrationParams,
    response: MigrationRecord,
    status: 202,
    access: 'operator',
  },
  {
    method: 'GET',
    path: '/v1/compat',
    summary: 'Every reason a host cannot take a workload',
    tag: 'planning',
    query: z.object({ workload: WorkloadId, host: HostId }),
    response: CompatResponse,
    access: 'viewer',
  },
  { method: 'GET', path: '/v1/cluster/snapshot', summary: 'The cluster as the planners see it', tag: 'planning', response: ClusterSnapshotDocument, access: 'viewer' },
  {
    method: 'POST',
    path: '/v1/rebalance',
    summary: 'Plan a rebalance (and run it unless ?dryRun=true)',
    tag: 'planning',
    query: DryRunQuery,
    body: RebalanceRequest,
    response: PlanRecord,
    status: 202,
    access: 'operator',
  },
  { method: 'GET', path: '/v1/plans', summary: 'Plans, newest first; paged (limit, cursor → nextCursor)', tag: 'planning', query: PlanListQuery, response: PlanListResponse, access: 'viewer' },
  { method: 'GET', path: '/v1/plans/:id', summary: 'One plan with the status of each move', tag: 'planning', params: PlanParams, response: PlanRecord, access: 'viewer' },
  {
    method: 'POST',
    path: '/v1/plans/:id/execute',
    summary: 'Run a planned plan (409 when the cluster changed since)',
    tag: 'planning',
    params: PlanParams,
    response: PlanRecord,
    status: 202,
    access: 'operator',
  },
  { method: 'DELETE', path: '/v1/plans/:id', summary: 'Cancel a plan: moves not started never start', tag: 'planning', params: PlanParams, response: PlanRecord, status: 202, access: 'operator' },
  // API tokens and the audit log (docs/operations.md, "Access")
  {
    method: 'POST',
    path: '/v1/tokens',
    summary: 'Create a named token with a role; the answer holds the token, the only time it is shown (Ferry keeps only its SHA-256)',
    tag: 'access',
    body: CreateTokenRequest,
    response: TokenCreated,
    status: 201,
    access: 'admin',
  },
  {
    method: 'GET',
    path: '/v1/tokens',
    summary: 'Tokens by name: name, role, created, last used (never the token), the bootstrap token (FERRY_API_TOKEN) among them; paged (limit, cursor → nextCursor)',
    tag: 'access',
    query: TokenListQuery,
    response: TokenListResponse,
    access: 'admin',
  },
  { method: 'DELETE', path: '/v1/tokens/:name', summary: 'Revoke a named token: refused (401) from the next request on', tag: 'access', params: TokenParams, response: TokenRevoked, access: 'admin' },
  // joining hosts (docs/install.md)
  {
    method: 'POST',
    path: '/v1/join-tokens',
    summary: 'Make a one-time join token for a new host (default valid 1 h); the answer holds the token, the only time it is shown',
    tag: 'access',
    body: CreateJoinTokenRequest,
    response: JoinTokenCreated,
    status: 201,
    access: 'admin',
  },
  {
    method: 'GET',
    path: '/v1/join-tokens',
    summary: 'Join tokens by id: valid, used (by which host, when) or expired (never the token); paged (limit, cursor → nextCursor)',
    tag: 'access',
    query: TokenListQuery,
    response: JoinTokenListResponse,
    access: 'admin',
  },
  { method: 'DELETE', path: '/v1/join-tokens/:id', summary: 'Revoke a join token', tag: 'access', params: JoinTokenParams, response: JoinTokenRevoked, access: 'admin' },
  {
    method: 'GET',
    path: '/v1/cluster/ca',
    summary: 'The cluster CA certificate and its pin (what a joining host checks its token against)',
    tag: 'access',
    response: ClusterCaResponse,
    access: 'open',
  },
  {
    method: 'POST',
    path: '/v1/join',
    summary: 'A new host joins with a join token: its NATS identity is admitted and its certificate signed (the token is the credential; used once)',
    tag: 'access',
    body: JoinRequest,
    response: JoinResponse,
    status: 201,
    access: 'open',
  },
  {
    method: 'GET',
    path: '/v1/audit',
    summary: 'The audit log, newest first: every POST and DELETE, allowed or refused (who, role, when, what, from where, the status answered); ?before= the previous page’s `next`',
    tag: 'access',
    query: AuditQuery,
    response: AuditResponse,
    access: 'operator',
  },
];

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') =>
  z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'any' }) as Record<string, unknown> & { properties?: Record<string, unknown>; required?: string[] };

const openapiPath = (path: string) => path.replace(/:([A-Za-z]+)/g, '{$1}');

function parameters(schema: z.ZodType | undefined, where: 'path' | 'query'): unknown[] {
  if (!schema) return [];
  const json = jsonSchema(schema, 'input');
  return Object.entries(json.properties ?? {}).map(([name, s]) => ({
    name,
    in: where,
    required: where === 'path' || (json.required ?? []).includes(name),
    schema: s,
  }));
}

/** The OpenAPI 3.0 document of the API as built. */
export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const error = { description: 'An error: `{code, message, details}`', content: { 'application/json': { schema: jsonSchema(ApiErrorBody, 'output') } } };
  for (const op of OPERATIONS) {
    const ok = op.stream
      ? {
          description: op.response ? 'One JSON answer, or (when asked to follow) a stream of server-sent events' : 'A stream of server-sent events',
          content: { ...(op.response ? { 'application/json': { schema: jsonSchema(op.response, 'output') } } : {}), 'text/event-stream': { schema: { type: 'string' } } },
        }
      : op.html
        ? { description: 'An HTML page', content: { 'text/html': { schema: { type: 'string' } } } }
        : { description: 'OK', content: { 'application/json': { schema: op.response ? jsonSchema(op.response, 'output') : { type: 'object' } } } };
    (paths[openapiPath(op.path)] ??= {})[op.method.toLowerCase()] = {
      summary: op.summary,
      description: op.access === 'open' ? 'Open: no token needed.' : `Needs a token with the ${op.access} role or above (viewer < operator < admin).`,
      'x-ferry-role': op.access,
      tags: [op.tag],
      parameters: [...parameters(op.params, 'path'), ...parameters(op.query, 'query')],
      ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(op.body, 'input') } } } } : {}),
      responses: { [String(op.status ?? 200)]: ok, default: error },
      ...(op.access === 'open' ? { security: [] } : {}),
    };
  }
  return {
    openapi: '3.0.3',
    info: {
      title: 'Ferry API',
      version,
      description:
        'Cluster migration and failover for OS containers. Every /v1 route but this document needs `Authorization: Bearer <token>`, from a token whose role (viewer < operator < admin) is at least the one the operation names (`x-ferry-role`): 401 without a valid token, 403 when its role is too small.',
    },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths,
  };
}

/** Routes served but not documented, and documented but not served (both must be empty). */
export function routeDrift(served: Array<{ method: string; url: string }>): string[] {
  const key = (method: string, url: string) => `${method} ${url}`;
  const documented = new Set(OPERATIONS.map((op) => key(op.method, op.path)));
  const actual = new Set(served.filter((r) => r.method !== 'HEAD' && r.method !== 'OPTIONS').map((r) => key(r.method, r.url)));
  return [
    ...[...actual].filter((k) => !documented.has(k)).map((k) => `served but not in the OpenAPI document: ${k}`),
    ...[...documented].filter((k) => !actual.has(k)).map((k) => `in the OpenAPI document but not served: ${k}`),
  ];
}
