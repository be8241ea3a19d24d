export { ConfigError, loadConfig } from './load-config';
export {
  bytes,
  duration,
  flag,
  int,
  list,
  logLevel,
  parseDuration,
  port,
  postgresUrl,
  secret,
  serviceEnv,
} from './env-types';
