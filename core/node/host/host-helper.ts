// The narrow privileged executor. Runs as root (in-process, or as bin/hangar-host-helper.mjs
// under sudo/pkexec), so it trusts nothing: every op is matched against a short list of sysfs
// attributes, values are checked per attribute, paths must resolve inside the sysfs root, and
// all ops are validated before the first one runs.

import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { chown, lstat, open, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { join, sep } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import { PCI_ADDRESS_RE } from '../../common/model.ts';
import { HOST_VERB_USAGE, planFor } from './host-verbs.ts';
import { IFNAME_RE, MAC_RE, MDEV_TYPE_RE, UUID_RE, shellCommands } from './sysfs-plans.ts';
import type { HostOp } from './sysfs-plans.ts';

const DRIVER_VALUE_RE = /^[a-z0-9_-]{1,32}$/;
const DRIVER_DIR_RE = /^[A-Za-z0-9_.-]{1,64}$/;

function refuse(op: HostOp, why: string): never {
  throw new HangarError('invalid-input', `host helper refuses ${JSON.stringify(op)}: ${why}`, 'the helper only binds PCI devices to vfio-pci, sets SR-IOV VFs, creates or removes mdevs, and switches KSM and sizes huge page pools');
}

type Target =
  | { kind: 'device'; address: string; attr: 'driver_override' | 'sriov_numvfs' }
  | { kind: 'mdev-create'; address: string; type: string }
  | { kind: 'driver'; driver: string; attr: 'bind' | 'unbind' }
  | { kind: 'probe' }
  | { kind: 'mdev-remove'; uuid: string }
  | { kind: 'ksm' }
  | { kind: 'hugepages'; size: '2M' | '1G' };

function parsePath(op: HostOp & { op: 'write' }): Target {
  const s = op.path.split('/');
  if (op.path.startsWith('/') || s.some((x) => x === '' || x === '.' || x === '..')) refuse(op, 'the path must be relative to the sysfs root, without "." or ".." segments');
  const [a, b, c, d, e, f, g] = s;
  if (a === 'bus' && b === 'pci' && c === 'devices' && PCI_ADDRESS_RE.test(d ?? '')) {
    if (s.length === 5 && (e === 'driver_override' || e === 'sriov_numvfs')) return { kind: 'device', address: d, attr: e };
    if (s.length === 7 && e === 'mdev_supported_types' && MDEV_TYPE_RE.test(f) && g === 'create') return { kind: 'mdev-create', address: d, type: f };
  }
  if (a === 'bus' && b === 'pci' && c === 'drivers' && s.length === 5 && DRIVER_DIR_RE.test(d) && (e === 'bind' || e === 'unbind')) {
    return { kind: 'driver', driver: d, attr: e };
  }
  if (s.length === 3 && a === 'bus' && b === 'pci' && c === 'drivers_probe') return { kind: 'probe' };
  if (s.length === 5 && a === 'bus' && b === 'mdev' && c === 'devices' && UUID_RE.test(d ?? '') && e === 'remove') return { kind: 'mdev-remove', uuid: d };
  if (op.path === 'kernel/mm/ksm/run') return { kind: 'ksm' };
  if (op.path === 'kernel/mm/hugepages/hugepages-2048kB/nr_hugepages') return { kind: 'hugepages', size: '2M' };
  if (op.path === 'kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages') return { kind: 'hugepages', size: '1G' };
  return refuse(op, 'not one of the attributes the helper may write');
}

async function realOrNull(p: string): Promise<string | null> {
  try {
    return await realpath(p);
  } catch {
    return null;
  }
}

function inside(child: string, parent: string): boolean {
  return child.startsWith(parent + sep);
}

/** Refuses the op unless it is one of the allowed changes, on files that really are sysfs attributes of the root. */
export async function validateOp(op: HostOp, sysRoot: string): Promise<void> {
  if (op.op === 'modprobe') {
    if (op.module !== 'vfio-pci') refuse(op, 'modprobe loads only vfio-pci');
    return;
  }
  if (op.op === 'ip') return validateIp(op);
  if (op.op !== 'write' || typeof op.path !== 'string' || typeof op.value !== 'string') refuse(op, 'unknown operation');
  const root = await realOrNull(sysRoot);
  if (!root) refuse(op, `the sysfs root ${sysRoot} does not exist`);
  const t = parsePath(op);
  const file = join(root, op.path);
  // The directory holding the attribute, resolved: bus/... names are symlinks into devices/.
  let dir: string | null;
  if (t.kind === 'device' || t.kind === 'mdev-create') {
    dir = await realOrNull(join(root, 'bus/pci/devices', t.address));
    if (!dir || !inside(dir, join(root, 'devices')) || !dir.endsWith(`${sep}${t.address}`)) refuse(op, `no PCI device ${t.address} under ${sysRoot}/devices`);
    if (t.kind === 'mdev-create') {
      const typeDir = await realOrNull(join(root, 'bus/pci/devices', t.address, 'mdev_supported_types', t.type));
      if (typeDir !== join(dir, 'mdev_supported_types', t.type)) refuse(op, `${t.address} has no mdev type ${t.type}`);
    }
  } else if (t.kind === 'driver') {
    dir = await realOrNull(join(root, 'bus/pci/drivers', t.driver));
    if (dir !== join(root, 'bus/pci/drivers', t.driver)) refuse(op, `no PCI driver ${t.driver} under ${sysRoot}/bus/pci/drivers`);
  } else if (t.kind === 'mdev-remove') {
    dir = await realOrNull(join(root, 'bus/mdev/devices', t.uuid));
    if (!dir || !inside(dir, join(root, 'devices')) || !dir.endsWith(`${sep}${t.uuid}`)) refuse(op, `no mdev ${t.uuid} under ${sysRoot}/bus/mdev/devices`);
  } else if (t.kind === 'ksm' || t.kind === 'hugepages') {
    dir = join(root, t.kind === 'ksm' ? 'kernel/mm/ksm' : op.path.slice(0, op.path.lastIndexOf('/')));
    if ((await realOrNull(dir)) !== dir) refuse(op, `${dir} is not a directory of the sysfs root`);
  } else {
    dir = join(root, 'bus/pci');
    if ((await realOrNull(dir)) !== dir) refuse(op, `${sysRoot}/bus/pci is not a directory of the sysfs root`);
  }
  // The attribute itself: an existing regular file, not a link (followed) nor a hard link (nlink > 1).
  const st = await lstat(file).catch(() => null);
  if (!st || !st.isFile() || st.nlink !== 1) refuse(op, `${file} is not an existing sysfs attribute file`);
  await validateValue(op, t, dir, root);
}

async function validateValue(op: HostOp & { op: 'write' }, t: Target, dir: string, root: string): Promise<void> {
  const v = op.value;
  switch (t.kind) {
    case 'device':
      if (t.attr === 'driver_override') {
        if (v !== '\n' && !DRIVER_VALUE_RE.test(v)) refuse(op, 'driver_override takes a driver name or "\\n" (to clear it)');
        return;
      }
      {
        if (!/^\d{1,5}$/.test(v)) refuse(op, 'sriov_numvfs takes a whole number');
        const total = (await readFile(join(dir, 'sriov_totalvfs'), 'utf8').catch(() => '')).trim();
        if (!/^\d+$/.test(total)) refuse(op, `${t.address} has no readable sriov_totalvfs`);
        if (Number(v) > Number(total)) refuse(op, `${t.address} supports at most ${total} VFs (sriov_totalvfs)`);
      }
      return;
    case 'driver':
    case 'probe':
      if (!PCI_ADDRESS_RE.test(v)) refuse(op, 'bind, unbind and drivers_probe take a PCI address');
      if (!(await stat(join(root, 'bus/pci/devices', v)).catch(() => null))?.isDirectory()) refuse(op, `no PCI device ${v}`);
      return;
    case 'mdev-create':
      if (!UUID_RE.test(v)) refuse(op, 'create takes an mdev UUID');
      return;
    case 'mdev-remove':
      if (v !== '1') refuse(op, 'remove takes "1"');
      return;
    case 'ksm':
      // 2 would unmerge every page at once (a memory spike): only on and off are the helper's to set.
      if (v !== '0' && v !== '1') refuse(op, 'KSM run takes 0 or 1');
      return;
    case 'hugepages':
      if (!/^\d{1,7}$/.test(v)) refuse(op, 'nr_hugepages takes a whole number');
  }
}

function validateIp(op: HostOp & { op: 'ip' }): void {
  const a = op.args;
  if (!Array.isArray(a) || a.some((x) => typeof x !== 'string')) refuse(op, 'ip arguments must be strings');
  if (a.length < 8 || a[0] !== 'link' || a[1] !== 'set' || a[2] !== 'dev' || !IFNAME_RE.test(a[3]) || a[3] === '.' || a[3] === '..' ||
    a[4] !== 'vf' || !/^\d{1,5}$/.test(a[5])) {
    refuse(op, 'ip runs only "link set dev IFNAME vf N [mac M] [vlan V]"');
  }
  const seen = new Set<string>();
  for (let i = 6; i < a.length; i += 2) {
    const [key, value] = [a[i], a[i + 1] ?? ''];
    if (seen.has(key)) refuse(op, `${key} given twice`);
    seen.add(key);
    if (key === 'mac' && MAC_RE.test(value)) continue;
    if (key === 'vlan' && /^\d{1,4}$/.test(value) && Number(value) <= 4095) continue;
    refuse(op, `"${key} ${value}" is not a MAC address or VLAN setting`);
  }
}

/** One write to an existing sysfs attribute: no O_CREAT, no following a final symlink (O_TRUNC is what `echo >` does; sysfs ignores it). */
export async function writeAttribute(path: string, value: string): Promise<void> {
  const fh = await open(path, constants.O_WRONLY | constants.O_TRUNC | constants.O_NOFOLLOW);
  try {
    await fh.write(value);
  } finally {
    await fh.close();
  }
}

export type Writer = (path: string, value: string) => Promise<void>;
export type Runner = (file: string, args: string[]) => Promise<void>;

function runCommand(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 60_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(stderr.trim() || err.message));
      else resolve();
    });
  });
}

