/** Why a slot was refused: every slot is held (`all`), or the client holds its share. */
export type SlotRefusal = 'all' | 'per_client';

/**
 * Slots held at once: at most `max` in all and `perClient` for any one client (a key, or an
 * address group when anonymous). The gateway has two: the ordinary requests in flight
 * (GATEWAY_MAX_CONCURRENCY) and the queue long-polls waiting (GATEWAY_MAX_LONG_POLLS), so that one
 * client, by slow bodies or idle waits, can take neither every slot nor every other client's.
 */
export class SlotBudget {
  private held = 0;
  private readonly byClient = new Map<string, number>();

  constructor(
    readonly max: number,
    readonly perClient: number,
    /** Told the slots held after every change (a gauge). */
    private readonly onChange: (held: number) => void = () => undefined,
  ) {}

  /** Takes a slot for `client`, or says why there is none; a slot taken is given back by `release`. */
  take(client: string): SlotRefusal | undefined {
    const mine = this.byClient.get(client) ?? 0;
    if (mine >= this.perClient) return 'per_client';
    if (this.held >= this.max) return 'all';
    this.held++;
    this.byClient.set(client, mine + 1);
    this.onChange(this.held);
    return undefined;
  }

  release(client: string): void {
    const mine = this.byClient.get(client) ?? 0;
    if (mine === 0) return;
    this.held--;
    // Forgotten at zero: one entry per client holding a slot, not per client ever seen.
    if (mine === 1) this.byClient.delete(client);
    else this.byClient.set(client, mine - 1);
    this.onChange(this.held);
  }

  /** Slots held in all, or by one client. */
  holding(client?: string): number {
    return client === undefined ? this.held : (this.byClient.get(client) ?? 0);
  }

  /** Clients holding a slot now: what the budget keeps in memory. */
  get clients(): number {
    return this.byClient.size;
  }
}
