// What the UI shows for an error: the core's message and hint (never a stack trace).
import { HangarError } from '../../../core/common/errors.ts';

export interface UiError {
  code?: string;
  message: string;
  hint?: string;
}

export function toUiError(e: unknown): UiError {
  if (e instanceof HangarError) {
    const u: UiError = { code: e.code, message: e.message };
    if (e.hint) u.hint = e.hint;
    return u;
  }
  if (e instanceof Error) return { message: e.message };
  if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') {
    const o = e as { code?: unknown; message: string; hint?: unknown };
    const u: UiError = { message: o.message };
    if (typeof o.code === 'string') u.code = o.code;
    if (typeof o.hint === 'string') u.hint = o.hint;
    return u;
  }
  return { message: String(e) };
}
