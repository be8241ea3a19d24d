import { Writable } from 'node:stream';
import { diag } from '@opentelemetry/api';
import { createLogger } from './logger';
import { logDiagnostics } from './telemetry';

describe('logDiagnostics', () => {
  afterEach(() => diag.disable());

  it("writes the SDK's warnings and errors as the service's log lines, and nothing below warn", () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        callback();
      },
    });
    logDiagnostics(createLogger('queue', 'info', sink));
    diag.error('export failed', new Error('connect ECONNREFUSED 127.0.0.1:8080'));
    diag.warn('Dropped 12 spans because maxQueueSize reached');
    diag.info('starting');
    diag.debug('items to be sent');
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'error',
        service: 'queue',
        component: 'opentelemetry',
        msg: 'export failed',
        err: expect.objectContaining({ message: 'connect ECONNREFUSED 127.0.0.1:8080' }),
      }),
      expect.objectContaining({
        level: 'warn',
        component: 'opentelemetry',
        msg: 'Dropped 12 spans because maxQueueSize reached',
      }),
    ]);
  });
});
