// QEMU's own hardening, the settings libvirt keeps in qemu.conf: a seccomp sandbox (-sandbox,
// libvirt's seccomp_sandbox), deprecated management interfaces made fatal (-compat, libvirt's
// deprecation_behavior: tests run with it so no deprecated QMP command or argument slips in), and
// an unprivileged user for QEMU when the core runs as root (libvirt's user = "qemu").
//
// Settings (environment of the core):
//   HANGAR_QEMU_SANDBOX=off        no -sandbox (on by default where the host's QEMU has seccomp)
//   HANGAR_QEMU_DEPRECATION=crash  -compat deprecated-input=crash,deprecated-output=hide
//                           reject  -compat deprecated-input=reject,deprecated-output=hide
//   HANGAR_QEMU_USER=NAME          QEMU runs as NAME (-runas) when the core runs as root
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { HangarError } from '../../common/errors.ts';
import type { VmDefinition } from '../../common/model.ts';
import type { QemuOption } from '../qemu/qemu-option.ts';

export type SandboxAction = 'allow' | 'deny';

export interface QemuHardening {
  /** -sandbox on,...: the syscall groups QEMU may not use (always obsolete and resourcecontrol). */
  sandbox?: { spawn: SandboxAction; elevateprivileges: SandboxAction };
  /** What QEMU does with a deprecated QMP command or argument: crash (tests) or reject it. */
  deprecation?: 'crash' | 'reject';
  /** The user QEMU drops to once it has opened its files and sockets (-runas). */
  runAs?: string;
}

/**
 * The sandbox a VM's QEMU gets. spawn: QEMU itself runs qemu-bridge-helper for bridge NICs (the
 * other back ends are processes of their own), so a VM with one must be allowed to fork and exec.
 * elevateprivileges: QEMU 7.2's -runas calls setuid/setgid after the filter is in place (QEMU is
 * killed with SIGSYS otherwise); once it has dropped to the user it holds no capability and
 * no_new_privs is set, so those calls cannot raise it again.
 */
export function sandboxFor(def: Pick<VmDefinition, 'nics'>, runAs: string | undefined): NonNullable<QemuHardening['sandbox']> {
  return {
    spawn: def.nics.some((n) => n.network.type === 'bridge') ? 'allow' : 'deny',
    elevateprivileges: runAs ? 'allow' : 'deny',
  };
}

/** The argv options of a hardening, in a fixed order (before anything QEMU parses as a device). */
export function hardeningOptions(h: QemuHardening | undefined): QemuOption[] {
  const o: QemuOption[] = [];
  if (!h) return o;
  if (h.sandbox) {
    o.push({ opt: '-sandbox', implied: 'on', keyval: { obsolete: 'deny', elevateprivileges: h.sandbox.elevateprivileges, spawn: h.sandbox.spawn, resourcecontrol: 'deny' } });
  }
  if (h.deprecation) o.push({ opt: '-compat', keyval: { 'deprecated-input': h.deprecation, 'deprecated-output': 'hide' } });
  if (h.runAs) o.push({ opt: '-runas', value: h.runAs });
  return o;
}

const sandboxSupport = new Map<string, boolean>();

/**
 * Whether this QEMU binary was built with seccomp: a QEMU without it refuses -sandbox ("-sandbox
 * support is not enabled in this QEMU binary"); -version exits once the options are parsed.
 */
export function qemuHasSandbox(qemu: string): boolean {
  let known = sandboxSupport.get(qemu);
  if (known === undefined) {
    const r = spawnSync(qemu, ['-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny', '-version'], { stdio: 'ignore', timeout: 10_000 });
    known = r.status === 0;
    sandboxSupport.set(qemu, known);
  }
  return known;
}

/** The user named by HANGAR_QEMU_USER, checked: it must exist, and only a root core can switch to it. */
function qemuUser(env: NodeJS.ProcessEnv): string | undefined {
  const name = env.HANGAR_QEMU_USER?.trim();
  if (!name) return undefined;
  if (process.getuid?.() !== 0) {
    throw new HangarError('invalid-input', `HANGAR_QEMU_USER=${name} is set but the Hangar core does not run as root, so QEMU cannot run as another user`,
      'unset HANGAR_QEMU_USER (QEMU already runs as you), or run the core as root');
  }
  const r = spawnSync('getent', ['passwd', name], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) {
    throw new HangarError('invalid-input', `HANGAR_QEMU_USER names user "${name}", which does not exist on this host`,
      `create it (useradd --system --no-create-home ${name}) or set HANGAR_QEMU_USER to an existing unprivileged user`);
  }
  return name;
}

function deprecation(env: NodeJS.ProcessEnv): QemuHardening['deprecation'] {
  const v = env.HANGAR_QEMU_DEPRECATION?.trim();
  if (!v || v === 'none') return undefined;
  if (v === 'crash' || v === 'reject') return v;
  throw new HangarError('invalid-input', `HANGAR_QEMU_DEPRECATION is "${v}"`, 'set it to crash, reject or none (or unset it)');
}

/** The hardening a VM's QEMU gets on this host under the core's settings (the environment). */
export function qemuHardening(def: Pick<VmDefinition, 'nics'>, qemu: string, env: NodeJS.ProcessEnv = process.env): QemuHardening {
  const h: QemuHardening = {};
  const runAs = qemuUser(env);
  if (runAs) h.runAs = runAs;
  const sandboxOff = ['off', '0', 'no'].includes(env.HANGAR_QEMU_SANDBOX?.trim() ?? '');
  if (!sandboxOff && qemuHasSandbox(qemu)) h.sandbox = sandboxFor(def, runAs);
  const dep = deprecation(env);
  if (dep) h.deprecation = dep;
  return h;
}

/** For command-line previews: the hardening a start would use, or none when the settings are invalid (start reports that). */
export function previewHardening(def: Pick<VmDefinition, 'nics'>, qemu: string): QemuHardening | undefined {
  try {
    return qemuHardening(def, qemu);
  } catch {
    return undefined;
  }
}

/** The -sandbox value a running QEMU was started with (from /proc/PID/cmdline), or null. */
function runningSandbox(pid: number): string | null {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const i = args.indexOf('-sandbox');
    return i >= 0 ? args[i + 1] ?? null : null;
  } catch {
    return null;
  }
}

/**
 * Why a device cannot be hotplugged into this running QEMU because of its sandbox, or null. A
 * bridge NIC makes QEMU fork and exec qemu-bridge-helper: under spawn=deny seccomp kills QEMU
 * (SIGSYS) on the fork, so the NIC waits for the next boot, which allows the helper.
 */
export function sandboxPlugBlocker(kind: string, device: Record<string, unknown>, pid: number | undefined): string | null {
  if (kind !== 'nic' || pid === undefined) return null;
  const network = device.network as { type?: unknown } | undefined;
  if (network?.type !== 'bridge') return null;
  const sandbox = runningSandbox(pid);
  if (!sandbox || !/(^|,)spawn=deny(,|$)/.test(sandbox)) return null;
  return 'the running QEMU\'s sandbox may not start programs, and a bridge NIC needs it to run qemu-bridge-helper (it is added at next boot, which allows the helper)';
}
