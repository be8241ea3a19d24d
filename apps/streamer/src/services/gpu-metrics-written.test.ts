import { GpuMetricsWritten } from './gpu-metrics-written';
import type { GpuSighting } from './telemetry-write.queries';

const seen = (gpuId: string, metrics: string[]): GpuSighting => ({
  gpuId,
  gpuIndex: 0,
  device: 'nvidia0',
  modelName: 'H100',
  hostname: 'node-1',
  firstSeen: '2026-01-01T00:00:00.000Z',
  lastSeen: '2026-01-01T00:00:30.000Z',
  metrics,
});

describe('GpuMetricsWritten', () => {
  it('sends a GPU its names until they are stored, then without them', () => {
    const written = new GpuMetricsWritten();
    const batch = [seen('GPU-a', ['A', 'B'])];
    expect(written.narrow(batch)).toEqual(batch);
    written.stored(batch);
    expect(written.narrow(batch)).toEqual([{ ...batch[0], metrics: [] }]);
    // A subset is stored too; every other field goes as it is.
    const later = { ...seen('GPU-a', ['B']), lastSeen: '2026-01-01T00:01:00.000Z' };
    expect(written.narrow([later])).toEqual([{ ...later, metrics: [] }]);
  });

  it('sends every name again when one is new, and remembers the union', () => {
    const written = new GpuMetricsWritten();
    written.stored([seen('GPU-a', ['A', 'B'])]);
    const withNew = seen('GPU-a', ['A', 'C']);
    expect(written.narrow([withNew])).toEqual([withNew]);
    written.stored([withNew]);
    expect(written.narrow([seen('GPU-a', ['A', 'B', 'C'])])[0]?.metrics).toEqual([]);
  });

  it('keeps GPUs apart, and forgets the ones it is told to', () => {
    const written = new GpuMetricsWritten();
    written.stored([seen('GPU-a', ['A']), seen('GPU-b', ['A'])]);
    written.forget(['GPU-a']);
    expect(written.narrow([seen('GPU-a', ['A']), seen('GPU-b', ['A'])]).map((s) => s.metrics)).toEqual([
      ['A'],
      [],
    ]);
    expect(written.narrow([seen('GPU-c', ['A'])])[0]?.metrics).toEqual(['A']);
  });

  it('sends the names again once the row may have been deleted (unseen for the GPU retention)', () => {
    const day = 86_400_000;
    let now = Date.parse('2026-01-10T00:00:00.000Z');
    const written = new GpuMetricsWritten(7 * day, undefined, () => now);
    const at = (ms: number) => ({ ...seen('GPU-a', ['A']), lastSeen: new Date(ms).toISOString() });
    written.stored([at(now)]);
    now += 6 * day; // within the retention, less a margin for clocks
    expect(written.narrow([at(now)])[0]?.metrics).toEqual([]);
    // Sending it moved last_seen on: the entry lives on from there.
    written.stored([at(now)]);
    now += 6 * day;
    expect(written.narrow([at(now)])[0]?.metrics).toEqual([]);
    // Away for the retention (less the margin): another streamer may have made the row anew.
    now += day - 5 * 60_000; // the last last_seen sent was 7 days less 5 minutes ago
    expect(written.narrow([at(now)])[0]?.metrics).toEqual(['A']);
    // An hour's retention: trusted for 50 minutes.
    const hourly = new GpuMetricsWritten(3_600_000, undefined, () => now);
    hourly.stored([at(now)]);
    now += 45 * 60_000;
    expect(hourly.narrow([at(now)])[0]?.metrics).toEqual([]);
    now += 10 * 60_000;
    expect(hourly.narrow([at(now)])[0]?.metrics).toEqual(['A']);
    // With a retention of 0 (GPUs never deleted) it never ages.
    const forever = new GpuMetricsWritten(0, undefined, () => now);
    forever.stored([at(now - 400 * day)]);
    expect(forever.narrow([at(now)])[0]?.metrics).toEqual([]);
  });

  it('starts over past its bound instead of growing', () => {
    const written = new GpuMetricsWritten(0, 3);
    for (let i = 0; i < 10; i++) written.stored([seen(`GPU-${i}`, ['A'])]);
    expect(written.size).toBeLessThanOrEqual(3);
    // What it still holds is right; what it dropped is sent in full again.
    expect(written.narrow([seen('GPU-9', ['A'])])[0]?.metrics).toEqual([]);
    expect(written.narrow([seen('GPU-0', ['A'])])[0]?.metrics).toEqual(['A']);
  });

  it('does not start over when a GPU it holds gains a name at the bound', () => {
    const written = new GpuMetricsWritten(0, 2);
    written.stored([seen('GPU-a', ['A']), seen('GPU-b', ['A'])]);
    written.stored([seen('GPU-a', ['A', 'B'])]);
    expect(written.size).toBe(2);
    expect(written.narrow([seen('GPU-b', ['A'])])[0]?.metrics).toEqual([]);
  });
});
