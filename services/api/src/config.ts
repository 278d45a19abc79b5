import { z } from 'zod';
import { flag, jsonText, loadConfig } from '@ferry/runtime';
import { CpuBaseline } from '@ferry/protocol';

export const ApiConfig = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.coerce.number().int().min(0).max(65_535).default(8080),
  /** bearer token every /v1 request must carry */
  token: z.string().min(16, 'must be at least 16 characters'),
  redisUrl: z.string().min(1).default('redis://127.0.0.1:6379'),
  /** where cluster events come from (GET /v1/events) */
  natsUrl: z.string().min(1).default('nats://127.0.0.1:4222'),
  keyPrefix: z.string().regex(/^[a-z0-9_-]{1,32}$/).default('ferry'),
  /** EVC-style cluster CPU baseline, the same as the scheduler's; JSON in FERRY_CPU_BASELINE */
  cpuBaseline: z.preprocess(jsonText, CpuBaseline.optional()),
  /** HA admission control for new workloads (N+1), the same as the scheduler's; FERRY_HA_ADMISSION */
  haAdmission: flag().default(false),
  /** request bodies above this are refused with 413 */
  bodyLimitBytes: z.coerce.number().int().min(1024).max(16 * 1024 * 1024).default(1024 * 1024),
});
export type ApiConfig = z.infer<typeof ApiConfig>;

export const API_ENV = {
  FERRY_CPU_BASELINE: 'cpuBaseline',
  FERRY_HA_ADMISSION: 'haAdmission',
  FERRY_API_HOST: 'host',
  FERRY_API_PORT: 'port',
  FERRY_API_TOKEN: 'token',
  FERRY_REDIS_URL: 'redisUrl',
  FERRY_NATS_URL: 'natsUrl',
  FERRY_KEY_PREFIX: 'keyPrefix',
};

export function loadApiConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): ApiConfig {
  return loadConfig(ApiConfig, { file, env, envMap: API_ENV });
}
