export {
  createConsumer,
  type Consumer,
  type ConsumerLogger,
  type ConsumerOptions,
  type HandleResult,
} from './consumer';
export { QueueClient, QueueRequestError, type QueueClientOptions } from './queue-client';
