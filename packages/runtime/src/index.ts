export * from './logger.ts';
export * from './config.ts';
export * from './nats.ts';
export * from './lifecycle.ts';
