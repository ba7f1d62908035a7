// The one ordered command-line builder: VM definition -> structured options -> argv.
import { cpuOptions } from './devices/cpu.ts';
import { memoryParts } from './devices/memory.ts';
import { join } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import type { VmDefinition } from '../../common/model.ts';
import type { VmRuntimePaths } from '../paths.ts';
import { serialize } from './qemu-option.ts';
import type { QemuOption } from './qemu-option.ts';
import { BusAllocator } from './devices/buses.ts';
import { cdromParts } from './devices/cdrom.ts';
import { diskParts } from './devices/disk.ts';
import { firmwareParts } from './devices/firmware.ts';
import { nicParts } from './devices/nic.ts';
import { serialParts } from './devices/serial.ts';
import { tpmParts } from './devices/tpm.ts';
import { balloonParts } from './devices/balloon.ts';
import { inputParts } from './devices/input.ts';
import { rngParts } from './devices/rng.ts';
import { shareParts } from './devices/share.ts';
import { soundParts } from './devices/sound.ts';
import { usbParts } from './devices/usb.ts';
import { videoParts } from './devices/video.ts';
import { watchdogParts } from './devices/watchdog.ts';
import { channelParts, virtioSerialParts } from './devices/channel.ts';
import { displayNeedsVirtioSerial, displayParts } from './devices/display.ts';
import { serialPortParts } from './devices/serial-port.ts';
import { vsockParts } from './devices/vsock.ts';
import { hostPciParts } from './devices/host-pci.ts';
import { mdevParts } from './devices/mdev.ts';
import { usbHostParts } from './devices/usb-host.ts';
import { emptyParts, mergeParts } from './devices/types.ts';
import { hotplugSlotControllers } from './devices/hotplug-slots.ts';
import type { BuildContext } from './devices/types.ts';
import type { ResolvedFirmware } from '../host/firmware.ts';
import { hardeningOptions } from '../sandbox/qemu-hardening.ts';
import type { QemuHardening } from '../sandbox/qemu-hardening.ts';

export const QMP_CHARDEV_ID = 'ch_qmp';

export interface ArgvContext {
  accel: 'kvm' | 'tcg';
  /** passtSocket is required when the VM has a passt NIC. */
  paths: Pick<VmRuntimePaths, 'qmpSocket' | 'serialSocket' | 'pidfile'> & Partial<Pick<VmRuntimePaths, 'passtSocket' | 'qsdSocket' | 'channelSocket' | 'serialPortSocket' | 'virtiofsdSocket' | 'vncSocket'>>;
  /** The VM's folder: serial ports with output "log" write <vmDir>/logs/<id>.log. */
  vmDir?: string;
  /** Resolved from the host's firmware descriptors (resolveFirmware); required unless firmware is bios. */
  firmware?: ResolvedFirmware | null;
  /** The VM's swtpm control socket; required when the VM has a TPM. */
  swtpmSocket?: string;
  /** The qemu-bridge-helper QEMU runs (findBridgeHelper / checkBridge); required when the VM has a bridge NIC. */
  bridgeHelper?: string;
  /** Sandbox, deprecation policy and user of QEMU (qemuHardening); none when absent. */
  hardening?: QemuHardening;
  /** Restoring a saved state: QEMU waits for its migration stream (-incoming defer, then migrate-incoming). */
  incoming?: boolean;
}

/** Boot priorities from boot.order: every device of the first kind, then the next kind... */
export function bootIndexes(def: VmDefinition): Map<string, number> {
  const map = new Map<string, number>();
  if (def.boot.kernel) return map; // the kernel is loaded directly; firmware boot order is moot
  let next = 1;
  for (const kind of def.boot.order) {
    const devs = kind === 'disk' ? def.disks : kind === 'cdrom' ? def.cdroms.filter((c) => c.file) : def.nics;
    for (const d of devs) map.set(d.id, next++);
  }
  return map;
}

/** Each passt NIC's socket, by NIC id (named by the NIC's position, see VmRuntimePaths.passtSocket). */
function passtSockets(def: VmDefinition, ctx: ArgvContext): Map<string, string> {
  const map = new Map<string, string>();
  def.nics.forEach((n, i) => {
    if (n.network.type !== 'passt') return;
    if (!ctx.paths.passtSocket) throw new HangarError('internal', `VM "${def.name}" has a passt NIC but no passt socket paths were given`);
    map.set(n.id, ctx.paths.passtSocket(i));
  });
  return map;
}

