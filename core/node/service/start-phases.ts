// The parts of a VM start that need no VmInstance state, in the order of libvirt's
// qemu_process.c: prepare domain (what the definition needs: seed ISO, files, accelerator,
// firmware) and the host checks of prepare host that belong to no sidecar. VmInstance.start()
// runs them between its own phases (launch, finish start-up).
import { access, constants, copyFile, readFile, stat } from 'node:fs/promises';
import { HangarError } from '../../common/errors.ts';
import type { VmDefinition } from '../../common/model.ts';
import { ensureSeedIso } from '../cloud-init/seed.ts';
import type { AccelProbe } from '../host/accel.ts';
import { resolveAccel } from '../host/accel.ts';
import { requireBinary } from '../host/binaries.ts';
import { checkBridge } from '../host/bridges.ts';
import { checkCpuMemoryHost } from '../host/cpu-memory-checks.ts';
import { checkCpuModel } from '../host/cpu-models.ts';
import { checkDeviceBackends } from '../host/device-checks.ts';
import { resolveFirmware } from '../host/firmware.ts';
import type { ResolvedFirmware } from '../host/firmware.ts';
import { checkNicRoms } from '../host/nic-roms.ts';
import { checkUsbHostDevices } from '../host/usb-host-checks.ts';
import { QmpClient } from '../qmp/client.ts';
import { hostRootsFromEnv } from './host-device-ops.ts';
import { isAlive, sleep } from './qemu-process.ts';
import type { SidecarStartContext } from './sidecar.ts';

/** What prepare domain settled: the emulator, its accelerator and the firmware. */
export interface Domain {
  qemu: string;
  accel: 'kvm' | 'tcg';
  accelNote?: string;
  firmware: ResolvedFirmware | null;
}

/** prepare domain: everything the definition itself needs, checked or made before the host is touched. */
export async function prepareDomain(ctx: SidecarStartContext, probe: () => Promise<AccelProbe>): Promise<Domain> {
  const { def } = ctx;
  const seedNote = await ensureSeedIso(def, ctx.vmDir);
  if (seedNote) await ctx.log(seedNote);
  checkNicRoms(def);
  await checkFiles(def);
  const qemu = requireBinary('qemu-system-x86_64');
  const { accel, note } = def.accel === 'tcg' ? { accel: 'tcg' as const, note: undefined } : resolveAccel(def.accel, await probe());
  if (def.cpu.model === 'host' && accel === 'tcg') {
    throw new HangarError('invalid-input', `cannot start VM "${def.name}": CPU model host passes the host CPU through, which needs KVM, and this VM runs under TCG${note ? ` (${note})` : ''}`,
      'use CPU model max (everything TCG can emulate) or a named model, e.g. hangar edit NAME --cpu max');
  }
  await checkCpuModel(def, qemu, accel);
  const firmware = resolveFirmware(def, ctx.vmDir);
  if (firmware) await ensureNvram(firmware, ctx);
  return { qemu, accel, firmware, ...(note ? { accelNote: note } : {}) };
}

/**
 * The host checks of prepare host that belong to no sidecar (which check themselves): device
 * nodes, bridges, host USB devices. Returns the bridge helper QEMU runs, if any.
 */
export async function checkHost(ctx: SidecarStartContext): Promise<string | undefined> {
  const { def } = ctx;
  // Device nodes (vhost-net, vhost-vsock, tun), tap devices and vhost-user sockets the VM needs.
  await checkDeviceBackends(def);
  // Bridge NICs: the bridge exists, the helper is installed and may run, its ACL allows the bridge.
  let bridgeHelper: string | undefined;
  for (const nic of def.nics) if (nic.network.type === 'bridge') bridgeHelper = checkBridge(nic.network.bridge);
  // Huge pages free, host NUMA nodes and pinned CPUs that exist.
  const roots = hostRootsFromEnv();
  await checkCpuMemoryHost(def, roots.sysRoot);
  // Host USB devices: one that is absent is a note (QEMU attaches it later); one this user cannot open is refused.
  for (const n of await checkUsbHostDevices(def, { sysRoot: roots.sysRoot, devRoot: roots.devRoot })) {
    ctx.notes.push(n);
    await ctx.log(n);
  }
  return bridgeHelper;
}

