import { Writable } from 'node:stream';
import { diag } from '@opentelemetry/api';
import { createLogger } from './logger';
import { incomingSpanAttributes, logDiagnostics } from './telemetry';

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

describe('incomingSpanAttributes', () => {
  const request = (remoteAddress: string | undefined, headers: Record<string, string> = {}) => ({
    socket: { remoteAddress },
    headers,
  });

  it('records an IPv4 client of a dual-stack socket as plain IPv4, peer and client alike', () => {
    expect(incomingSpanAttributes(request('::ffff:10.1.2.3'))).toEqual({
      'network.peer.address': '10.1.2.3',
      'client.address': '10.1.2.3',
    });
  });

  it('leaves the client to a Forwarded or X-Forwarded-For header where one names it', () => {
    expect(incomingSpanAttributes(request('::ffff:10.1.2.3', { 'x-forwarded-for': '203.0.113.9' }))).toEqual({
      'network.peer.address': '10.1.2.3',
    });
    expect(incomingSpanAttributes(request('::ffff:10.1.2.3', { forwarded: 'for=203.0.113.9' }))).toEqual({
      'network.peer.address': '10.1.2.3',
    });
  });

  it("adds nothing where the socket's own words are already plain, or it has closed", () => {
    expect(incomingSpanAttributes(request('10.1.2.3'))).toEqual({});
    expect(incomingSpanAttributes(request('::1'))).toEqual({});
    expect(incomingSpanAttributes(request('2001:db8::7'))).toEqual({});
    expect(incomingSpanAttributes(request('::ffff:zz'))).toEqual({});
    expect(incomingSpanAttributes(request(undefined))).toEqual({});
  });
});
