import { EventLoopBudget } from './event-loop-budget';

const burn = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

/** Runs `steps` steps of CPU work, asking the budget before each; resolves with when it finished. */
async function worker(budget: EventLoopBudget, steps: number, stepMs: number): Promise<number> {
  for (let i = 0; i < steps; i++) {
    await budget.turn();
    burn(stepMs);
  }
  return performance.now();
}

/** The longest a 2 ms timer waited past its time, until `done` settles. */
async function worstTimerDelay(done: Promise<unknown>): Promise<number> {
  let worst = 0;
  let finished = false;
  void done.finally(() => (finished = true));
  while (!finished) {
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 2));
    worst = Math.max(worst, performance.now() - started - 2);
  }
  return worst;
}

describe('EventLoopBudget', () => {
  it('lets work go on without waiting while the turn has budget left', () => {
    const budget = new EventLoopBudget(50);
    expect(budget.turn()).toBeUndefined();
    expect(budget.turn()).toBeUndefined();
  });

  it('keeps timers on time while many workers burn a second of CPU between them', async () => {
    const budget = new EventLoopBudget(10);
    const started = performance.now();
    const work = Promise.all(Array.from({ length: 8 }, () => worker(budget, 250, 0.5)));
    const worst = await worstTimerDelay(work);
    await work;
    expect(performance.now() - started).toBeGreaterThan(900);
    // Each turn runs about a budget of work (one turn's I/O callbacks, then one waiting worker), so
    // a timer waits about a budget, not the whole second; the bound leaves room for a loaded machine.
    expect(worst).toBeLessThan(150);
    expect(budget.queued).toBe(0);
  });

  it('serves waiting work first come first served, so short work is not starved by long work', async () => {
    const budget = new EventLoopBudget(5);
    const started = performance.now();
    const long = Array.from({ length: 4 }, () => worker(budget, 400, 0.5));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const short = await worker(budget, 10, 0.5);
    const ends = await Promise.all(long);
    // The short worker queues behind the four long ones once per step, not behind all their work.
    expect(short - started).toBeLessThan((Math.min(...ends) - started) / 2);
  });
});
