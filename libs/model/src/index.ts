export * from './errors';
export * from './queue.schemas';
