// The one validation every entry point runs (the CLI's create/edit/device add, the API, the New
// VM wizard through previewCreate/create), in the core, before anything is written: files exist
// and are what they are used as, new disks fit the file system (or the user confirmed the
// overcommit), memory and vCPUs fit the host, names are safe and unique. Every refusal is one
// invalid-input error naming the problem and the fix (the CLI exits 2 on it).
import { constants } from 'node:fs';
import { access, open, realpath, stat, statfs } from 'node:fs/promises';
import { cpus as hostCpus, totalmem } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { validateVmName } from '../../common/definition.ts';
import { HangarError } from '../../common/errors.ts';
import { diskFormats } from '../../common/model.ts';
import type { VmDefinition } from '../../common/model.ts';
import { readIsoPvd } from '../osinfo/iso9660.ts';
import { formatBytes, inspectImportSource } from '../store/import-disk.ts';
import { inspectPath } from '../store/inspect-path.ts';

type Raw = Record<string, unknown>;

/** What the checks need to know about the rest of the world. */
export interface ValidationContext {
  /** Every other VM's definition (for names and disks already in use). */
  others: Array<{ id: string; name: string; definition?: VmDefinition }>;
  /** The user confirmed a sparse disk larger than the free space, or more vCPUs than the host has. */
  allowOvercommit: boolean;
  /** The host, for tests; default: this machine. */
  host?: { memoryBytes: number; cpus: number };
}

const OVERCOMMIT_FIX = 'pass --allow-overcommit (the API field allowOvercommit) to go ahead anyway';

function fileKind(st: { isCharacterDevice(): boolean; isFIFO(): boolean; isSocket(): boolean }): string | null {
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isSocket()) return 'a socket';
  return null;
}

/** Refuses device nodes, pipes and sockets up front, with what the path really is. */
async function refuseSpecialFile(path: string, what: string): Promise<void> {
  const st = await stat(path).catch(() => null);
  const kind = st && fileKind(st);
  if (kind) throw new HangarError('invalid-input', `${path} is ${kind}, not ${what}`, `name ${what} file`);
}

function absolutePath(p: unknown, field: string): string {
  if (typeof p !== 'string' || p === '') throw new HangarError('invalid-input', `${field} needs a file path`);
  if (!isAbsolute(p)) throw new HangarError('invalid-input', `${field} "${p}" is not an absolute path`, 'start the path with /');
  return resolve(p);
}

/** A raw "disk" that is really text (a config file, /etc/shadow ...): qemu-img calls anything unknown raw. */
async function looksLikeText(path: string): Promise<boolean> {
  const fh = await open(path, 'r').catch(() => null);
  if (!fh) return false;
  try {
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead === 0) return false;
    // Every real disk (partition table, boot sector, blank) has NUL bytes in its first 4 KiB.
    return !buf.subarray(0, bytesRead).includes(0);
  } finally {
    await fh.close();
  }
}

/**
 * An existing disk image a VM will open: there, a regular file (or block device) this user can
 * read and (unless read-only) write, in a format qemu-img recognizes; an explicit format that
 * contradicts qemu-img is refused (raw over a qcow2 would hand the guest the image's metadata).
 * Returns the disk with its absolute path and format filled in.
 */
export async function checkDiskFile(disk: Raw, label: string): Promise<Raw> {
  const path = absolutePath(disk.file, `${label}: file`);
  await refuseSpecialFile(path, 'a disk image');
  const src = await inspectImportSource(path);
  if (src.format === 'raw' && (await looksLikeText(path))) {
    throw new HangarError('invalid-input', `${label}: ${path} is a text file, not a disk image`, 'name a disk image (qcow2, raw, vmdk, vdi, vhdx), or make a new one with --new-disk SIZE');
  }
  if (disk.format !== undefined && disk.format !== src.format) {
    throw new HangarError('invalid-input', `${label}: ${path} is a ${src.format} image (qemu-img info), not ${String(disk.format)} as format= says`,
      `drop format= (Hangar reads it from the image), or write format=${src.format}`);
  }
  if (!(diskFormats as readonly string[]).includes(src.format)) {
    throw new HangarError('invalid-input', `${label}: ${path} is a ${src.format} image, which a VM cannot use directly`, 'convert it with --import-disk PATH,convert');
  }
  if (disk.readOnly !== true) {
    await access(path, constants.W_OK).catch((e: NodeJS.ErrnoException) => {
      throw new HangarError('invalid-input', `${label}: ${path} is not writable by this user (${e.code ?? 'no access'}), and the VM writes to its disks`,
        'fix its permissions (chmod/chown), or attach it read-only (readonly=on)');
    });
  }
  return { ...disk, file: path, format: src.format };
}