/** Whether the VM has a device on USB: a USB input or a host USB device. */
export function hasUsbDevices(def: Pick<VmDefinition, 'inputs' | 'hostUsb'>): boolean {
  return def.inputs.some((i) => i.bus === 'usb') || def.hostUsb.length > 0;
}

/** The VM's USB controller: the one it names, or qemu-xhci when a USB device needs one. */
export function usbControllerOf(def: VmDefinition): VmDefinition['usb'] {
  if (def.usb) return def.usb;
  return hasUsbDevices(def) ? { model: 'qemu-xhci' } : undefined;
}

/** Each vhost-user-blk disk's storage daemon socket, by disk id (named by the disk's position). */
function qsdSockets(def: VmDefinition, ctx: ArgvContext): Map<string, string> {
  const map = new Map<string, string>();
  def.disks.forEach((d, i) => {
    if (d.bus !== 'vhost-user-blk') return;
    if (!ctx.paths.qsdSocket) throw new HangarError('internal', `VM "${def.name}" has a vhost-user-blk disk but no storage daemon socket paths were given`);
    map.set(d.id, ctx.paths.qsdSocket(i));
  });
  return map;
}

/** Each virtiofs share's virtiofsd socket, by share id (named by the share's position). */
function virtiofsSockets(def: VmDefinition, ctx: ArgvContext): Map<string, string> {
  const map = new Map<string, string>();
  def.shares.forEach((s, i) => {
    if (s.driver !== 'virtiofs') return;
    if (!ctx.paths.virtiofsdSocket) throw new HangarError('internal', `VM "${def.name}" has a virtiofs share but no virtiofsd socket paths were given`);
    map.set(s.id, ctx.paths.virtiofsdSocket(i));
  });
  return map;
}

/** vhost-user back ends read and write guest memory themselves: it must be shareable (memfd). */
export function needsSharedMemory(def: VmDefinition): boolean {
  return def.disks.some((d) => d.bus === 'vhost-user-blk')
    || def.nics.some((n) => n.network.type === 'vhost-user')
    || def.shares.some((s) => s.driver === 'virtiofs');
}

/** Where each extra serial port's output goes (a log in the VM folder, or a runtime socket). */
function serialPortTarget(def: VmDefinition, ctx: ArgvContext, index: number): { logFile?: string; socket?: string } {
  const port = def.serialPorts[index]!;
  if (port.output === 'log') {
    if (!ctx.vmDir) throw new HangarError('internal', `VM "${def.name}" has a serial port logging to a file but no VM folder was given`);
    return { logFile: join(ctx.vmDir, 'logs', `${port.id}.log`) };
  }
  if (!ctx.paths.serialPortSocket) throw new HangarError('internal', `VM "${def.name}" has a serial port on a socket but no socket paths were given`);
  return { socket: ctx.paths.serialPortSocket(index) };
}

