export { ConfigError, loadConfig, readSetting } from './load-config';
export { maskedUrl } from './masked-url';
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
