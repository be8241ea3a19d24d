import { AppError } from '@gpu-telemetry/model';

/**
 * The publish body bytes every request together may hold at once. A publish holds its body, then
 * the json[] parameter made of its payloads, then the driver's copy of that (two to three times
 * the body), so bounding the bodies bounds what publishes take of the service's memory, however
 * many arrive together. `limit` is never below one body of the largest size: a lone publish of
 * that size always fits.
 */
export class PublishMemory {
  private held = 0;

  constructor(readonly limit: number) {}

  /** Body bytes reserved now. */
  get inUse(): number {
    return this.held;
  }

  /** A reservation of nothing yet: a body's bytes are added as they arrive (PublishReservation.grow). */
  reserve(): PublishReservation {
    return new PublishReservation(this);
  }

  /** Takes `bytes` if they fit beside what is held. */
  take(bytes: number): boolean {
    if (this.held + bytes > this.limit) return false;
    this.held += bytes;
    return true;
  }

  give(bytes: number): void {
    this.held -= bytes;
  }
}

/** One publish's share of the budget: grown as its body arrives, given back once. */
export class PublishReservation {
  private released = false;
  private bytes = 0;

  constructor(private readonly memory: PublishMemory) {}

  /** Adds `bytes` that arrived; a PublishMemoryFull when they do not fit. */
  grow(bytes: number): void {
    if (this.released || !this.memory.take(bytes)) throw new PublishMemoryFull(this.memory.limit);
    this.bytes += bytes;
  }

  /** Gives the bytes back; later calls do nothing. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.memory.give(this.bytes);
  }
}

/** A publish refused because the bodies in flight already hold the budget: retry shortly. */
export class PublishMemoryFull extends AppError {
  readonly reason = 'memory_full';

  constructor(limit: number) {
    const message = `cannot be taken now: publishes in flight already hold the ${limit}-byte budget for bodies`;
    super(503, `The body ${message}; retry after Retry-After.`, {
      errors: [{ field: 'body', message }],
      headers: { 'retry-after': '1' },
    });
  }
}