export interface ExecuteOptions {
  sysRoot: string;
  /** Default writeAttribute; tests pass a fake kernel. */
  writer?: Writer;
  /** Default execFile (no shell). */
  run?: Runner;
}

/** Validates every op, then runs them in order; stops at the first failure. Returns the ops that ran. */
export async function executeOps(ops: HostOp[], opts: ExecuteOptions): Promise<HostOp[]> {
  for (const op of ops) await validateOp(op, opts.sysRoot);
  const writer = opts.writer ?? writeAttribute;
  const run = opts.run ?? runCommand;
  const done: HostOp[] = [];
  for (const op of ops) {
    try {
      if (op.op === 'write') await writer(join(opts.sysRoot, op.path), op.value);
      else if (op.op === 'modprobe') await run('modprobe', [op.module]);
      else await run('ip', op.args);
    } catch (e) {
      const [command] = shellCommands([op], opts.sysRoot);
      const code = (e as { code?: string }).code;
      const why = code ? `${code}${e instanceof Error && !e.message.startsWith(code) ? ` (${e.message})` : ''}` : e instanceof Error ? e.message : String(e);
      throw new HangarError(code === 'EACCES' || code === 'EPERM' ? 'permission' : 'io-error',
        `host change failed at step ${done.length + 1} of ${ops.length}, ${command}: ${why}`,
        done.length ? `the steps before it ran: ${shellCommands(done, opts.sysRoot).join('; ')}` : 'nothing was changed before it',
        { done: shellCommands(done, opts.sysRoot), failed: command });
    }
    done.push(op);
  }
  return done;
}

