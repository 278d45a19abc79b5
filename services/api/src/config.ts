import { z } from 'zod';
import { loadConfig, NATS_CONFIG_ENV, NATS_CONFIG_FIELDS, PLACEMENT_ENV, PLACEMENT_SETTINGS, REDIS_CONFIG_ENV, REDIS_CONFIG_FIELDS } from '@ferry/runtime';

export const ApiConfig = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.coerce.number().int().min(0).max(65_535).default(8080),
  /** the bootstrap token: always valid, the `admin` token named `bootstrap` (named tokens with roles: POST /v1/tokens) */
  token: z.string().min(16, 'must be at least 16 characters'),
  /** redisUrl (no credentials in it), redisUser, redisPasswordFile */
  ...REDIS_CONFIG_FIELDS,
  /** where cluster events come from (GET /v1/events) */
  ...NATS_CONFIG_FIELDS,
  keyPrefix: z.string().regex(/^[a-z0-9_-]{1,32}$/).default('ferry'),
  /** cpuBaseline, placementMode, haAdmission: the same settings (and variables) as the scheduler's */
  ...PLACEMENT_SETTINGS,
  /** a plan not executed this long after it was made (a dry run) expires: it is deleted, and executing it is refused */
  planTtlMs: z.coerce.number().int().min(1000).max(30 * 24 * 3600_000).default(3600_000),
  /** request bodies above this are refused with 413 */
  bodyLimitBytes: z.coerce.number().int().min(1024).max(16 * 1024 * 1024).default(1024 * 1024),
});
export type ApiConfig = z.infer<typeof ApiConfig>;

export const API_ENV = {
  ...PLACEMENT_ENV,
  FERRY_PLAN_TTL_MS: 'planTtlMs',
  FERRY_API_HOST: 'host',
  FERRY_API_PORT: 'port',
  FERRY_API_TOKEN: 'token',
  ...REDIS_CONFIG_ENV,
  ...NATS_CONFIG_ENV,
  FERRY_KEY_PREFIX: 'keyPrefix',
};

export function loadApiConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): ApiConfig {
  return loadConfig(ApiConfig, { file, env, envMap: API_ENV });
}
