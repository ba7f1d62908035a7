// Making a privileged host change from an unprivileged core: directly when the core is root,
// else the helper entry through `sudo -n` (never prompting) or pkexec (polkit's dialog, only
// with a display), else refuse with the exact commands for the user to run as root.

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { constants, existsSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, dirname, join, sep } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import type { ErrorPayload } from '../../common/errors.ts';
import type { HostChangeResult } from '../../common/host-devices.ts';
import { executeOps } from './host-helper.ts';
import type { Runner, Writer } from './host-helper.ts';
import { planFor } from './host-verbs.ts';
import { shellCommands } from './sysfs-plans.ts';

export type PrivilegeMode = 'root' | 'sudo' | 'pkexec' | 'none';

export interface PrivilegeProbe {
  /** Default process.getuid(). */
  uid?: number;
  /** Default: `sudo -n true` succeeds, or sudo -n -l allows the helper. */
  sudoWorks?: () => Promise<boolean>;
  /** Default: pkexec is on PATH. */
  hasPkexec?: () => Promise<boolean>;
  /** Default process.env (DISPLAY / WAYLAND_DISPLAY, PATH). */
  env?: NodeJS.ProcessEnv;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface HostChangeOptions extends PrivilegeProbe {
  sysRoot: string;
  /** Default /proc; used only by the in-process (root) path. */
  procRoot?: string;
  /** In-process path: the sysfs writer and command runner (tests pass a fake kernel). */
  writer?: Writer;
  run?: Runner;
  /** Runs sudo / pkexec; default execFile. */
  exec?: (file: string, args: string[]) => Promise<ExecResult>;
}

function execCapture(file: string, args: string[], timeout = 300_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 127) : 0;
      resolve({ code, stdout, stderr: stderr || (err && typeof err.code !== 'number' ? err.message : '') });
    });
  });
}

async function onPath(name: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    try {
      await access(join(dir, name), constants.X_OK);
      return true;
    } catch { /* next */ }
  }
  return false;
}

export async function privilegeMode(opts: PrivilegeProbe = {}): Promise<PrivilegeMode> {
  const env = opts.env ?? process.env;
  if ((opts.uid ?? process.getuid?.() ?? -1) === 0) return 'root';
  // Passwordless sudo for everything, or a sudoers rule for just the helper (sudo -l COMMAND).
  const helper = (() => { try { return hostHelperPath(env); } catch { return undefined; } })();
  const sudoWorks = opts.sudoWorks ?? (async () => (await execCapture('sudo', ['-n', 'true'], 5_000)).code === 0 ||
    (helper !== undefined && (await execCapture('sudo', ['-n', '-l', ...nodeCommand(), helper], 5_000)).code === 0));
  if (await sudoWorks()) return 'sudo';
  const hasPkexec = opts.hasPkexec ?? (() => onPath('pkexec', env));
  if ((env.DISPLAY || env.WAYLAND_DISPLAY) && (await hasPkexec())) return 'pkexec';
  return 'none';
}

/** The node binary as argv. Electron's is node only with ELECTRON_RUN_AS_NODE, which sudo and pkexec strip. */
function nodeCommand(): string[] {
  return process.versions.electron ? ['/usr/bin/env', 'ELECTRON_RUN_AS_NODE=1', process.execPath] : [process.execPath];
}

/**
 * The helper to run, nearest first from `from` (where the calling code lives): a bundle in dist/
 * (or dist/electron) finds dist/hangar-host-helper.mjs, built with it (a packaged app has only
 * dist/); the sources find bin/hangar-host-helper.mjs (which picks the fresher of bundle and sources).
 */
export function hostHelperPath(env: NodeJS.ProcessEnv = process.env, from: string = import.meta.dirname): string {
  if (env.HANGAR_HOST_HELPER) return env.HANGAR_HOST_HELPER;
  const found: string[] = [];
  let dir = from;
  for (let i = 0; i < 6; i++) {
    for (const p of [join(dir, 'bin', 'hangar-host-helper.mjs'), join(dir, 'dist', 'hangar-host-helper.mjs'), join(dir, 'hangar-host-helper.mjs')]) {
      if (existsSync(p)) found.push(p);
    }
    if (found.length) return found.find((p) => p.includes(`${sep}bin${sep}`)) ?? found[0]!; // both in one folder: bin/
    dir = dirname(dir);
  }
  throw new HangarError('internal', `the host helper (hangar-host-helper.mjs) is not installed next to ${from}`, 'reinstall Hangar, or rebuild it (node scripts/build.mjs)');
}

function asError(r: ExecResult, what: string, commands: string[]): HangarError {
  const last = r.stderr.trim().split('\n').pop() ?? '';
  try {
    const p = JSON.parse(last) as ErrorPayload;
    if (typeof p.code === 'string' && typeof p.message === 'string') return HangarError.fromPayload(p);
  } catch { /* not the helper's own error: sudo or pkexec refused */ }
  return new HangarError('permission', `${what} needs root, and the privilege request failed (exit ${r.code}): ${r.stderr.trim() || 'no output'}`,
    `run these commands as root:\n  ${commands.join('\n  ')}`, { commands });
}

/**
 * Runs one host change (a host-verbs verb). The plan is made here first (to refuse early and to
 * show the commands), and the privileged side makes it again from its own read of sysfs.
 */
export async function runHostChange(verb: string, args: string[], opts: HostChangeOptions): Promise<HostChangeResult> {
  // A new mdev gets its UUID here, so the commands shown and the ones run agree.
  const fullArgs = verb === 'create-mdev' && args.length === 2 ? [...args, randomUUID()] : args;
  const plan = await planFor(verb, fullArgs, opts.sysRoot, { procRoot: opts.procRoot });
  const commands = shellCommands(plan.ops, opts.sysRoot);
  const extra = plan.uuid ? { uuid: plan.uuid } : {};
  const uid = opts.uid ?? process.getuid?.() ?? -1;
  // Nothing to change needs no privilege (HostChangeResult has no 'none': nothing ran).
  if (plan.ops.length === 0) return { commands: [], via: 'root', ...extra };
  if (uid === 0) {
    const ran = await executeOps(plan.ops, { sysRoot: opts.sysRoot, writer: opts.writer, run: opts.run });
    return { commands: shellCommands(ran, opts.sysRoot), via: 'root', ...extra };
  }
  const mode = await privilegeMode({ ...opts, uid });
  if (mode === 'none' || mode === 'root') {
    throw new HangarError('permission',
      `${plan.what} needs root, and Hangar runs as an ordinary user with neither passwordless sudo nor pkexec (with a display) to ask for it`,
      `run these commands as root:\n  ${commands.join('\n  ')}`, { commands });
  }
  const helperArgs = [...nodeCommand(), hostHelperPath(opts.env), ...(opts.sysRoot !== '/sys' ? ['--sys-root', opts.sysRoot] : []), verb, ...fullArgs];
  const exec = opts.exec ?? execCapture;
  const r = mode === 'sudo' ? await exec('sudo', ['-n', ...helperArgs]) : await exec('pkexec', helperArgs);
  if (r.code !== 0) throw asError(r, plan.what, commands);
  let out: { commands?: unknown; uuid?: unknown };
  try {
    out = JSON.parse(r.stdout) as typeof out;
  } catch {
    throw new HangarError('internal', `the host helper printed no result: ${r.stdout.slice(0, 200)}`);
  }
  const ran = Array.isArray(out.commands) ? out.commands.map(String) : [];
  return { commands: ran, via: mode, ...extra };
}
