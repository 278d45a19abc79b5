import { z } from 'zod';

/** A CPU's identity and feature flags, as /proc/cpuinfo tells them. */
export const CpuInfo = z.object({
  vendor: z.string().min(1).max(64),
  family: z.number().int().nonnegative().max(100_000),
  model: z.number().int().nonnegative().max(100_000),
  modelName: z.string().max(256),
  flags: z.array(z.string().regex(/^[a-z0-9_.]{1,64}$/)).max(2048),
  count: z.number().int().positive().max(65_536),
});
export type CpuInfo = z.infer<typeof CpuInfo>;

/** A cluster CPU baseline (EVC-style): what every workload may use and every host must offer. */
export const CpuBaseline = z.strictObject({
  vendor: z.string().min(1).max(64),
  family: z.number().int().nonnegative(),
  flags: z.array(z.string().regex(/^[a-z0-9_.]{1,64}$/)).max(2048),
});
export type CpuBaseline = z.infer<typeof CpuBaseline>;
