import type { FastifyError, FastifyInstance } from 'fastify';
import type { z } from 'zod';
import type { ApiErrorBody, ApiErrorCode } from '@ferry/protocol';

const STATUS: Record<ApiErrorCode, number> = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

export class ApiError extends Error {
  readonly status: number;

  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.status = STATUS[code];
  }

  body(): ApiErrorBody {
    return this.details === undefined ? { code: this.code, message: this.message } : { code: this.code, message: this.message, details: this.details };
  }
}

/** Parses one part of a request (params, query, body); a failure is a 400 listing every problem. */
export function parseRequest<S extends z.ZodType>(schema: S, value: unknown, part: string): z.output<S> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => ({
    field: [part, ...issue.path.map(String)].join('.'),
    message: issue.message,
  }));
  const summary = problems.map((p) => `${p.field}: ${p.message}`).join('; ');
  throw new ApiError('BAD_REQUEST', `invalid ${part}: ${summary}`, { problems });
}

/**
 * JSON bodies parsed as Fastify's own parser does (prototype-poisoning checks included), except
 * that an empty body with `Content-Type: application/json` is no body rather than a 400 "Body
 * cannot be empty": clients (curl -H, generated SDKs) send that for routes whose body is
 * optional (start, stop, execute, migrate, rebalance). A route that needs a body still refuses
 * its absence itself, naming it.
 */
export function installJsonParser(app: FastifyInstance): void {
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8'); // parseAs: 'string' gives a string
    if (text.length === 0) return done(null, undefined);
    return json(request, text, done);
  });
}

export const REDIS_UNAVAILABLE_MESSAGE = 'Redis is unreachable: the cluster state cannot be read right now; try again';

const REDIS_DOWN_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTCONN', 'EHOSTUNREACH', 'ENETUNREACH']);
const REDIS_DOWN_MESSAGES = [
  /Reached the max retries per request limit/i, // ioredis MaxRetriesPerRequestError
  /Connection is closed/i,
  /Stream isn't writeable/i,
  /enableOfflineQueue options is false/i,
  /\bECONNREFUSED\b|\bECONNRESET\b/,
  /^LOADING\b/, // redis-server reading its AOF/RDB after a restart
  /^BUSY\b/,
  /^MASTERDOWN\b|^TRYAGAIN\b|^CLUSTERDOWN\b/,
  // behind Sentinel: a primary demoted under a live connection (the client reconnects to the new
  // one), no Sentinel answering, or a primary refusing writes without its replicas
  /^READONLY\b/,
  /All sentinels are unreachable/i,
  /^NOREPLICAS\b/,
];

/**
 * Whether an error means Redis cannot be reached (down, restarting, loading its data) rather than
 * a bug: ioredis' MaxRetriesPerRequestError and closed-connection errors, socket errors, Redis'
 * LOADING reply, and BullMQ's errors wrapping them (adding jobs). Walks `cause` chains.
 */
export function isRedisUnavailable(error: unknown): boolean {
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { name, code, message } = e as { name?: unknown; code?: unknown; message?: unknown };
    if (name === 'MaxRetriesPerRequestError') return true;
    if (typeof code === 'string' && REDIS_DOWN_CODES.has(code)) return true;
    if (typeof message === 'string' && REDIS_DOWN_MESSAGES.some((re) => re.test(message))) return true;
  }
  return false;
}

/**
 * Every error leaves the API as `{code, message, details}`; internals are logged, not returned.
 * Redis being unreachable is a 503 UNAVAILABLE for every route (reads and writes), decided here
 * once rather than per route.
 */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
    if (error instanceof ApiError) {
      return reply.status(error.status).send(error.body());
    }
    if (isRedisUnavailable(error)) {
      request.log.warn({ err: (error as Error).message, url: request.url }, 'Redis unreachable: answering 503');
      return reply.status(503).header('retry-after', '2').send({ code: 'UNAVAILABLE', message: REDIS_UNAVAILABLE_MESSAGE });
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code: ApiErrorCode = status === 404 ? 'NOT_FOUND' : status === 401 ? 'UNAUTHORIZED' : status === 403 ? 'FORBIDDEN' : 'BAD_REQUEST';
      // Fastify's own words for these two name neither what was sent nor what is accepted
      const message =
        error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? `unsupported content type ${JSON.stringify(String(request.headers['content-type'] ?? '').slice(0, 100))}: send application/json`
          : error.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
            ? `the request body is larger than this API accepts (${request.server.initialConfig.bodyLimit ?? 'its limit'} bytes)`
            : error.message;
      return reply.status(status).send({ code, message, details: { fastifyCode: error.code } });
    }
    request.log.error({ err: error }, 'request failed');
    return reply.status(500).send({ code: 'INTERNAL', message: 'internal error; see the API log' });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send({ code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` });
  });
}
