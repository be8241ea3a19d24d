import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  ExpositionParser,
  parseExposition,
  type ExpositionSample,
  type ParseError,
} from './exposition-parser';

const FIXTURES = path.resolve(__dirname, '../../../../fixtures/dcgm-exporter');
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name), 'utf8');

describe('metadata lines', () => {
  it('reads HELP and TYPE of every family of real dcgm-exporter output', () => {
    const { metadata } = parseExposition(fixture('kops-l4-no-pod.prom'));
    const types = metadata.filter((m) => m.kind === 'type');
    expect(types).toHaveLength(23);
    expect(types.filter((m) => m.text === 'counter')).toHaveLength(4);
    expect(metadata).toContainEqual({
      name: 'DCGM_FI_DEV_SM_CLOCK',
      kind: 'help',
      text: 'SM clock frequency (in MHz).',
    });
    expect(metadata).toContainEqual({ name: 'DCGM_FI_DEV_SM_CLOCK', kind: 'type', text: 'gauge' });
  });

  it('unescapes help as Prometheus does, takes UNIT, and ignores other comments and half lines', () => {
    const { metadata, samples, errors } = parseExposition(
      [
        '# HELP a_total Counts \\ things\\nover two lines, \\t kept, \\"quoted\\"',
        '#   TYPE   a_total   counter  ',
        '# UNIT a_total seconds',
        '# a free comment',
        '# HELP',
        '# HELP 1bad text',
        '# HELPER x y',
        '# TYPE b untyped',
        'a_total 1',
      ].join('\n'),
      'openmetrics',
    );
    expect(metadata).toEqual([
      { name: 'a_total', kind: 'help', text: 'Counts \\ things\nover two lines, \\t kept, "quoted"' },
      { name: 'a_total', kind: 'type', text: 'counter' },
      { name: 'a_total', kind: 'unit', text: 'seconds' },
      { name: 'b', kind: 'type', text: 'untyped' },
    ]);
    expect(samples).toHaveLength(1);
    expect(errors).toEqual([]);
    // In the Prometheus text format UNIT is a plain comment, and \" is not an escape of help.
    const text = parseExposition('# UNIT a seconds\n# HELP a say \\"hi\\"\na 1\n');
    expect(text.metadata).toEqual([{ name: 'a', kind: 'help', text: 'say \\"hi\\"' }]);
  });
});

describe('parsing real dcgm-exporter output', () => {
  it('reads every sample of an L4 without k8s labels', () => {
    const { samples, errors } = parseExposition(fixture('kops-l4-no-pod.prom'));
    expect(errors).toEqual([]);
    expect(samples).toHaveLength(23);
    expect(new Set(samples.map((s) => s.name)).size).toBe(23);
    expect(samples[0]).toEqual({
      name: 'DCGM_FI_DEV_SM_CLOCK',
      labels: {
        gpu: '0',
        UUID: 'GPU-c2f76b33-7953-256e-8f33-1343419b1a1c',
        pci_bus_id: '00000000:31:00.0',
        device: 'nvidia0',
        modelName: 'NVIDIA L4',
        Hostname: 'i-030791dc5a37cd257',
        DCGM_FI_DRIVER_VERSION: '580.105.08',
      },
      value: 210,
      timestampMs: undefined,
    });
    expect(samples.find((s) => s.name === 'DCGM_FI_DEV_POWER_USAGE')?.value).toBe(16.365);
  });

  it('reads the 8-GPU A800 with MIG, skipping only the lines whose value is not a number', () => {
    const { samples, errors } = parseExposition(fixture('johnsblog-a800-mig-8gpu.prom'));
    expect(samples).toHaveLength(223);
    expect(errors).toHaveLength(10);
    expect(
      errors.every(
        (e) => e.message.includes('"ERROR"') && e.text.startsWith('DCGM_FI_DEV_VGPU_PER_PROCESS_UTILIZATION'),
      ),
    ).toBe(true);
    const smClock = samples.filter((s) => s.name === 'DCGM_FI_DEV_SM_CLOCK');
    expect(smClock).toHaveLength(10);
    expect(smClock.filter((s) => s.labels['GPU_I_ID']).map((s) => s.labels['GPU_I_ID'])).toEqual([
      '3',
      '5',
      '6',
    ]);
    expect(samples.filter((s) => s.name === 'DCGM_FI_DEV_GPU_UTIL')).toHaveLength(7);
    expect(new Set(samples.map((s) => s.labels['UUID'])).size).toBe(8);
  });

  it('gives the same samples however the body is split into chunks', () => {
    const text = fixture('johnsblog-a800-mig-8gpu.prom');
    const whole = parseExposition(text).samples;
    for (const size of [1, 7, 100, 4096]) {
      const samples: ExpositionSample[] = [];
      const parser = new ExpositionParser({ onSample: (s) => samples.push(s) });
      for (let i = 0; i < text.length; i += size) parser.push(text.slice(i, i + size));
      parser.end();
      expect(samples).toEqual(whole);
    }
  });
});

