export * from './errors';
export * from './queue.schemas';
export * from './telemetry.schemas';
