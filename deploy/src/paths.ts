import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export type ServiceName = 'agent' | 'scheduler' | 'api';

/** Entry point of a service, run with `node --import tsx <entry>`. */
export const serviceEntry = (service: ServiceName): string => join(repoRoot, 'services', service, 'src', 'main.ts');
