import { z } from 'zod';
import { CpuBaseline } from '@ferry/protocol';
import { flag, jsonText } from './config.ts';

/**
 * The placement settings the API and the scheduler must agree on: the API answers "where would
 * it go" (HA admission on create, a migration without a destination, rebalance and maintenance
 * plans) and the scheduler then places with them, so both configs take exactly this shape from
 * exactly these variables, and both build their policy from it with `placementPolicy` (@ferry/core).
 */
export const PLACEMENT_SETTINGS = {
  /** EVC-style cluster CPU baseline (see PlacementPolicy.cpuBaseline); JSON in FERRY_CPU_BASELINE */
  cpuBaseline: z.preprocess(jsonText, CpuBaseline.optional()),
  /** where workloads go: spread (most memory left) or binpack (fullest that fits) */
  placementMode: z.enum(['spread', 'binpack']).default('spread'),
  /** HA admission control (N+1) for new workloads, see PlacementPolicy.haAdmission */
  haAdmission: flag().default(false),
};

export const PLACEMENT_ENV = {
  FERRY_CPU_BASELINE: 'cpuBaseline',
  FERRY_PLACEMENT_MODE: 'placementMode',
  FERRY_HA_ADMISSION: 'haAdmission',
} as const;
