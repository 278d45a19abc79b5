import { z } from 'zod';
import { loadConfig, NATS_CONFIG_ENV, NATS_CONFIG_FIELDS, PLACEMENT_ENV, PLACEMENT_SETTINGS, REDIS_CONFIG_ENV, REDIS_CONFIG_FIELDS } from '@ferry/runtime';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;
const absolute = z.string().startsWith('/', 'must be an absolute path');

export const ApiConfig = z
  .object({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.coerce.number().int().min(0).max(65_535).default(8080),
    /** the bootstrap token: always valid, the `admin` token named `bootstrap` (named tokens with roles: POST /v1/tokens) */
    token: z.string().min(16, 'must be at least 16 characters').optional(),
    /** or the file holding it (0600): how an installed API gets it, so it is in no environment */
    tokenFile: absolute.optional(),
    /** HTTPS: the API's certificate and key (from the cluster CA: ferry-admin init makes them); required off loopback */
    tlsCertFile: absolute.optional(),
    tlsKeyFile: absolute.optional(),
    /** the control plane's directory (CA, NATS identities): with it the API admits joining hosts and revokes removed ones */
    controlDir: absolute.optional(),
    /** the NATS URL a joining host is told (default: natsUrl) */
    natsAdvertiseUrl: z.string().min(1).optional(),
    /** redisUrl (no credentials in it), redisUser, redisPasswordFile */
    ...REDIS_CONFIG_FIELDS,
    /** where cluster events come from (GET /v1/events) */
    ...NATS_CONFIG_FIELDS,
    keyPrefix: z
      .string()
      .regex(/^[a-z0-9_-]{1,32}$/)
      .default('ferry'),
    /** cpuBaseline, placementMode, haAdmission: the same settings (and variables) as the scheduler's */
    ...PLACEMENT_SETTINGS,
    /** a plan not executed this long after it was made (a dry run) expires: it is deleted, and executing it is refused */
    planTtlMs: z.coerce
      .number()
      .int()
      .min(1000)
      .max(30 * 24 * 3600_000)
      .default(3600_000),
    /** request bodies above this are refused with 413 */
    bodyLimitBytes: z.coerce
      .number()
      .int()
      .min(1024)
      .max(16 * 1024 * 1024)
      .default(1024 * 1024),
  })
  .superRefine((config, ctx) => {
    if ((config.token === undefined) === (config.tokenFile === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['token'], message: 'give the bootstrap token either as token (FERRY_API_TOKEN) or as tokenFile (FERRY_API_TOKEN_FILE), one of them' });
    }
    if ((config.tlsCertFile === undefined) !== (config.tlsKeyFile === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['tlsKeyFile'], message: 'HTTPS needs both tlsCertFile and tlsKeyFile' });
    }
    if (config.tlsCertFile === undefined && !LOOPBACK.test(config.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['host'],
        message: `the API serves plain HTTP on loopback only: to listen on ${config.host}, give it a certificate (tlsCertFile and tlsKeyFile; ferry-admin init makes one)`,
      });
    }
  });
export type ApiConfig = z.infer<typeof ApiConfig>;

export const API_ENV = {
  ...PLACEMENT_ENV,
  FERRY_PLAN_TTL_MS: 'planTtlMs',
  FERRY_API_HOST: 'host',
  FERRY_API_PORT: 'port',
  FERRY_API_TOKEN: 'token',
  FERRY_API_TOKEN_FILE: 'tokenFile',
  FERRY_API_TLS_CERT_FILE: 'tlsCertFile',
  FERRY_API_TLS_KEY_FILE: 'tlsKeyFile',
  FERRY_CONTROL_DIR: 'controlDir',
  FERRY_NATS_ADVERTISE_URL: 'natsAdvertiseUrl',
  ...REDIS_CONFIG_ENV,
  ...NATS_CONFIG_ENV,
  FERRY_KEY_PREFIX: 'keyPrefix',
};

export function loadApiConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): ApiConfig {
  return loadConfig(ApiConfig, { file, env, envMap: API_ENV });
}
