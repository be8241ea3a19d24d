import {
  MAX_HELP_LENGTH,
  MAX_UNIT_LENGTH,
  METRIC_NAME,
  METRIC_TYPES,
  type MetricMetadata,
  type MetricType,
} from '@gpu-telemetry/model';
import type { ExpositionMetadata } from './exposition-parser';

/** Suffixes of the samples a family's name stands for (counters, histograms, summaries, info). */
const FAMILY_SUFFIXES = ['', '_total', '_bucket', '_count', '_sum', '_created', '_info'];

/**
 * The `# HELP`, `# TYPE` and `# UNIT` lines of one scrape, kept for the families whose samples
 * were kept: what /api/v1/metadata answers. Bounded: at most `maxFamilies` families are noted (a
 * scrape is bounded by its sample limit; its comments count against the same number).
 */
export class ScrapeMetadata {
  private readonly families = new Map<string, { type?: string; help?: string; unit?: string }>();
  private readonly kept = new Set<string>();

  constructor(private readonly maxFamilies: number) {}

  /** What a comment line said. */
  note(m: ExpositionMetadata): void {
    let family = this.families.get(m.name);
    if (!family) {
      if (this.families.size >= this.maxFamilies) return;
      this.families.set(m.name, (family = {}));
    }
    family[m.kind] = m.text; // the last word on a family counts, as in Prometheus' scrape cache
  }

  /** A sample of this metric name was kept. */
  sampleKept(name: string): void {
    this.kept.add(name);
  }

  /** Metadata of the families with a kept sample, in name order. */
  entries(): MetricMetadata[] {
    const out: MetricMetadata[] = [];
    for (const [name, family] of this.families) {
      if (!FAMILY_SUFFIXES.some((suffix) => this.kept.has(name + suffix))) continue;
      if (name.length > 256 || !METRIC_NAME.test(name)) continue; // what the store could not take
      if (family.type === undefined && family.help === undefined && family.unit === undefined) continue;
      out.push({
        metric: name,
        type: prometheusType(family.type),
        help: storable(family.help ?? '', MAX_HELP_LENGTH),
        unit: storable(family.unit ?? '', MAX_UNIT_LENGTH),
      });
    }
    return out.sort((a, b) => (a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : 0));
  }
}

/** The type as Prometheus names it: the text format's `untyped`, and anything else it does not know (types are lower case), is `unknown`. */
export function prometheusType(written: string | undefined): MetricType {
  const type = written ?? '';
  return (METRIC_TYPES as readonly string[]).includes(type) ? (type as MetricType) : 'unknown';
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Text the store takes: without NUL characters or lone surrogates, and cut to `max` characters. */
export function storable(text: string, max: number): string {
  const clean = text.length > max ? text.slice(0, max) : text;
  return clean.replaceAll('\u0000', '').replace(LONE_SURROGATE, '\ufffd');
}
