/**
 * What both transports' `StreamSink`s share: whether the response is over, and the callbacks
 * waiting for that. A class, so the hub's read of `closed` on every stream of a room at every
 * delivery stays monomorphic (src/sse/hub.ts).
 */
export abstract class ClosingSink {
  private isClosed = false;
  private closers: (() => void)[] | undefined;

  get closed(): boolean {
    return this.isClosed;
  }

  onClose(fn: () => void): void {
    if (this.isClosed) fn();
    else (this.closers ??= []).push(fn);
  }

  /** The response is over (ended here, or aborted by the peer): once, `closing` first, then the `onClose` callbacks. */
  over(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closing();
    const closers = this.closers;
    this.closers = undefined;
    if (closers) for (const fn of closers) fn();
  }

  /** What a transport drops once the response is over (`closed` is already true). */
  protected closing(): void {}
}
