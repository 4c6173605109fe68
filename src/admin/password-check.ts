import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

interface CheckResult {
  id: number;
  match: boolean;
}

/**
 * The worker: one bcrypt comparison per message, in order. Its source runs with `eval` rather than
 * from a file next to this one, because there is no such .js file when herald runs from src/
 * under tsx (the tests), and tsx's loader does not reach worker threads on Node 20.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const bcrypt = require(workerData.bcryptjs);
parentPort.on('message', ({ id, password, hash }) => {
  let match = false;
  try {
    match = bcrypt.compareSync(password, hash);
  } catch {
    // A malformed hash matches nothing (config validation already refuses one).
  }
  parentPort.postMessage({ id, match });
});
`;
const BCRYPTJS = createRequire(import.meta.url).resolve('bcryptjs');

/**
 * Compares passwords with one bcrypt hash on a worker thread, one at a time, so the event loop
 * serving clients never runs bcrypt (~100 ms of CPU per comparison at cost 10). The worker
 * starts on first use and keeps the process alive only while checks are pending; if it dies,
 * pending checks reject and the next check starts a new one.
 */
export class PasswordChecker {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, { resolve(match: boolean): void; reject(err: Error): void }>();
  private nextId = 0;

  constructor(private readonly hash: string) {}

  /** Checks queued or running. */
  get inFlight(): number {
    return this.pending.size;
  }

  check(password: string): Promise<boolean> {
    const worker = (this.worker ??= this.start());
    const id = this.nextId++;
    // Referenced only while checks are pending: an idle worker does not keep the process alive.
    if (this.pending.size === 0) worker.ref();
    return new Promise<boolean>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, password, hash: this.hash });
    });
  }

  private start(): Worker {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { bcryptjs: BCRYPTJS } });
    worker.on('message', ({ id, match }: CheckResult) => {
      this.pending.get(id)?.resolve(match);
      this.pending.delete(id);
      if (this.pending.size === 0) worker.unref();
    });
    // Every pending check was sent to this worker: the first of `error` and `exit` fails them.
    const fail = (err: Error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`password check worker exited with ${code}`)));
    return worker;
  }
}