/** An install or data CD: there, readable, and an ISO9660 image (CD001 descriptor). */
export async function checkIsoFile(file: unknown, label: string): Promise<string> {
  const path = absolutePath(file, `${label}: file`);
  await refuseSpecialFile(path, 'an ISO image');
  await inspectPath(path, 'file');
  await readIsoPvd(path).catch((e: unknown) => {
    if (e instanceof HangarError) throw new HangarError(e.code, `${label}: ${e.message}`, e.hint ?? 'name an ISO image (.iso)');
    throw e;
  });
  return path;
}

/** A Linux kernel for direct boot: there, readable, and a bzImage ("HdrS" at 0x202, the x86 boot protocol). */
export async function checkKernelFile(file: unknown): Promise<string> {
  const path = absolutePath(file, 'kernel');
  await refuseSpecialFile(path, 'a kernel');
  await inspectPath(path, 'file').catch((e: unknown) => {
    if (e instanceof HangarError) throw new HangarError(e.code, `kernel: ${e.message}`, e.hint);
    throw e;
  });
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0x202);
    if (bytesRead < 4 || buf.toString('latin1') !== 'HdrS') {
      throw new HangarError('invalid-input', `kernel: ${path} is not a Linux kernel image (no bzImage "HdrS" header at 0x202)`,
        'name the bzImage (e.g. /boot/vmlinuz-VERSION or arch/x86/boot/bzImage), not vmlinux, an initrd or a text file');
    }
  } finally {
    await fh.close();
  }
  return path;
}

export async function checkPlainFile(file: unknown, label: string): Promise<string> {
  const path = absolutePath(file, label);
  await refuseSpecialFile(path, `a ${label}`);
  await inspectPath(path, 'file').catch((e: unknown) => {
    if (e instanceof HangarError) throw new HangarError(e.code, `${label}: ${e.message}`, e.hint);
    throw e;
  });
  return path;
}

/**
 * The files of a definition as typed (before defaults are filled in): disks, CD-ROMs (not the
 * cloud-init seed Hangar makes itself), the kernel and initrd, shared folders. Returns the input
 * with absolute paths and the disks' formats as qemu-img sees them.
 */
export async function checkDefinitionFiles(input: Raw, only?: ReadonlySet<string>): Promise<Raw> {
  const out: Raw = { ...input };
  const want = (k: string): boolean => !only || only.has(k);
  if (want('disks') && Array.isArray(input.disks)) {
    out.disks = [];
    for (const [i, d] of (input.disks as Raw[]).entries()) {
      const label = `disk ${typeof d?.id === 'string' ? d.id : i}`;
      (out.disks as Raw[]).push(d && typeof d === 'object' && d.file !== undefined ? await checkDiskFile(d, label) : d);
    }
  }
  if (want('cdroms') && Array.isArray(input.cdroms)) {
    out.cdroms = [];
    for (const [i, c] of (input.cdroms as Raw[]).entries()) {
      const fresh = c && typeof c === 'object' && c.file !== undefined && c.file !== null && c.role === undefined;
      (out.cdroms as Raw[]).push(fresh ? { ...c, file: await checkIsoFile(c.file, `CD-ROM ${typeof c.id === 'string' ? c.id : i}`) } : c);
    }
  }
  const boot = input.boot as Raw | undefined;
  const kernel = boot?.kernel as Raw | undefined;
  if (want('boot') && kernel && typeof kernel === 'object') {
    const k: Raw = { ...kernel, kernel: await checkKernelFile(kernel.kernel) };
    if (kernel.initrd !== undefined) k.initrd = await checkPlainFile(kernel.initrd, 'initrd');
    out.boot = { ...boot, kernel: k };
  }
  if (want('shares') && Array.isArray(input.shares)) {
    out.shares = [];
    for (const s of input.shares as Raw[]) {
      (out.shares as Raw[]).push(s && typeof s === 'object' && typeof s.source === 'string' ? { ...s, source: (await inspectPath(absolutePath(s.source, 'share source'), 'directory')).path } : s);
    }
  }
  return out;
}

