// npm run sim:exporter: a simulated dcgm-exporter fleet on one port.
import { createServer } from 'node:http';
import { ConfigError, int, listenProblem, loadConfig, port } from '@gpu-telemetry/config';
import { z } from 'zod';
import { DcgmSimulator, SIMULATED_METRICS } from './dcgm-simulator';

const config = configured(
  z.object({
    SIM_PORT: port(9400),
    /** Unset or empty: every address, IPv6 and IPv4, as the services. */
    SIM_HOST: z.string().optional(),
    SIM_HOSTS: int(4, 1, 100_000),
    SIM_GPUS_PER_HOST: int(8, 1, 64),
    SIM_HOST_PREFIX: z.string().default('sim-node'),
  }),
);
const simulator = new DcgmSimulator({
  hosts: config.SIM_HOSTS,
  gpusPerHost: config.SIM_GPUS_PER_HOST,
  hostPrefix: config.SIM_HOST_PREFIX,
});
const server = createServer(simulator.handle);
server.keepAliveTimeout = 65_000;
server.once('error', refused);
server.listen(config.SIM_PORT, config.SIM_HOST || undefined, () => {
  server.off('error', refused);
  log(
    'info',
    `simulating ${config.SIM_HOSTS} hosts x ${config.SIM_GPUS_PER_HOST} GPUs x ${SIMULATED_METRICS} metrics`,
    {
      targets: `http://127.0.0.1:${config.SIM_PORT}/hosts/{1..${config.SIM_HOSTS}}/metrics`,
    },
  );
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

/** The environment read by `schema`; a setting it refuses is listed plainly, as the services list theirs, and exit 1. */
function configured<S extends Parameters<typeof loadConfig>[0]>(schema: S): ReturnType<typeof loadConfig<S>> {
  try {
    return loadConfig(schema);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exit(1);
  }
}

/** One JSON log line, as the services write theirs. */
function log(level: 'info' | 'fatal', msg: string, fields: Record<string, unknown> = {}): void {
  console.log(
    JSON.stringify({ level, time: new Date().toISOString(), service: 'simulator', msg, ...fields }),
  );
}

/**
 * A port that cannot be opened is one fatal line naming the address and the variable to change,
 * and exit 1; a failure this does not explain is thrown as it is.
 */
function refused(error: NodeJS.ErrnoException): void {
  const host = config.SIM_HOST || undefined;
  const problem = listenProblem(error.code, host, config.SIM_PORT, { port: 'SIM_PORT', host: 'SIM_HOST' });
  if (problem === undefined) throw error;
  log('fatal', problem, { host, port: config.SIM_PORT, code: error.code });
  process.exit(1);
}
