export * from './ids.ts';
export * from './subjects.ts';
export * from './reasons.ts';
export * from './capacity.ts';
export * from './hosts.ts';
export * from './api.ts';
export * from './redis-keys.ts';
