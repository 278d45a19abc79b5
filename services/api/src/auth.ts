import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { ApiError } from './errors.ts';

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Bearer-token check on everything but the open paths; compared in constant time. */
export function installBearerAuth(app: FastifyInstance, token: string, isOpen: (path: string) => boolean): void {
  const expected = digest(token);
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    if (isOpen(path)) return;
    const header = request.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!match) {
      reply.header('www-authenticate', 'Bearer');
      throw new ApiError('UNAUTHORIZED', 'missing bearer token: send "Authorization: Bearer <token>"');
    }
    if (!timingSafeEqual(digest(match[1]!), expected)) {
      reply.header('www-authenticate', 'Bearer error="invalid_token"');
      throw new ApiError('UNAUTHORIZED', 'invalid bearer token');
    }
  });
}
