export { freePort, ManagedProcess, startProcess } from './processes';
export type { OutputSink, ProcessExit, ProcessOptions } from './processes';
export { fmt, percentile, printTable } from './report';
export { sleep, waitFor } from './wait-for';
export type { WaitForOptions } from './wait-for';
