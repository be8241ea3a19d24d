import { metadataBatch, type MetricMetadata } from '@gpu-telemetry/model';
import { metadataMessages } from './message-builder';

describe('metadataMessages', () => {
  it('splits long metadata into messages of at most ~200 KiB in UTF-8, each one the streamer takes', () => {
    // 64 families with 4,096-character help texts of 3-byte characters: ~800 KiB in all.
    const entries: MetricMetadata[] = Array.from({ length: 64 }, (_, i) => ({
      metric: `DCGM_FI_FAMILY_${i}`,
      type: 'gauge',
      help: '€'.repeat(4096),
      unit: '',
    }));
    const messages = metadataMessages('http://node-1:9400/metrics', '1700000000000', entries);
    expect(messages.length).toBeGreaterThanOrEqual(4);
    const seen: string[] = [];
    for (const m of messages) {
      expect(Buffer.byteLength(m.json)).toBeLessThanOrEqual(200 * 1024 + 512);
      const { id, payload } = JSON.parse(m.json) as { id: string; payload: unknown };
      expect(id).toBe(m.id);
      const parsed = metadataBatch.parse(payload);
      seen.push(...parsed.metadata.map((e) => e.metric));
    }
    expect(seen).toEqual(entries.map((e) => e.metric));
    // The same input gives the same ids: a retried publish is a duplicate.
    expect(metadataMessages('http://node-1:9400/metrics', '1700000000000', entries).map((m) => m.id)).toEqual(
      messages.map((m) => m.id),
    );
  });

  it('keeps at most 1000 metrics a message', () => {
    const entries: MetricMetadata[] = Array.from({ length: 2_500 }, (_, i) => ({
      metric: `m_${i}`,
      type: 'counter',
      help: '',
      unit: '',
    }));
    expect(
      metadataMessages('remote-write', 'abc', entries).map((m) => JSON.parse(m.json).payload.metadata.length),
    ).toEqual([1000, 1000, 500]);
  });
});