/**
 * bin/hangar-host-helper.mjs: `[--sys-root DIR] VERB ARGS...`. Plans from its own read of sysfs,
 * validates, runs; prints {commands} as JSON. A caller escalated by sudo or pkexec may not pick
 * another sysfs root: a tree the caller controls could point root's writes anywhere.
 */
export async function hostHelperMain(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    let sysRoot = '/sys';
    const args = [...argv];
    if (args[0] === '--sys-root') {
      sysRoot = args[1] ?? '';
      args.splice(0, 2);
      if (!sysRoot.startsWith('/')) throw new HangarError('invalid-input', '--sys-root takes an absolute directory');
      if (sysRoot !== '/sys' && (env.SUDO_UID || env.PKEXEC_UID)) {
        throw new HangarError('permission', 'the host helper takes --sys-root only when run by root itself, not through sudo or pkexec');
      }
    }
    const [verb, ...rest] = args;
    if (!verb) throw new HangarError('invalid-input', 'no host change given', `usage: hangar-host-helper [--sys-root DIR] ${HOST_VERB_USAGE}`);
    const plan = await planFor(verb, rest, sysRoot);
    const ran = await executeOps(plan.ops, { sysRoot });
    const commands = shellCommands(ran, sysRoot);
    // Escalated for an ordinary user: the group's /dev/vfio node is root's; that user's QEMU must open it.
    const caller = Number(env.SUDO_UID ?? env.PKEXEC_UID);
    if (verb === 'bind-vfio' && Number.isInteger(caller) && caller > 0) commands.push(...(await handGroupNodeTo(sysRoot, rest[0]!, caller)));
    const out = { commands, ...(plan.uuid ? { uuid: plan.uuid } : {}) };
    return { code: 0, stdout: `${JSON.stringify(out)}\n`, stderr: '' };
  } catch (e) {
    const err = e instanceof HangarError ? e : new HangarError('internal', e instanceof Error ? e.message : String(e));
    // A readable message first; the last line is the error as JSON for the unprivileged caller.
    const text = err.hint ? `hangar-host-helper: ${err.message}\n  fix: ${err.hint}` : `hangar-host-helper: ${err.message}`;
    return { code: 1, stdout: '', stderr: `${text}\n${JSON.stringify(err.toPayload())}\n` };
  }
}

