export { ConfigError, loadConfig, readSetting } from './load-config';
export { listenProblem, type ListenSettings } from './listen-problem';
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
