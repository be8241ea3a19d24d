import { ScrapeMetadata, storable } from './scrape-metadata';

describe('ScrapeMetadata', () => {
  it('keeps the families whose samples were kept, in Prometheus type names, the last word standing', () => {
    const m = new ScrapeMetadata(100);
    m.note({ name: 'DCGM_FI_DEV_GPU_TEMP', kind: 'help', text: 'GPU temperature (in C).' });
    m.note({ name: 'DCGM_FI_DEV_GPU_TEMP', kind: 'type', text: 'counter' });
    m.note({ name: 'DCGM_FI_DEV_GPU_TEMP', kind: 'type', text: 'gauge' });
    m.note({ name: 'shouting', kind: 'type', text: 'GAUGE' });
    m.note({ name: 'x'.repeat(300), kind: 'type', text: 'gauge' });
    m.note({ name: 'requests', kind: 'type', text: 'counter' });
    m.note({ name: 'latency', kind: 'type', text: 'histogram' });
    m.note({ name: 'old_style', kind: 'type', text: 'untyped' });
    m.note({ name: 'node_only', kind: 'type', text: 'gauge' });
    for (const name of [
      'DCGM_FI_DEV_GPU_TEMP',
      'requests_total',
      'latency_bucket',
      'old_style',
      'shouting',
      'x'.repeat(300),
    ])
      m.sampleKept(name);
    expect(m.entries()).toEqual([
      { metric: 'DCGM_FI_DEV_GPU_TEMP', type: 'gauge', help: 'GPU temperature (in C).', unit: '' },
      { metric: 'latency', type: 'histogram', help: '', unit: '' },
      { metric: 'old_style', type: 'unknown', help: '', unit: '' },
      { metric: 'requests', type: 'counter', help: '', unit: '' },
      { metric: 'shouting', type: 'unknown', help: '', unit: '' },
    ]);
  });

  it('notes at most maxFamilies families', () => {
    const m = new ScrapeMetadata(2);
    for (const name of ['a', 'b', 'c']) {
      m.note({ name, kind: 'type', text: 'gauge' });
      m.sampleKept(name);
    }
    expect(m.entries().map((e) => e.metric)).toEqual(['a', 'b']);
  });

  it('makes text the store takes: no NUL, no lone surrogate, cut to its limit', () => {
    expect(storable('a\u0000b\ud800c', 100)).toBe('ab\ufffdc');
    expect(storable('x'.repeat(10), 4)).toBe('xxxx');
    expect(storable('ab\ud83d\ude00', 3)).toBe('ab\ufffd');
  });
});
