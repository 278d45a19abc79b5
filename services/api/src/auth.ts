import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ANONYMOUS, BOOTSTRAP_TOKEN_NAME, type AuditTarget, INVALID_TOKEN, roleAllows, type AuditEntry, type Role, type TokenRecord } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { ApiError } from './errors.ts';
import { OPERATIONS, type Access } from './openapi.ts';

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Who made a request: a token's name and role, or `anonymous` / `invalid token` and no role. */
export interface Principal {
  who: string;
  role: Role | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** set by the access hook on every request that is not open */
    principal: Principal | null;
  }
}

/** What the access hook needs: the bootstrap token, the named tokens, where audit entries go. */
export interface AccessControl {
  /** FERRY_API_TOKEN: always valid, the `admin` token named `bootstrap` */
  bootstrapToken: string;
  tokens: { lookup(token: string): Promise<TokenRecord | null>; touch(name: string): Promise<void> };
  audit: { append(entry: Omit<AuditEntry, 'id'>): Promise<unknown> };
  log: Logger;
  /** an audit entry could not be written (logged too) */
  onAuditFailure?: () => void;
}

const key = (method: string, route: string) => `${method === 'HEAD' ? 'GET' : method} ${route}`;

/** The route → access table, from the one place that declares it (OPERATIONS in openapi.ts). */
export const ACCESS: ReadonlyMap<string, Access> = new Map(OPERATIONS.map((op) => [key(op.method, op.path), op.access]));

/** The access a route needs; undefined when the table has no entry (the hook then refuses: fail closed). */
export const accessOf = (method: string, route: string): Access | undefined => ACCESS.get(key(method, route));

/** Served routes (method, Fastify url) without an entry in the access table: must be none. */
export function accessGaps(served: Array<{ method: string; url: string }>): string[] {
  return served.filter((r) => r.method !== 'OPTIONS' && accessOf(r.method, r.url) === undefined).map((r) => `${r.method} ${r.url}`);
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** the collection a route's first segment names → what its `:id`/`:name` (or a created body's id/name) is */
const TARGETS: Record<string, AuditTarget> = {
  workloads: 'workload',
  hosts: 'host',
  migrations: 'migration',
  plans: 'plan',
  tokens: 'token',
  jobs: 'job',
  'join-tokens': 'join-token',
  join: 'host',
};

const clip = (text: string, max: number) => (text.length > max ? text.slice(0, max) : text);

/** What a request names: `/v1/workloads/:id/…` a workload, `/v1/hosts/:id/…` a host, POST /v1/workloads the one in its body… */
function targetOf(request: FastifyRequest, route: string | undefined): AuditEntry['target'] {
  if (!route) return null;
  const kind = TARGETS[route.split('/')[2] ?? ''];
  if (!kind) return null;
  const params = (request.params ?? {}) as Record<string, unknown>;
  const body = (request.body ?? {}) as Record<string, unknown>;
  const id = params.id ?? params.name ?? (route.split('/').length === 3 ? (body.id ?? body.name ?? body.hostId) : undefined);
  return typeof id === 'string' && id.length > 0 ? { kind, id: clip(id, 200) } : null;
}

/**
 * Access control and the audit log, as two hooks:
 * - onRequest: the route's access from the table (open, or the least role); without a valid
 *   bearer token 401, with one whose role is too small 403 naming the role needed and the one
 *   held. A route with no entry is refused (500): nothing is served by accident.
 * - onSend: every mutating request (POST, PUT, PATCH, DELETE), allowed or refused, becomes an
 *   audit entry with its outcome, written before the answer leaves. A failed write is logged and
 *   counted; the answer is sent all the same.
 * Tokens: FERRY_API_TOKEN is the `admin` token `bootstrap` (compared in constant time); others
 * are found by their SHA-256 in Redis (no cache: a revoked token fails at once).
 */
export function installAccessControl(app: FastifyInstance, control: AccessControl): void {
  const bootstrap = digest(control.bootstrapToken);
  const errors = new WeakMap<FastifyRequest, string>();
  app.decorateRequest('principal', null);

  const identify = async (token: string): Promise<Principal> => {
    if (timingSafeEqual(digest(token), bootstrap)) return { who: BOOTSTRAP_TOKEN_NAME, role: 'admin' };
    if (token.length > 512) return { who: INVALID_TOKEN, role: null };
    let record: TokenRecord | null;
    try {
      record = await control.tokens.lookup(token);
    } catch (err) {
      control.log.error({ err }, 'cannot check a token: Redis does not answer');
      throw new ApiError('UNAVAILABLE', 'cannot check the token right now (the API cannot reach Redis); try again');
    }
    return record ? { who: record.name, role: record.role } : { who: INVALID_TOKEN, role: null };
  };

  app.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions.url;
    // no route: the 404 is for token holders only, like everything not open
    const needed: Access | undefined = route === undefined ? 'viewer' : accessOf(request.method, route);
    if (needed === undefined) throw new ApiError('INTERNAL', `${request.method} ${route} has no entry in the access table; refused`);
    if (needed === 'open') return;
    const header = request.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!match) {
      request.principal = { who: ANONYMOUS, role: null };
      reply.header('www-authenticate', 'Bearer');
      throw new ApiError('UNAUTHORIZED', 'missing bearer token: send "Authorization: Bearer <token>"');
    }
    const principal = await identify(match[1]!);
    request.principal = principal;
    if (principal.role === null) {
      reply.header('www-authenticate', 'Bearer error="invalid_token"');
      throw new ApiError('UNAUTHORIZED', 'invalid bearer token (unknown or revoked)');
    }
    control.tokens.touch(principal.who).catch((err: unknown) => control.log.warn({ err, tokenName: principal.who }, 'could not record when a token was used'));
    if (!roleAllows(principal.role, needed)) {
      reply.header('www-authenticate', 'Bearer error="insufficient_scope"');
      throw new ApiError('FORBIDDEN', `${request.method} ${route ?? request.url.split('?')[0]} needs the ${needed} role; token "${principal.who}" has the ${principal.role} role`, {
        needed,
        held: principal.role,
        token: principal.who,
      });
    }
  });

  app.addHook('onError', async (request, _reply, error) => {
    errors.set(request, error instanceof ApiError ? error.code : (error.code ?? 'ERROR'));
  });

  // onSend, not onResponse: the entry is written before the client has the answer
  app.addHook('onSend', async (request, reply, payload) => {
    if (!MUTATING.has(request.method)) return payload;
    const route = request.routeOptions.url ?? null;
    const [path = '', query] = request.url.split('?', 2);
    const status = reply.statusCode;
    const entry: Omit<AuditEntry, 'id'> = {
      at: Date.now(),
      who: request.principal?.who ?? ANONYMOUS,
      role: request.principal?.role ?? null,
      method: request.method,
      path: clip(path, 500),
      query: query ? clip(query, 500) : null,
      route,
      target: targetOf(request, route ?? undefined),
      remote: clip(request.ip ?? '', 100),
      status,
      error: status >= 400 ? clip(errors.get(request) ?? (status === 404 ? 'NOT_FOUND' : `HTTP_${status}`), 40) : null,
    };
    try {
      await control.audit.append(entry);
    } catch (err) {
      control.onAuditFailure?.();
      control.log.error({ err, entry }, 'could not write an audit entry');
    }
    return payload;
  });
}