/** Every file the VM needs must exist before QEMU runs: a clear error beats QEMU's. */
async function checkFiles(def: VmDefinition): Promise<void> {
  const need: Array<[string, string, boolean]> = [];
  for (const d of def.disks) need.push([`disk "${d.id}"`, d.file, !d.readOnly]);
  for (const c of def.cdroms) if (c.file) need.push([`CD-ROM "${c.id}"`, c.file, false]);
  if (def.boot.kernel) {
    need.push(['kernel', def.boot.kernel.kernel, false]);
    if (def.boot.kernel.initrd) need.push(['initrd', def.boot.kernel.initrd, false]);
  }
  for (const sh of def.shares) {
    const st = await stat(sh.source).catch(() => null);
    if (!st?.isDirectory()) {
      throw new HangarError('invalid-input', `cannot start VM "${def.name}": the shared folder "${sh.id}" (${sh.source}) ${st ? 'is not a folder' : 'does not exist'}`,
        'create the folder, or remove the share from the VM\'s definition');
    }
  }
  for (const [what, file, write] of need) {
    try {
      await access(file, write ? constants.R_OK | constants.W_OK : constants.R_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const problem = code === 'ENOENT' ? 'does not exist' : `cannot be ${write ? 'read and written' : 'read'} (${code})`;
      throw new HangarError('invalid-input', `cannot start VM "${def.name}": the ${what} file ${file} ${problem}`,
        `restore the file, or change the VM's definition (hangar edit / remove the device)`);
    }
  }
}

/** The VM's own UEFI variable store; recreated from the template when it went missing. */
async function ensureNvram(fw: ResolvedFirmware, ctx: SidecarStartContext): Promise<void> {
  try {
    await access(fw.vars.filename, constants.R_OK | constants.W_OK);
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new HangarError('io-error', `cannot start VM "${ctx.def.name}": its UEFI variable store ${fw.vars.filename} cannot be read and written (${(e as NodeJS.ErrnoException).code})`,
        'fix the file\'s permissions, or delete it to start with fresh UEFI settings');
    }
  }
  await copyFile(fw.varsTemplate.filename, fw.vars.filename);
  const note = `the UEFI variable store ${fw.vars.filename} was missing; recreated from ${fw.varsTemplate.filename} (UEFI settings and boot entries are back to defaults)`;
  ctx.notes.push(note);
  await ctx.log(note);
}

/**
 * QEMU creates its socket file a moment before it listens on it, so a refused connection right
 * after start is retried briefly (while the process lives).
 */
export async function connectQmp(path: string, pid: number, timeoutMs = 10_000): Promise<QmpClient> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await QmpClient.connect(path);
    } catch (e) {
      if (Date.now() > deadline || !isAlive(pid) || !/ECONNREFUSED|ENOENT/.test((e as Error).message)) throw e;
      await sleep(10);
    }
  }
}

/** How far guest memory may exceed host memory before a start warns (HANGAR_MEMORY_OVERCOMMIT, default 1.0 = not at all). */
export function overcommitRatio(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.HANGAR_MEMORY_OVERCOMMIT);
  return Number.isFinite(v) && v > 0 ? v : 1;
}

/** A warning when this start takes the running guests' memory past host memory × the ratio (the start goes on). */
export async function overcommitNote(def: VmDefinition, othersMiB: number, meminfo = '/proc/meminfo', env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  const text = await readFile(meminfo, 'utf8').catch(() => '');
  const kib = Number(/^MemTotal:\s+(\d+) kB/m.exec(text)?.[1] ?? 0);
  if (!kib) return null;
  const hostMiB = Math.floor(kib / 1024);
  const ratio = overcommitRatio(env);
  const total = othersMiB + def.memoryMiB;
  if (total <= hostMiB * ratio) return null;
  return `memory overcommitted: with this VM, running guests get ${total} MiB of this host's ${hostMiB} MiB (${(total / hostMiB).toFixed(2)}x, above the ${ratio}x allowed by HANGAR_MEMORY_OVERCOMMIT); `
    + 'guests may swap or be killed under pressure: give them less memory, use the balloon or KSM, or raise the ratio on purpose';
}
