// Typed errors that cross every boundary (core -> CLI/UI). Each names the problem and the fix,
// so no caller ever needs to show a stack trace.

export type ErrorCode =
  | 'invalid-input'
  | 'not-found'
  | 'already-exists'
  | 'invalid-state'
  | 'busy'
  | 'broken-definition'
  | 'qemu-failed'
  | 'qmp-error'
  | 'qmp-closed'
  | 'timeout'
  | 'host-missing'
  /** A host change needs root; details.commands holds what to run by hand. */
  | 'permission'
  | 'io-error'
  | 'daemon-unavailable'
  | 'cancelled'
  /** The connection's driver (e.g. libvirt) cannot do this; the message says why. */
  | 'unsupported'
  | 'internal';

export interface ErrorPayload {
  code: ErrorCode;
  message: string;
  /** What the user can do about it. */
  hint?: string;
  details?: unknown;
}

export class HangarError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  readonly details?: unknown;

  constructor(code: ErrorCode, message: string, hint?: string, details?: unknown) {
    super(message);
    this.name = 'HangarError';
    this.code = code;
    if (hint !== undefined) this.hint = hint;
    if (details !== undefined) this.details = details;
  }

  toPayload(): ErrorPayload {
    const p: ErrorPayload = { code: this.code, message: this.message };
    if (this.hint !== undefined) p.hint = this.hint;
    if (this.details !== undefined) p.details = this.details;
    return p;
  }

  static fromPayload(p: ErrorPayload): HangarError {
    return new HangarError(p.code, p.message, p.hint, p.details);
  }
}

export function isHangarError(e: unknown): e is HangarError {
  return e instanceof HangarError;
}

/** One readable line (plus hint) for any thrown value. */
export function describeError(e: unknown): string {
  if (e instanceof HangarError) return e.hint ? `${e.message}\n  fix: ${e.hint}` : e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
