import { z } from 'zod';

/** A DNS-label-like name: safe as a NATS subject token, a Redis key part and a file name. */
export const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export const Name = z.string().regex(NAME_PATTERN, 'must be 1-63 lowercase letters, digits or dashes, not starting or ending with a dash');

export const HostId = Name.describe('host id');
export type HostId = z.infer<typeof HostId>;
