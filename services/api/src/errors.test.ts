import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { installErrorHandlers, isRedisUnavailable, REDIS_UNAVAILABLE_MESSAGE } from './errors.ts';

class MaxRetriesPerRequestError extends Error {
  override name = 'MaxRetriesPerRequestError';
}

describe('Redis being unreachable', () => {
  it('is recognised from ioredis, socket and Redis errors, and through causes (BullMQ)', () => {
    expect(isRedisUnavailable(new MaxRetriesPerRequestError('Reached the max retries per request limit (which is 2). Refer to "maxRetriesPerRequest" option for details.'))).toBe(true);
    expect(isRedisUnavailable(new Error('Connection is closed.'))).toBe(true);
    expect(isRedisUnavailable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isRedisUnavailable(new Error('LOADING Redis is loading the dataset in memory'))).toBe(true);
    expect(isRedisUnavailable(new Error('could not add job', { cause: new Error('Connection is closed.') }))).toBe(true);
    // behind Sentinel, during a failover
    expect(isRedisUnavailable(new Error("READONLY You can't write against a read only replica."))).toBe(true);
    expect(isRedisUnavailable(new Error('All sentinels are unreachable. Retrying from scratch after 10ms. Last error: connect ECONNREFUSED 127.0.0.1:26379'))).toBe(true);
    expect(isRedisUnavailable(new Error('Cannot read properties of undefined'))).toBe(false);
    expect(isRedisUnavailable(null)).toBe(false);
  });

  it('makes every route answer 503 UNAVAILABLE with the message, never 500', async () => {
    const app = Fastify();
    installErrorHandlers(app);
    app.get('/read', async () => {
      throw new MaxRetriesPerRequestError('Reached the max retries per request limit (which is 2).');
    });
    app.post('/write', async () => {
      throw new Error('Connection is closed.');
    });
    app.get('/bug', async () => {
      throw new Error('a bug');
    });
    for (const [method, url] of [
      ['GET', '/read'],
      ['POST', '/write'],
    ] as const) {
      const response = await app.inject({ method, url });
      expect(response.statusCode).toBe(503);
      expect(response.json()).toEqual({ code: 'UNAVAILABLE', message: REDIS_UNAVAILABLE_MESSAGE });
    }
    expect((await app.inject({ method: 'GET', url: '/bug' })).statusCode).toBe(500);
    await app.close();
  });
});
