// A small base for RpcLink / ConsoleLink implementations: keeps messages that arrive before
// anyone listens (the core may answer before the client registered its handler), and fires the
// close callbacks exactly once.

export class LinkBase<T> {
  private readonly listeners: ((m: T) => void)[] = [];
  private readonly closeListeners: ((reason: string) => void)[] = [];
  private readonly early: T[] = [];
  private closedReason: string | null = null;

  get isClosed(): boolean {
    return this.closedReason !== null;
  }

  /** Delivers one incoming message (or keeps it until the first listener). */
  protected deliver(m: T): void {
    if (this.closedReason !== null) return;
    if (this.listeners.length === 0) {
      this.early.push(m);
      return;
    }
    for (const cb of this.listeners) cb(m);
  }

  /** Marks the link closed and tells every close listener once. */
  protected fireClose(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    for (const cb of this.closeListeners.splice(0)) {
      try {
        cb(reason);
      } catch (e) {
        // One listener must not stop the others.
        console.error(e);
      }
    }
  }

  onMessage(cb: (m: T) => void): void {
    this.listeners.push(cb);
    if (this.listeners.length === 1) for (const m of this.early.splice(0)) cb(m);
  }

  onClose(cb: (reason: string) => void): void {
    const reason = this.closedReason;
    if (reason !== null) queueMicrotask(() => cb(reason));
    else this.closeListeners.push(cb);
  }
}
