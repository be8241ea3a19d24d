import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { getTracer, type Logger, withSpan } from '@gpu-telemetry/service-kit';
import { type Span, SpanStatusCode } from '@opentelemetry/api';
import type { Kysely } from 'kysely';
import type { CollectorMetrics } from '../collector.metrics';
import type { CollectorDatabase } from '../collector.tables';
import { ownerOf } from './ownership';
import { isBlockedAddress, type TargetPolicy } from './target-url';
import { listApiTargets } from './targets.queries';

export type TargetSource = 'static' | 'dns' | 'api';

export interface Target {
  url: string;
  source: TargetSource;
  /** Set for targets added through the API. */
  id?: string;
}

export interface TargetRegistryOptions {
  db: Kysely<CollectorDatabase>;
  logger: Logger;
  policy: TargetPolicy;
  /** From COLLECT_TARGETS, ranges already expanded and URLs validated. */
  staticTargets: string[];
  /** From COLLECT_DNS: URLs whose host name stands for every address behind it. */
  dnsTargets: string[];
  replicas: number;
  ordinal: number;
  resolve?: (host: string) => Promise<string[]>;
  metrics?: Pick<CollectorMetrics, 'dnsLookups'>;
}

/**
 * Lookup errors that say the name has no address (NXDOMAIN, no records): its targets are gone,
 * as Prometheus' DNS discovery drops them. Any other failure (a timeout, a server failure) keeps
 * the addresses last found.
 */
const tracer = getTracer('collector');

const NO_SUCH_NAME = new Set(['ENOTFOUND', 'ENODATA', 'EAI_NONAME', 'EAI_NODATA']);

async function resolveAll(host: string): Promise<string[]> {
  return (await lookup(host, { all: true })).map((a) => a.address);
}

/**
 * Every target from the three sources (environment, DNS, API), and the share of them this
 * replica scrapes. DNS names are resolved each round, so a DaemonSet's pods come and go with it.
 */
export class TargetRegistry {
  /** What the API and each DNS name last gave: used again for a round in which they fail. */
  private lastApi: Target[] = [];
  private readonly lastDns = new Map<string, Target[]>();

  constructor(private readonly options: TargetRegistryOptions) {}

  get replicaName(): string {
    return `${this.options.ordinal}/${this.options.replicas}`;
  }

  async all(): Promise<Target[]> {
    return this.merge(await this.fromDns(), await this.fromApi());
  }

  /** The targets this replica owns (rendezvous hashing: no overlap, no gaps). */
  async owned(): Promise<Target[]> {
    return this.mine(await this.all());
  }

  /** The targets this replica owned when last listed, without asking DNS or Postgres again. */
  lastOwned(): Target[] {
    return this.mine(this.merge([...this.lastDns.values()].flat(), this.lastApi));
  }

  /** The URLs of the targets from the environment and DNS (as last resolved), every replica's. */
  configured(): string[] {
    return [...this.options.staticTargets, ...[...this.lastDns.values()].flat().map((t) => t.url)];
  }

  private merge(dns: Target[], api: Target[]): Target[] {
    const seen = new Map<string, Target>();
    for (const url of this.options.staticTargets) seen.set(url, { url, source: 'static' });
    for (const target of dns) if (!seen.has(target.url)) seen.set(target.url, target);
    for (const target of api) if (!seen.has(target.url)) seen.set(target.url, target);
    return [...seen.values()];
  }

  private mine(targets: Target[]): Target[] {
    const { replicas, ordinal } = this.options;
    return targets.filter((target) => ownerOf(target.url, replicas) === ordinal);
  }

  ownerOf(url: string): number {
    return ownerOf(url, this.options.replicas);
  }

  /**
   * Targets added through the API. While Postgres does not answer, those it last gave: the
   * targets outlive the outage, and scrapes go on filling the publisher's buffer meanwhile.
   */
  private async fromApi(): Promise<Target[]> {
    try {
      const rows = await listApiTargets(this.options.db);
      this.lastApi = rows.map((t) => ({ url: t.url, source: 'api', id: t.id }));
    } catch (error) {
      this.options.logger.warn(
        { err: error, targets: this.lastApi.length },
        'could not list API targets; scraping those last listed',
      );
    }
    return this.lastApi;
  }

  /**
   * Each DNS name's addresses; none for a name that no longer exists, and the addresses it last
   * had for one whose lookup fails otherwise.
   */
  private async fromDns(): Promise<Target[]> {
    const targets: Target[] = [];
    for (const template of this.options.dnsTargets) {
      const url = new URL(template);
      await withSpan(tracer, 'collector.dns_lookup', { 'dns.question.name': url.hostname }, (span) =>
        this.lookUp(template, url, span),
      );
      targets.push(...(this.lastDns.get(template) ?? []));
    }
    return targets;
  }

  /** Looks up one DNS target's name, and keeps what it found (or, failing, what it last had). */
  private async lookUp(template: string, url: URL, span: Span): Promise<void> {
    const resolve = this.options.resolve ?? resolveAll;
    try {
      const found: Target[] = [];
      for (const address of await resolve(url.hostname)) {
        if (!this.options.policy.allowLinkLocal && isBlockedAddress(address)) continue;
        const copy = new URL(template);
        copy.hostname = isIP(address) === 6 ? `[${address}]` : address;
        found.push({ url: copy.toString(), source: 'dns' });
      }
      this.lastDns.set(template, found);
      this.options.metrics?.dnsLookups.inc({ outcome: 'success' });
      span.setAttributes({ 'collector.dns.outcome': 'success', 'collector.dns.targets': found.length });
    } catch (error) {
      const last = this.lastDns.get(template)?.length ?? 0;
      if (NO_SUCH_NAME.has((error as { code?: string }).code ?? '')) {
        this.lastDns.set(template, []);
        this.options.metrics?.dnsLookups.inc({ outcome: 'not_found' });
        span.setAttributes({ 'collector.dns.outcome': 'not_found', 'collector.dns.targets': 0 });
        this.options.logger.warn(
          { err: error, host: url.hostname, dropped: last },
          'DNS name for targets has no address; scraping none of it',
        );
      } else {
        this.options.metrics?.dnsLookups.inc({ outcome: 'error' });
        span.setAttributes({ 'collector.dns.outcome': 'error', 'collector.dns.targets': last });
        span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
        this.options.logger.warn(
          { err: error, host: url.hostname, targets: last },
          'DNS lookup for targets failed; scraping the addresses it last had',
        );
      }
    }
  }
}
