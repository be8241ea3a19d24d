// npm run sim:exporter: a simulated dcgm-exporter fleet on one port.
import { createServer } from 'node:http';
import { int, loadConfig, port } from '@gpu-telemetry/config';
import { z } from 'zod';
import { DcgmSimulator, SIMULATED_METRICS } from './dcgm-simulator';

const config = loadConfig(
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
server.listen(config.SIM_PORT, config.SIM_HOST || undefined, () => {
  console.log(
    JSON.stringify({
      level: 'info',
      time: new Date().toISOString(),
      service: 'simulator',
      msg: `simulating ${config.SIM_HOSTS} hosts x ${config.SIM_GPUS_PER_HOST} GPUs x ${SIMULATED_METRICS} metrics`,
      targets: `http://127.0.0.1:${config.SIM_PORT}/hosts/{1..${config.SIM_HOSTS}}/metrics`,
    }),
  );
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
