import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { Readable } from 'node:stream';
import { waitFor, type WaitForOptions } from './wait-for';

/**
 * Where a process's stdout or stderr goes: to ours, nowhere, only into the output kept for error
 * messages ('keep'), into a stream, or line by line to a function.
 */
export type OutputSink = 'inherit' | 'ignore' | 'keep' | NodeJS.WritableStream | ((line: string) => void);

export interface ProcessOptions {
  /** Names the process in errors. */
  name: string;
  /** The program; this Node binary unless given. */
  command?: string;
  args: string[];
  cwd?: string;
  /** The whole environment of the process; this one's unless given. */
  env?: NodeJS.ProcessEnv;
  stdout?: OutputSink;
  stderr?: OutputSink;
  /**
   * A process group of its own: a Ctrl-C in the terminal reaches only us (and we stop the process
   * in our own order), and `stop()` and `kill()` leave nothing it started running.
   */
  ownProcessGroup?: boolean;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** How much recent output a process keeps for error messages. */
const KEPT_OUTPUT = 20_000;

/** Processes started here and still running: signalled when this process exits, whatever the cause. */
const live = new Set<ManagedProcess>();
let exitHook = false;

/** A child process started by `startProcess`. */
export class ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves once, when the process has exited (or could not be started). */
  readonly exited: Promise<ProcessExit>;
  private exit: ProcessExit | undefined;
  private kept = '';
  private readonly ownGroup: boolean;

  constructor(options: ProcessOptions) {
    this.name = options.name;
    this.ownGroup = options.ownProcessGroup ?? false;
    const stdio = [options.stdout ?? 'inherit', options.stderr ?? 'inherit'].map((sink) =>
      sink === 'inherit' || sink === 'ignore' ? sink : 'pipe',
    ) as ('inherit' | 'ignore' | 'pipe')[];
    this.child = spawn(options.command ?? process.execPath, options.args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', ...stdio],
      detached: this.ownGroup,
    });
    this.exited = new Promise((resolve) => {
      const done = (exit: ProcessExit) => {
        if (this.exit) return;
        this.exit = exit;
        live.delete(this);
        resolve(exit);
      };
      this.child.once('exit', (code, signal) => done({ code, signal }));
      this.child.on('error', (error) => {
        if (this.child.pid !== undefined) return; // a failed kill(), not a failed start
        this.keep(`could not start ${options.command ?? process.execPath}: ${error.message}\n`);
        done({ code: null, signal: null });
      });
    });
    this.route(this.child.stdout, options.stdout);
    this.route(this.child.stderr, options.stderr);
    live.add(this);
    if (!exitHook) {
      exitHook = true;
      process.once('exit', () => {
        for (const running of live) {
          running.signal('SIGTERM');
          running.signal('SIGCONT');
        }
      });
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** The last of what it wrote to the streams that are not 'inherit' or 'ignore'. */
  output(): string {
    return this.kept;
  }

  /** Sends `signal` to the process (not to what it started: that is its own to stop). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /**
   * Resolves once `url` answers 200 (a health or readiness check), with the milliseconds waited.
   * Rejects at once if the process exits first, and quotes its recent output either way.
   */
  async waitForUrl(url: string, options: Omit<WaitForOptions, 'signal'> = {}): Promise<number> {
    const gone = new AbortController();
    void this.exited.then((exit) =>
      gone.abort(new Error(`${this.name} exited (${describeExit(exit)}) before ${url} answered`)),
    );
    try {
      return await waitFor(
        `${this.name} at ${url}`,
        async () => {
          const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
          await response.arrayBuffer();
          if (response.status !== 200) throw new Error(`answered ${response.status}`);
          return true;
        },
        { intervalMs: 100, ...options, signal: gone.signal },
      );
    } catch (error) {
      const output = this.output();
      if (error instanceof Error && output) error.message += `\n${this.name} output:\n${output}`;
      throw error;
    }
  }

  /**
   * SIGTERM, then SIGKILL if it is still running after `graceMs` (15 s unless given); resolves
   * with its exit. A stopped (SIGSTOP) process is continued first, so it can act on the SIGTERM.
   * In a group of its own, whatever it started and left running is killed with it.
   */
  async stop({ graceMs = 15_000 }: { graceMs?: number } = {}): Promise<ProcessExit> {
    if (this.running) {
      this.signal('SIGCONT');
      this.signal('SIGTERM');
      const timer = setTimeout(() => this.killAll(), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.killGroup();
    return this.exited;
  }

  /** SIGKILL (to its whole group when it has one of its own); resolves with its exit. */
  async kill(): Promise<ProcessExit> {
    this.killAll();
    const exit = await this.exited;
    this.killGroup();
    return exit;
  }

  private killAll(): void {
    if (this.ownGroup) this.killGroup();
    else this.signal('SIGKILL');
  }

  private killGroup(): void {
    if (!this.ownGroup || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      // nothing left in the group
    }
  }

  private keep(text: string): void {
    this.kept = (this.kept + text).slice(-KEPT_OUTPUT);
  }

  private route(stream: Readable | null, sink: OutputSink | undefined): void {
    if (!stream || sink === undefined || sink === 'inherit' || sink === 'ignore') return;
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => this.keep(chunk));
    if (typeof sink === 'function') {
      let partial = '';
      stream.on('data', (chunk: string) => {
        const lines = (partial + chunk).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) sink(line);
      });
      stream.on('end', () => {
        if (partial) sink(partial);
      });
    } else if (sink !== 'keep') {
      stream.pipe(sink, { end: false });
    }
  }
}

/** Starts a process; see `ProcessOptions`. Whatever still runs when this process exits gets SIGTERM. */
export function startProcess(options: ProcessOptions): ManagedProcess {
  return new ManagedProcess(options);
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
      .once('error', reject)
      .listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
  });
}

function describeExit({ code, signal }: ProcessExit): string {
  return signal ? `signal ${signal}` : `code ${code}`;
}
