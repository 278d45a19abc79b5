export * from './model.ts';
export * from './score.ts';
export * from './rebalance.ts';
export * from './evacuate.ts';
export * from './feasibility.ts';
export * from './generate.ts';
export * from './from-snapshot.ts';
export * from './groups.ts';
