export * from './logger.ts';
export * from './config.ts';
export * from './nats.ts';
export * from './lifecycle.ts';
export * from './proc.ts';
export * from './ports.ts';
export * from './limiter.ts';
export * from './metrics.ts';