/** A name that is safe (the schema's rules, with the allowed pattern in the fix) and not taken. */
export function checkVmName(name: unknown, ctx: ValidationContext, exceptId?: string): void {
  if (typeof name !== 'string') throw new HangarError('invalid-input', 'a VM needs a name', 'pass --name NAME');
  validateVmName(name);
  const lower = name.toLowerCase();
  const other = ctx.others.find((o) => o.id !== exceptId && o.name.toLowerCase() === lower);
  if (other) throw new HangarError('already-exists', `a VM named "${name}" already exists${other.name === name ? '' : ` ("${other.name}": names differ in more than case)`}`, 'choose another name');
}

/** Memory above the host's RAM is refused; vCPUs above the host's CPUs need the overcommit confirmation. */
export function checkHostFit(def: Pick<VmDefinition, 'memoryMiB' | 'cpu'>, ctx: ValidationContext): void {
  const host = ctx.host ?? { memoryBytes: totalmem(), cpus: hostCpus().length };
  const hostMiB = Math.floor(host.memoryBytes / 1024 / 1024);
  if (def.memoryMiB > hostMiB) {
    throw new HangarError('invalid-input', `${def.memoryMiB} MiB of memory is more than this host has (${hostMiB} MiB)`,
      `give the VM at most ${hostMiB} MiB; about half of it (${Math.floor(hostMiB / 2)} MiB) leaves room for the host`);
  }
  if (def.cpu.vcpus > host.cpus && !ctx.allowOvercommit) {
    throw new HangarError('invalid-input', `${def.cpu.vcpus} vCPUs are more than this host's ${host.cpus} CPUs (they would share them and run slower)`,
      `give at most ${host.cpus} vCPUs, or ${OVERCOMMIT_FIX}`);
  }
}

/**
 * New sparse images must fit the free space where they go, as virt-install warns for sparse
 * volumes larger than the pool: a guest that fills them pauses on ENOSPC. Above it needs the
 * overcommit confirmation.
 */
export async function checkNewDiskSpace(dir: string, sizes: number[], ctx: ValidationContext): Promise<void> {
  const total = sizes.reduce((a, b) => a + b, 0);
  if (!total || ctx.allowOvercommit) return;
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  if (total > free) {
    throw new HangarError('invalid-input',
      `new disk${sizes.length > 1 ? 's' : ''} of ${formatBytes(total)} do${sizes.length > 1 ? '' : 'es'} not fit the ${formatBytes(free)} free in ${dir} (the image grows as the guest writes; the VM pauses when the space runs out)`,
      `make the disk smaller, free some space, or ${OVERCOMMIT_FIX}`);
  }
}

/** Refuses a disk image another VM already opens read-write (or one opened read-write here that another VM uses): two writers corrupt it. */
export async function checkDisksNotShared(disks: Array<{ id: string; file: string; readOnly?: boolean }>, ctx: ValidationContext, exceptId?: string): Promise<void> {
  const real = async (p: string): Promise<string> => realpath(p).catch(() => resolve(p));
  const users = new Map<string, Array<{ vm: string; readOnly: boolean }>>();
  for (const o of ctx.others) {
    if (o.id === exceptId || !o.definition) continue;
    for (const d of o.definition.disks) {
      const key = await real(d.file);
      users.set(key, [...(users.get(key) ?? []), { vm: o.name, readOnly: d.readOnly }]);
    }
  }
  for (const d of disks) {
    const user = (users.get(await real(d.file)) ?? []).find((u) => !u.readOnly || !d.readOnly);
    if (user) {
      throw new HangarError('invalid-input', `disk ${d.id}: ${d.file} is already used ${user.readOnly ? '' : 'read-write '}by VM "${user.vm}"; two VMs writing one image corrupt it`,
        `give this VM its own copy (--import-disk ${d.file},copy), or attach it read-only in both VMs`);
    }
  }
}

/** The VM-level checks of a parsed definition: name, host fit, disks not in another VM's use. */
export async function checkDefinitionFits(def: VmDefinition, ctx: ValidationContext, exceptId?: string): Promise<void> {
  checkVmName(def.name, ctx, exceptId ?? def.id);
  checkHostFit(def, ctx);
  await checkDisksNotShared(def.disks.filter((d) => !d.owned), ctx, exceptId ?? def.id);
}
