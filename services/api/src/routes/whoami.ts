import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { Role, TokenName } from '@ferry/protocol';

/**
 * GET /v1/whoami: the calling token's name and role, so that a client (the dashboard) shows only
 * the actions the token may take. Readable by every role; it tells a token nothing about others.
 */
export const WhoAmIResponse = z.object({
  /** the token's name (`bootstrap` for FERRY_API_TOKEN) */
  name: TokenName,
  role: Role,
});
export type WhoAmIResponse = z.infer<typeof WhoAmIResponse>;

export function whoamiRoutes(app: FastifyInstance): void {
  app.get('/v1/whoami', async (request): Promise<WhoAmIResponse> => {
    // the access hook ran first: a request that gets here has a valid token with a role
    const principal = request.principal!;
    return { name: principal.who, role: principal.role! };
  });
}
