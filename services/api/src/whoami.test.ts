import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import type { Role } from '@ferry/protocol';
import { createLogger } from '@ferry/runtime';
import { installAccessControl } from './auth.ts';
import { installErrorHandlers } from './errors.ts';
import { openApiDocument } from './openapi.ts';
import { WhoAmIResponse, whoamiRoutes } from './routes/whoami.ts';

const BOOTSTRAP = 'b'.repeat(32);
const TOKENS: Record<string, { name: string; role: Role }> = { 'viewer-token-000000': { name: 'ro', role: 'viewer' }, 'operator-token-0000': { name: 'ops', role: 'operator' } };

describe('GET /v1/whoami', () => {
  it('tells each token its own name and role, behind the access hook (401 without one)', async () => {
    const app = Fastify();
    installErrorHandlers(app);
    installAccessControl(app, {
      bootstrapToken: BOOTSTRAP,
      tokens: { lookup: async (token) => (TOKENS[token] ? { ...TOKENS[token], hash: '0'.repeat(64), createdAt: 1 } : null), touch: async () => undefined },
      audit: { append: async () => undefined },
      log: createLogger('test').child({}, { level: 'silent' }),
    });
    whoamiRoutes(app);
    await app.ready();
    const ask = (token?: string) => app.inject({ method: 'GET', url: '/v1/whoami', headers: token ? { authorization: `Bearer ${token}` } : {} });
    expect((await ask()).statusCode).toBe(401);
    expect((await ask('not-a-token-at-all')).statusCode).toBe(401);
    expect((await ask(BOOTSTRAP)).json()).toEqual({ name: 'bootstrap', role: 'admin' });
    expect((await ask('viewer-token-000000')).json()).toEqual({ name: 'ro', role: 'viewer' });
    const operator = await ask('operator-token-0000');
    expect(WhoAmIResponse.parse(operator.json())).toEqual({ name: 'ops', role: 'operator' });
    await app.close();
  });

  it('is in the OpenAPI document, readable by every role: what the dashboard shows its actions by', () => {
    const doc = openApiDocument('0') as { paths: Record<string, Record<string, { 'x-ferry-role': string }>> };
    expect(doc.paths['/v1/whoami']!.get!['x-ferry-role']).toBe('viewer');
    // the dashboard's actions read these roles (services/api/ui/access.js)
    expect(doc.paths['/v1/workloads']!.post!['x-ferry-role']).toBe('admin');
    expect(doc.paths['/v1/workloads/{id}/migrate']!.post!['x-ferry-role']).toBe('operator');
  });
});
