// What the UI shows for an error: the core's message and hint (never a stack trace), and for a
// host change Hangar may not make itself ('permission') the exact commands to run as root.
import { HangarError } from '../../../core/common/errors.ts';

export interface UiError {
  code?: string;
  message: string;
  hint?: string;
  /** 'permission': details.commands, the shell commands to run as root by hand. */
  commands?: string[];
}

function commandsOf(code: unknown, details: unknown): string[] | undefined {
  if (code !== 'permission' || !details || typeof details !== 'object') return undefined;
  const c = (details as { commands?: unknown }).commands;
  return Array.isArray(c) && c.length && c.every((x) => typeof x === 'string') ? [...c] : undefined;
}

export function toUiError(e: unknown): UiError {
  if (e instanceof HangarError) {
    const u: UiError = { code: e.code, message: e.message };
    if (e.hint) u.hint = e.hint;
    const commands = commandsOf(e.code, e.details);
    if (commands) u.commands = commands;
    return u;
  }
  if (e instanceof Error) return { message: e.message };
  if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') {
    const o = e as { code?: unknown; message: string; hint?: unknown; details?: unknown };
    const u: UiError = { message: o.message };
    if (typeof o.code === 'string') u.code = o.code;
    if (typeof o.hint === 'string') u.hint = o.hint;
    const commands = commandsOf(o.code, o.details);
    if (commands) u.commands = commands;
    return u;
  }
  return { message: String(e) };
}