/**
 * Gives the /dev/vfio node of a bound device's IOMMU group to one user (as libvirt gives it to
 * its qemu user). The node appears when vfio-pci binds, a moment after the write: waits up to
 * 2 s. Only <devRoot>/vfio/<group number>, never a symlink.
 */
export async function handGroupNodeTo(sysRoot: string, address: string, uid: number, devRoot = '/dev'): Promise<string[]> {
  if (!PCI_ADDRESS_RE.test(address)) throw new HangarError('invalid-input', `"${address}" is not a PCI address`);
  const group = basename(await readlink(join(sysRoot, 'bus/pci/devices', address, 'iommu_group')));
  if (!/^\d{1,6}$/.test(group)) throw new HangarError('internal', `${address} has no IOMMU group number (${group})`);
  const node = join(devRoot, 'vfio', group);
  for (let waited = 0; ; waited += 50) {
    const st = await lstat(node).catch(() => undefined);
    if (st) {
      if (!st.isCharacterDevice() && devRoot === '/dev') throw new HangarError('internal', `${node} is not a character device`);
      if (st.isSymbolicLink()) throw new HangarError('invalid-input', `${node} is a symlink: not changed`);
      break;
    }
    if (waited >= 2000) throw new HangarError('host-missing', `${node} did not appear after binding ${address} to vfio-pci`, 'check dmesg for vfio-pci errors');
    await new Promise((r) => setTimeout(r, 50));
  }
  await chown(node, uid, -1);
  return [`chown ${uid} ${node}`];
}