describe('the text format', () => {
  it('handles escapes, empty labels, special values, timestamps and trailing commas', () => {
    const { samples, errors } = parseExposition(
      [
        '# HELP m A help line with "quotes" and \\ backslashes',
        '# TYPE m gauge',
        'm{a="x \\"quoted\\" \\\\ back\\nline",container="",pod="",namespace=""} NaN',
        'm{a="1",} +Inf 1700000000000',
        'm -Inf',
        'm_total{le="0.5"} 1.5e3',
        '  m2   42   ',
        'm3{path="C:\\\\dir"} -0.25 1700000000123',
        '',
        '# a plain comment',
      ].join('\n'),
    );
    expect(errors).toEqual([]);
    expect(samples.map((s) => [s.name, s.value, s.timestampMs])).toEqual([
      ['m', NaN, undefined],
      ['m', Infinity, 1_700_000_000_000],
      ['m', -Infinity, undefined],
      ['m_total', 1500, undefined],
      ['m2', 42, undefined],
      ['m3', -0.25, 1_700_000_000_123],
    ]);
    expect(samples[0]?.labels).toEqual({
      a: 'x "quoted" \\ back\nline',
      container: '',
      pod: '',
      namespace: '',
    });
    expect(samples[2]?.labels).toEqual({});
    expect(samples[5]?.labels).toEqual({ path: 'C:\\dir' });
  });

  it('reads OpenMetrics: seconds timestamps, # EOF, quoted metric names', () => {
    const { samples, errors } = parseExposition(
      '{"gpu.util",gpu="0"} 97 1700000000.5\nmetric_b 1\n# EOF\nafter 1\n',
      'openmetrics',
    );
    expect(samples.map((s) => [s.name, s.labels, s.timestampMs])).toEqual([
      ['gpu.util', { gpu: '0' }, 1_700_000_000_500],
      ['metric_b', {}, undefined],
    ]);
    expect(errors).toEqual([expect.objectContaining({ line: 4, message: 'content after # EOF' })]);
  });

  it('reads # EOF in the Prometheus text format as a comment, as Prometheus does', () => {
    const { samples, errors } = parseExposition('# EOF\nfoo 1\n# EOF\nbar 2\n', 'prometheus');
    expect(errors).toEqual([]);
    expect(samples.map((s) => [s.name, s.value])).toEqual([
      ['foo', 1],
      ['bar', 2],
    ]);
  });

  it('refuses label names beginning with __ (reserved), so __proto__ cannot make two series one', () => {
    const { samples, errors } = parseExposition(
      'foo{__proto__="x",a="b"} 1\nfoo{__proto__="y",a="b"} 2\nfoo{a="b",__x="1"} 3\nfoo{a="b"} 4\n',
    );
    expect(errors.map((e) => [e.line, e.message])).toEqual([
      [1, 'label __proto__: names beginning with __ are reserved'],
      [2, 'label __proto__: names beginning with __ are reserved'],
      [3, 'label __x: names beginning with __ are reserved'],
    ]);
    expect(samples.map((s) => [s.labels, s.value])).toEqual([[{ a: 'b' }, 4]]);
  });

  it('reads OpenMetrics exemplars after a value or after a timestamp', () => {
    const { samples, errors } = parseExposition(
      'a_total{gpu="0"} 17 # {trace_id="abc"} 1\nb_total 5 1700000000.25 # {trace_id="d"} 2 1700000000\n',
      'openmetrics',
    );
    expect(errors).toEqual([]);
    expect(samples.map((s) => [s.name, s.labels, s.value, s.timestampMs])).toEqual([
      ['a_total', { gpu: '0' }, 17, undefined],
      ['b_total', {}, 5, 1_700_000_000_250],
    ]);
  });

  it('tolerates CRLF line endings and a last line without newline', () => {
    expect(parseExposition('a 1\r\nb{x="y"} 2').samples.map((s) => [s.name, s.value])).toEqual([
      ['a', 1],
      ['b', 2],
    ]);
  });

  it.each([
    ['m{a="1"', 'expected "," or "}" after label a'],
    ['m{a=1} 2', 'expected a quoted value for label a'],
    ['m{a="1" b="2"} 3', 'expected "," or "}" after label a'],
    ['m{a="1",a="2"} 3', 'label a repeated'],
    ['m', 'missing value'],
    ['m twelve', 'is not a number'],
    ['m 1 soon', 'timestamp "soon" is not an integer of milliseconds'],
    ['m 1 2 3', 'unexpected text after the timestamp'],
    ['m 1 1700000000000000000', 'timestamp "1700000000000000000" is outside 1970 to 9999'],
    ['m 1 -5', 'timestamp "-5" is outside 1970 to 9999'],
    ['m 1 1.5', 'timestamp "1.5" is not an integer of milliseconds'],
    ['m 1 1e3', 'timestamp "1e3" is not an integer of milliseconds'],
    ['m 1 0x10', 'timestamp "0x10" is not an integer of milliseconds'],
    ['m{__name__="n",UUID="GPU-1"} 1', 'label __name__ repeated'],
    ['{"m",__name__="n"} 1', 'label __name__ repeated'],
    ['9m 1', 'expected a metric name'],
    ['m{="v"} 1', 'expected a label name'],
    ['{"quoted"="v",} 1', 'missing metric name'],
  ])('reports %p as an error and keeps going', (line, message) => {
    const { samples, errors } = parseExposition(`before 1\n${line}\nafter 2\n`);
    expect(samples.map((s) => s.name)).toEqual(['before', 'after']);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.line).toBe(2);
    expect(errors[0]?.message).toContain(message);
  });

  it('reads `#HELP` and `#TYPE` with no blank after the `#` as plain comments', () => {
    const { samples, metadata, errors } = parseExposition('#HELP m some help\n#TYPE m counter\nm 1\n');
    expect(metadata).toEqual([]);
    expect(errors).toEqual([]);
    expect(samples.map((s) => [s.name, s.value])).toEqual([['m', 1]]);
  });

  it('refuses a line longer than the limit without buffering it', () => {
    const samples: ExpositionSample[] = [];
    const errors: string[] = [];
    const parser = new ExpositionParser({
      maxLineLength: 100,
      onSample: (s) => samples.push(s),
      onError: (e) => errors.push(e.message),
    });
    parser.push('ok 1\n');
    for (let i = 0; i < 50; i++) parser.push('x'.repeat(64));
    parser.push('\nalso_ok 2\n');
    parser.end();
    expect(samples.map((s) => s.name)).toEqual(['ok', 'also_ok']);
    expect(errors).toEqual(['line longer than 100 characters']);
  });

  it('marks the errors that broke a limit: line length and labels per sample', () => {
    const errors: ParseError[] = [];
    const parser = new ExpositionParser({
      maxLineLength: 200,
      maxLabels: 3,
      onSample: () => undefined,
      onError: (e) => errors.push(e),
    });
    parser.push('m{a="1",b="2",c="3"} 1\n');
    parser.push(`m{${Array.from({ length: 4 }, (_, i) => `l${i}="v"`).join(',')}} 1\n`);
    parser.push(`m{a="${'x'.repeat(300)}"} 1\n`);
    parser.push('m twelve\n');
    parser.end();
    expect(errors.map((e) => [e.line, e.message, e.limit])).toEqual([
      [2, 'more than 3 labels', 'labels'],
      [3, 'line longer than 200 characters', 'line_length'],
      [4, 'value "twelve" is not a number', undefined],
    ]);
  });

  it('gives the same line numbers to a long line however it arrives', () => {
    for (const size of [1, 50, 10_000]) {
      const errors: ParseError[] = [];
      const parser = new ExpositionParser({
        maxLineLength: 100,
        onSample: () => undefined,
        onError: (e) => errors.push(e),
      });
      const text = `a 1\n${'x'.repeat(500)}\nb 2\nc x\n`;
      for (let i = 0; i < text.length; i += size) parser.push(text.slice(i, i + size));
      parser.end();
      expect(errors.map((e) => e.line)).toEqual([2, 4]);
    }
  });

  it('cuts error messages and text, so a hostile line cannot fill the logs', () => {
    const key = 'k'.repeat(10_000);
    const { errors } = parseExposition(`m{${key}="1",${key}="2"} 1\n`);
    expect(errors[0]?.message.length).toBeLessThanOrEqual(241);
    expect(errors[0]?.text.length).toBeLessThanOrEqual(120);
  });
});
