import type { ChildProcess } from 'node:child_process';
import { onceWithin } from './wait.js';

const live = new Set<ChildProcess>();

// A test file whose test failed half-way may never reach the `stop()` that would end its
// redis-server or gateway; such a child keeps the file's process (and so `npm test`) alive forever.
// `npm test` runs with --test-force-exit, and whatever is still running then is killed here.
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Registers a child process to be killed when the test file's process exits; returns it. */
export function owned<T extends ChildProcess>(child: T): T {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** SIGKILLs `child`, as an outage would, and resolves once it has exited (at once if it already had). */
export async function killNow(child: ChildProcess, what: string): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = onceWithin(child, 'exit', `${what} exit`);
  child.kill('SIGKILL');
  await exited;
}
