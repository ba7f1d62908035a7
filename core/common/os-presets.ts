// Defaults for a new VM of a given guest OS: used by the New VM wizard and `hangar create --os`.
// Pure TS: the OsEntry comes from osinfo-db (node side) or the built-in generic entries.
import type { OsEntry } from './os-types.ts';

export type PresetDiskBus = 'virtio-blk' | 'sata';
export type PresetNicModel = 'virtio-net' | 'e1000';
export type PresetFirmware = 'bios' | 'uefi' | 'uefi-secure';
export type PresetVideo = 'virtio-gpu' | 'vga';

export interface OsPreset {
  osId: string;
  memoryMiB: number;
  vcpus: number;
  diskBytes: number;
  diskBus: PresetDiskBus;
  nicModel: PresetNicModel;
  firmware: PresetFirmware;
  tpm: boolean;
  /** virtio-vga where the OS has a virtio-gpu driver (resizable screen), else the standard VGA every OS drives. */
  video: PresetVideo;
  /** An OS from before today's CPUID: it gets a plain named CPU model rather than host/max (cpuModelFor). */
  plainCpu: boolean;
  /** Why each non-obvious choice was made, for the wizard to show. */
  notes: string[];
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Floors so a preset is usable even where osinfo lists tiny historic minimums. */
const FLOOR = { memoryMiB: 256, vcpus: 1, diskBytes: 1 * GiB };
const FALLBACK = { memoryMiB: 1024, vcpus: 1, diskBytes: 10 * GiB };

function isWindows(os: OsEntry): boolean {
  return os.family.toLowerCase().startsWith('win') || os.id === 'generic-windows';
}

/** Windows 8 / Server 2012 (NT 6.2) and later install and run well on UEFI; older ones want BIOS. */
function prefersUefi(os: OsEntry): boolean {
  if (os.firmware.efi === false) return false;
  if (os.firmware.efi === true && os.firmware.bios === false) return true;
  if (!isWindows(os) || os.family.toLowerCase() !== 'winnt') return os.id === 'generic-windows';
  if (os.generic) return true;
  const v = Number.parseFloat(os.version ?? '');
  return os.firmware.efi === true || (Number.isFinite(v) && v >= 6.2);
}

/** osinfo-db lists virtio-gpu (1af4:1050) for the OSes that drive it. */
export function videoFor(os: Pick<OsEntry, 'virtio'> | undefined): PresetVideo {
  return os?.virtio.gpu ? 'virtio-gpu' : 'vga';
}

/**
 * OSes released before 2006 (Windows XP/2003 and older, DOS, 9x, Linux of that age) can crash or
 * refuse to boot on the many CPUID leaves and features of a modern host or QEMU's max model
 * (the reason libvirt users set a named model for them); qemu64 is what they were tested on.
 */
function wantsPlainCpu(os: OsEntry): boolean {
  const family = os.family.toLowerCase();
  if (family === 'win9x' || family === 'msdos') return true;
  return !os.generic && os.releaseDate !== undefined && os.releaseDate < '2006-01-01';
}

/** The CPU model a new VM gets: passthrough of the host's CPU under KVM (fastest), QEMU's max under TCG. */
export function cpuModelFor(p: Pick<OsPreset, 'plainCpu'>, accel: 'kvm' | 'tcg'): string {
  if (p.plainCpu) return 'qemu64';
  return accel === 'kvm' ? 'host' : 'max';
}

/** A new VM's raw definition with the CPU model cpuModelFor picks when none was given. */
export function withCpuModelDefault(raw: Record<string, unknown>, os: OsEntry | undefined, accel: 'kvm' | 'tcg'): Record<string, unknown> {
  const cpu = raw.cpu && typeof raw.cpu === 'object' ? (raw.cpu as Record<string, unknown>) : {};
  if (cpu.model !== undefined) return raw;
  const model = cpuModelFor({ plainCpu: os ? wantsPlainCpu(os) : false }, accel);
  return { ...raw, cpu: { ...cpu, model } };
}

export function presetFor(os: OsEntry): OsPreset {
  const notes: string[] = [];
  const rec = os.recommended;
  const min = os.minimum;
  // Recommended when osinfo gives it, else the minimum, never below the minimum.
  const memoryMiB = Math.max(rec.memoryMiB ?? min.memoryMiB ?? FALLBACK.memoryMiB, min.memoryMiB ?? 0, FLOOR.memoryMiB);
  // osinfo rarely recommends a CPU count; two vCPUs make a modern installer bearable.
  const vcpus = Math.max(rec.vcpus ?? Math.max(min.vcpus ?? 1, os.family === 'linux' || isWindows(os) ? 2 : 1), min.vcpus ?? 0, FLOOR.vcpus);
  const diskBytes = Math.max(rec.diskBytes ?? min.diskBytes ?? FALLBACK.diskBytes, min.diskBytes ?? 0, FLOOR.diskBytes);

  const diskBus: PresetDiskBus = os.virtio.blk ? 'virtio-blk' : 'sata';
  if (!os.virtio.blk) notes.push('disk on emulated SATA (AHCI): the guest has no built-in virtio-blk driver');
  const nicModel: PresetNicModel = os.virtio.net ? 'virtio-net' : 'e1000';
  if (!os.virtio.net) notes.push('NIC is an emulated e1000: the guest has no built-in virtio-net driver');

  const tpm = os.needsTpm;
  let firmware: PresetFirmware;
  if (os.needsTpm || os.firmware.secureBoot) {
    firmware = 'uefi-secure';
    notes.push('UEFI with Secure Boot and a TPM 2.0: required by this OS');
  } else if (prefersUefi(os) || os.firmware.bios === false) {
    firmware = 'uefi';
  } else {
    firmware = 'bios';
  }
  const plainCpu = wantsPlainCpu(os);
  if (plainCpu) notes.push('CPU model qemu64: an OS of this age can fail on the CPUID features of a modern CPU');
  return { osId: os.id, memoryMiB, vcpus, diskBytes, diskBus, nicModel, firmware, tpm, video: videoFor(os), plainCpu, notes };
}
