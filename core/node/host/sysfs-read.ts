// Careful readers for sysfs attributes. Host device discovery must survive half-broken trees
// (races with hot-unplug, permission-restricted files, odd drivers): every reader returns
// undefined instead of throwing and, where the absence is abnormal, records why in `problems`.

import type { Dirent } from 'node:fs';
import { readFile, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';

export function errorCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

function describe(e: unknown): string {
  const code = errorCode(e);
  if (code === 'ENOENT') return 'missing';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory, not an attribute';
  return e instanceof Error ? e.message : String(e);
}

export interface ReadOptions {
  /** When true a missing file is a problem; otherwise missing just means "not applicable". */
  required?: boolean;
}

/** Trimmed text of an attribute, or undefined (with a problem unless optional and absent). */
export async function readAttr(file: string, problems: string[], opts: ReadOptions = {}): Promise<string | undefined> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (e) {
    if (errorCode(e) === 'ENOENT' && !opts.required) return undefined;
    problems.push(`cannot read ${file}: ${describe(e)}`);
    return undefined;
  }
}

/** Text of a file, or undefined when it cannot be read for any reason; no problem recorded. */
export async function readQuiet(file: string): Promise<string | undefined> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/** An attribute that must be an integer (decimal, or hex with 0x). */
export async function readIntAttr(file: string, problems: string[], opts: ReadOptions = {}): Promise<number | undefined> {
  const text = await readAttr(file, problems, opts);
  if (text === undefined) return undefined;
  const n = /^-?\d+$/.test(text) ? Number(text) : /^0x[0-9a-f]+$/i.test(text) ? Number.parseInt(text, 16) : NaN;
  if (Number.isNaN(n)) {
    problems.push(`${file} holds ${JSON.stringify(text.slice(0, 40))}, not a number`);
    return undefined;
  }
  return n;
}

/** An id attribute like "0x8086": returns "8086" (lower-case, 4 digits unless `digits` says otherwise). */
export async function readHexIdAttr(file: string, problems: string[], digits = 4, opts: ReadOptions = { required: true }): Promise<string | undefined> {
  const text = await readAttr(file, problems, opts);
  if (text === undefined) return undefined;
  const m = new RegExp(`^(?:0x)?([0-9a-f]{${digits}})$`, 'i').exec(text);
  if (!m) {
    problems.push(`${file} holds ${JSON.stringify(text.slice(0, 40))}, not a ${digits}-digit hex id`);
    return undefined;
  }
  return m[1].toLowerCase();
}

export interface LinkTarget {
  /** Basename of the link target (a driver name, a group number, a PCI address). */
  name: string;
  /** The target, resolved against the link's directory. */
  path: string;
}

/**
 * A symlink's target. Absent link: undefined, no problem. A dangling link: undefined and a
 * problem, since sysfs never leaves one behind on its own.
 */
export async function readLinkTarget(link: string, problems: string[]): Promise<LinkTarget | undefined> {
  let target: string;
  try {
    target = await readlink(link);
  } catch (e) {
    const code = errorCode(e);
    if (code === 'ENOENT') return undefined;
    problems.push(`cannot read link ${link}: ${describe(e)}`);
    return undefined;
  }
  let path: string;
  try {
    // Resolve against the link's real directory: sysfs links are relative to /sys/devices/...,
    // not to the /sys/bus/... alias they were reached through.
    path = resolve(await realpath(dirname(link)), target);
    await stat(path);
  } catch (e) {
    problems.push(`${link} points to ${target}, which is ${describe(e)} (dangling link)`);
    return undefined;
  }
  return { name: basename(path), path };
}

/** Directory entries, or [] when the directory is absent (a problem only if it is required). */
export async function listDir(dir: string, problems: string[], opts: ReadOptions = {}): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if (errorCode(e) === 'ENOENT' && !opts.required) return [];
    problems.push(`cannot list ${dir}: ${describe(e)}`);
    return [];
  }
}

export async function listNames(dir: string, problems: string[], opts: ReadOptions = {}): Promise<string[]> {
  return (await listDir(dir, problems, opts)).map((d) => d.name).sort();
}
