export * from './net.ts';
export * from './snapshot.ts';
export * from './validation.ts';
export * from './placement.ts';
export * from './migration.ts';
export * from './planner/index.ts';
export * from './plans.ts';
export * from './failover.ts';
