import type { FastifyInstance } from 'fastify';
import {
  AuditQuery,
  BOOTSTRAP_TOKEN_NAME,
  CreateTokenRequest,
  TokenListQuery,
  TokenParams,
  pageOfList,
  type AuditResponse,
  type TokenCreated,
  type TokenListResponse,
  type TokenRevoked,
} from '@ferry/protocol';
import type { AuditLog, TokenStore } from '@ferry/store';
import { ApiError, parseRequest } from '../errors.ts';

/** named tokens at most (a bound on what one admin can make Redis hold) */
const MAX_TOKENS = 1000;

/**
 * Named API tokens (admin) and the audit log (operator and admin). A token is shown once, in the
 * answer that creates it; Redis keeps its SHA-256. The bootstrap token (FERRY_API_TOKEN) is
 * listed but cannot be created or revoked here: it changes with the API's configuration.
 */
export function accessRoutes(app: FastifyInstance, tokens: TokenStore, audit: AuditLog): void {
  app.post('/v1/tokens', async (request, reply) => {
    const { name, role } = parseRequest(CreateTokenRequest, request.body, 'body');
    if (name === BOOTSTRAP_TOKEN_NAME) {
      const problem = { field: 'body.name', message: `"${BOOTSTRAP_TOKEN_NAME}" is the built-in token (FERRY_API_TOKEN); choose another name` };
      throw new ApiError('BAD_REQUEST', `invalid body: ${problem.field}: ${problem.message}`, { problems: [problem] });
    }
    if ((await tokens.count()) >= MAX_TOKENS) throw new ApiError('CONFLICT', `there are ${MAX_TOKENS} tokens already: revoke some first (ferry tokens revoke NAME)`);
    const created = await tokens.create(name, role);
    if (!created) throw new ApiError('CONFLICT', `a token named ${name} exists: revoke it first (ferry tokens revoke ${name}) or choose another name`, { name });
    request.log.info({ tokenName: name, role, by: request.principal?.who }, 'API token created');
    const answer: TokenCreated = { name, role, createdAt: created.record.createdAt, token: created.token };
    return reply.status(201).send(answer);
  });

  /** In name order (the bootstrap token among them), paged like every list (at most 1,001). */
  app.get('/v1/tokens', async (request): Promise<TokenListResponse> => {
    const query = parseRequest(TokenListQuery, request.query, 'query');
    const bootstrap = { name: BOOTSTRAP_TOKEN_NAME, role: 'admin' as const, createdAt: null, lastUsedAt: await tokens.lastUsed(BOOTSTRAP_TOKEN_NAME), builtIn: true };
    const page = await pageOfList([bootstrap, ...(await tokens.list())], (t) => t.name, { limit: query.limit, after: query.cursor });
    return { tokens: page.items, nextCursor: page.nextCursor };
  });

  app.delete('/v1/tokens/:name', async (request): Promise<TokenRevoked> => {
    const { name } = parseRequest(TokenParams, request.params, 'params');
    if (name === BOOTSTRAP_TOKEN_NAME) {
      throw new ApiError('CONFLICT', `the ${BOOTSTRAP_TOKEN_NAME} token is FERRY_API_TOKEN: change it in the API's environment and restart the API to replace it`, { name });
    }
    if (!(await tokens.revoke(name))) throw new ApiError('NOT_FOUND', `no token ${name} (ferry tokens list shows them)`, { name });
    request.log.info({ tokenName: name, by: request.principal?.who }, 'API token revoked');
    return { name, revoked: true };
  });

  app.get('/v1/audit', async (request): Promise<AuditResponse> => {
    const { limit = 100, before } = parseRequest(AuditQuery, request.query, 'query');
    return audit.page(limit, before);
  });
}
