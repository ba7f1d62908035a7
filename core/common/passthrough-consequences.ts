// What giving a VM host devices costs it, in words: shown by `hangar show` and beside the
// Devices tab's host-device editors. Pure TS.
import type { MemlockInfo } from './host-devices.ts';
import type { VmDefinition } from './model.ts';

const MIB = 1024 * 1024;

/** What a VFIO guest may lock: its memory plus 1 GiB for QEMU's own mappings (libvirt's rule). */
export const MEMLOCK_HEADROOM_MIB = 1024;

export function pinnedBytes(memoryMiB: number): number {
  return (memoryMiB + MEMLOCK_HEADROOM_MIB) * MIB;
}

/** Whether the locked-memory limit lets this much guest memory be pinned. */
export function memlockFits(memoryMiB: number, memlock: MemlockInfo): boolean {
  return memlock.exempt || memlock.limitBytes === null || memlock.limitBytes >= pinnedBytes(memoryMiB);
}

/** The consequences of a VM's host devices; [] when it has none. */
export function passthroughConsequences(def: Pick<VmDefinition, 'hostPci' | 'mdevs' | 'hostUsb' | 'memoryMiB'>, memlock?: MemlockInfo): string[] {
  const vfio = def.hostPci.length + def.mdevs.length;
  const out: string[] = [];
  if (vfio + def.hostUsb.length > 0) {
    out.push('live migration and snapshots that save guest memory are blocked: the device state lives in hardware QEMU cannot copy');
  }
  if (vfio > 0) {
    const fits = memlock ? memlockFits(def.memoryMiB, memlock) : undefined;
    const limit = memlock?.limitBytes === null ? 'unlimited' : memlock ? `${Math.floor(memlock.limitBytes / MIB)} MiB` : undefined;
    out.push(`all ${def.memoryMiB} MiB of guest memory are pinned in host RAM while it runs (no balloon, no swap, no overcommit)`
      + (memlock === undefined ? '' : memlock.exempt ? '; the locked-memory limit does not apply (root or CAP_IPC_LOCK)'
        : fits ? `; the locked-memory limit (${limit}) allows it`
          : `; the locked-memory limit (${limit}) is too small: raise it to at least ${Math.ceil(pinnedBytes(def.memoryMiB) / MIB)} MiB (ulimit -l, memlock in /etc/security/limits.conf, or LimitMEMLOCK= for a service)`));
  }
  if (def.hostPci.length) out.push('each PCI device (and the rest of its IOMMU group) leaves the host while the VM runs: it is bound to vfio-pci at start and given back at stop');
  if (def.hostUsb.length) out.push('each USB device is detached from the host while the guest has it');
  return out;
}
