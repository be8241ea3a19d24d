import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '@gpu-telemetry/service-kit';
import type { CollectorMetrics } from '../collector.metrics';
import { buildMessages } from '../publishing/message-builder';
import type { Publisher } from '../publishing/publisher';
import { type CsvRow, ReplayClock, readTelemetryCsv } from './csv-samples';

export interface CsvReplayOptions {
  file: string;
  rowsPerSecond: number;
  loop: boolean;
  publisher: Pick<Publisher, 'enqueue'>;
  logger: Logger;
  metrics: CollectorMetrics;
  now?: () => number;
  tickMs?: number;
}

/**
 * Replays a dcgm_metrics_*.csv export as live telemetry: rows go out at `rowsPerSecond`, from the
 * top again when the file ends (if `loop`). The rows the export took at one time share the time
 * the replay reached them (ReplayClock), as one scrape's samples do.
 */
export class CsvReplay {
  private rows: CsvRow[] = [];
  private readonly clock = new ReplayClock();
  private cursor = 0;
  private carry = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: CsvReplayOptions) {}

  async start(): Promise<void> {
    const { rows, errors, unstorable } = readTelemetryCsv(await readFile(this.options.file, 'utf8'));
    if (errors.length)
      this.options.logger.warn(
        { file: this.options.file, errors: errors.length, first: errors[0] },
        'skipped bad CSV rows',
      );
    // Counted once, as the file is read: the rows replayed are those counted as scraped.
    if (unstorable.length) {
      this.options.metrics.dropped.inc({ reason: 'unstorable' }, unstorable.length);
      this.options.logger.warn(
        { file: this.options.file, samples: unstorable.length, first: unstorable[0] },
        'left out samples the store cannot take',
      );
    }
    if (rows.length === 0) throw new Error(`${this.options.file} has no usable rows`);
    this.rows = rows;
    this.options.logger.info(
      { file: this.options.file, rows: rows.length, rowsPerSecond: this.options.rowsPerSecond },
      'replaying CSV',
    );
    const tickMs = this.options.tickMs ?? 100;
    this.timer = setInterval(() => this.tick(tickMs), tickMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  get finished(): boolean {
    return !this.options.loop && this.cursor >= this.rows.length;
  }

  /** Sends the rows due in one tick. Never the same row twice in a tick: ids would collide. */
  tick(tickMs: number): void {
    const due = this.options.rowsPerSecond * (tickMs / 1000) + this.carry;
    let count = Math.min(Math.floor(due), this.rows.length);
    this.carry = due - Math.floor(due);
    const now = (this.options.now ?? Date.now)();
    const samples = [];
    while (count-- > 0) {
      if (this.cursor >= this.rows.length) {
        if (!this.options.loop) break;
        this.cursor = 0;
      }
      samples.push(this.clock.stamp(this.rows[this.cursor++] as CsvRow, now));
    }
    if (samples.length === 0) return;
    this.options.metrics.samplesScraped.inc(samples.length);
    this.options.publisher.enqueue(buildMessages(`csv:${path.basename(this.options.file)}`, now, samples));
    if (this.finished) this.stop();
  }
}