export function buildOptions(def: VmDefinition, ctx: ArgvContext): QemuOption[] {
  const o: QemuOption[] = [];
  o.push({ opt: '-name', keyval: { guest: def.name, 'debug-threads': true } });
  o.push({ opt: '-uuid', value: def.id });
  if (def.firmware !== 'bios' && !ctx.firmware) {
    throw new HangarError('internal', `VM "${def.name}" uses ${def.firmware} firmware but no firmware was resolved for it`);
  }
  const fw = def.firmware !== 'bios' && ctx.firmware ? firmwareParts(ctx.firmware) : null;
  const shared = needsSharedMemory(def);
  const memory = memoryParts(def, shared);
  o.push({ opt: '-machine', implied: def.machine, keyval: { ...fw?.machine, ...memory.machine } });
  o.push({ opt: '-accel', implied: ctx.accel, keyval: {} });
  o.push(...cpuOptions(def));
  o.push(...memory.options);
  // Start paused with no implicit devices and no host config; -no-shutdown keeps QEMU alive
  // after a guest poweroff so the core sees it (and can turn it into a reboot).
  o.push({ opt: '-nodefaults' }, { opt: '-no-user-config' }, { opt: '-no-shutdown' }, { opt: '-S' });
  if (ctx.incoming) o.push({ opt: '-incoming', value: 'defer' });
  o.push({ opt: '-display', value: 'none' });
  o.push({ opt: '-msg', keyval: { timestamp: true } });
  o.push(...hardeningOptions(ctx.hardening));
  o.push({ opt: '-chardev', implied: 'socket', keyval: { id: QMP_CHARDEV_ID, path: ctx.paths.qmpSocket, server: true, wait: false } });
  o.push({ opt: '-mon', keyval: { chardev: QMP_CHARDEV_ID, mode: 'control' } });
  o.push({ opt: '-pidfile', value: ctx.paths.pidfile });

  if (def.boot.kernel) {
    o.push({ opt: '-kernel', value: def.boot.kernel.kernel });
    if (def.boot.kernel.initrd) o.push({ opt: '-initrd', value: def.boot.kernel.initrd });
    if (def.boot.kernel.append) o.push({ opt: '-append', value: def.boot.kernel.append });
  } else if (def.machine !== 'microvm') {
    // Only devices given a bootindex may boot: no surprise PXE attempts.
    o.push({ opt: '-boot', keyval: { strict: true } });
  }

  const bctx: BuildContext = {
    machine: def.machine, accel: ctx.accel, buses: new BusAllocator(def.machine), bootIndex: bootIndexes(def),
    passtSockets: passtSockets(def, ctx), qsdSockets: qsdSockets(def, ctx), virtiofsSockets: virtiofsSockets(def, ctx),
  };
  if (ctx.bridgeHelper) bctx.bridgeHelper = ctx.bridgeHelper;
  const parts = emptyParts();
  if (def.serial.enabled) mergeParts(parts, serialParts(ctx.paths.serialSocket));
  for (const d of def.disks) mergeParts(parts, diskParts(d, bctx));
  for (const c of def.cdroms) mergeParts(parts, cdromParts(c, bctx));
  for (const n of def.nics) mergeParts(parts, nicParts(n, bctx));
  if (def.tpm) {
    if (!ctx.swtpmSocket) throw new HangarError('internal', `VM "${def.name}" has a TPM but no swtpm socket was given`);
    mergeParts(parts, tpmParts(def.tpm, ctx.swtpmSocket));
  }
  const usb = usbControllerOf(def);
  if (usb) mergeParts(parts, usbParts(usb));
  for (const i of def.inputs) mergeParts(parts, inputParts(i, def.machine));
  for (const u of def.hostUsb) mergeParts(parts, usbHostParts(u));
  mergeParts(parts, videoParts(def.video));
  mergeParts(parts, displayParts(def.video, def.machine, ctx.paths.vncSocket));
  if (def.sound) mergeParts(parts, soundParts(def.sound, def.machine));
  if (def.watchdog) mergeParts(parts, watchdogParts(def.watchdog));
  if (def.rng) mergeParts(parts, rngParts(def.rng, def.machine));
  if (def.balloon) mergeParts(parts, balloonParts(def.balloon, def.machine));
  parts.devices.push(...memory.devices);
  for (const sh of def.shares) mergeParts(parts, shareParts(sh, bctx));
  def.serialPorts.forEach((p, i) => mergeParts(parts, serialPortParts(p, i, serialPortTarget(def, ctx, i))));
  if (def.channels.length || displayNeedsVirtioSerial(def.video, def.machine)) mergeParts(parts, virtioSerialParts(def.machine));
  if (def.channels.length) {
    const socketOf = ctx.paths.channelSocket;
    if (!socketOf) throw new HangarError('internal', `VM "${def.name}" has channels but no channel socket paths were given`);
    mergeParts(parts, channelParts(def.channels, socketOf));
  }
  if (def.vsock) mergeParts(parts, vsockParts(def.vsock, def.machine));
  // VFIO devices last, each in its own root port on q35 (chassis numbers apart from the hotplug slots').
  def.hostPci.forEach((p, i) => mergeParts(parts, hostPciParts(p, i, def.machine)));
  def.mdevs.forEach((m, i) => mergeParts(parts, mdevParts(m, def.hostPci.length + i, def.machine)));

  if (fw) o.push(...fw.globals);
  for (const b of fw?.blockdevs ?? []) o.push({ opt: '-blockdev', json: b });
  o.push(...parts.chardevs);
  o.push(...parts.options);
  for (const ob of parts.objects) o.push({ opt: '-object', json: ob });
  for (const c of parts.controllers) o.push({ opt: '-device', json: c });
  for (const c of hotplugSlotControllers(def.machine, def.hotplugSlots)) o.push({ opt: '-device', json: c });
  for (const b of parts.blockdevs) o.push({ opt: '-blockdev', json: b });
  for (const n of parts.netdevs) o.push({ opt: '-netdev', json: n });
  for (const d of parts.devices) o.push({ opt: '-device', json: d });
  return o;
}

/** The argv after the binary name. */
export function buildArgv(def: VmDefinition, ctx: ArgvContext): string[] {
  return serialize(buildOptions(def, ctx));
}
