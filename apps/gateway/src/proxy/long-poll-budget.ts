/** Why a long-poll was refused: every slot is held, or its client holds its share. */
export type LongPollRefusal = 'long_polls' | 'long_polls_per_client';

/**
 * Long-polls waiting upstream at once, apart from the ordinary requests' GATEWAY_MAX_CONCURRENCY:
 * at most `max` in all and `perClient` for any one client (a key, or an address when anonymous),
 * so that one consumer's idle waits can take neither the ordinary requests' slots nor every
 * other consumer's.
 */
export class LongPollBudget {
  private held = 0;
  private readonly byClient = new Map<string, number>();

  constructor(
    readonly max: number,
    readonly perClient: number,
    /** Told the slots held after every change (a gauge). */
    private readonly onChange: (held: number) => void = () => undefined,
  ) {}

  /** Takes a slot for `client`, or says why there is none; a slot taken is given back by `release`. */
  take(client: string): LongPollRefusal | undefined {
    const mine = this.byClient.get(client) ?? 0;
    if (mine >= this.perClient) return 'long_polls_per_client';
    if (this.held >= this.max) return 'long_polls';
    this.held++;
    this.byClient.set(client, mine + 1);
    this.onChange(this.held);
    return undefined;
  }

  release(client: string): void {
    const mine = this.byClient.get(client) ?? 0;
    if (mine === 0) return;
    this.held--;
    // Forgotten at zero: one entry per client with a long-poll waiting, not per client ever seen.
    if (mine === 1) this.byClient.delete(client);
    else this.byClient.set(client, mine - 1);
    this.onChange(this.held);
  }

  /** Slots held in all, or by one client. */
  holding(client?: string): number {
    return client === undefined ? this.held : (this.byClient.get(client) ?? 0);
  }
}
