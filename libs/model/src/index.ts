export * from './errors';
export * from './queue.responses';
export * from './queue.schemas';
export * from './telemetry.schemas';
export * from './gpu-labels';
export * from './series.schemas';
export * from './metadata.schemas';
export * from './storable-text';
