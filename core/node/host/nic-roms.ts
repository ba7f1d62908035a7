// NIC option ROMs (iPXE, package ipxe-qemu). QEMU looks for a bare romfile name in its data
// directories (`qemu-system-x86_64 -L help`); on Debian those are /usr/share/qemu and
// /usr/lib/ipxe/qemu. Checked before start so a missing ROM is a clear host-missing error
// instead of QEMU's "failed to find romfile".
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import type { VmDefinition } from '../../common/model.ts';
import { nicBootRom } from '../qemu/devices/nic.ts';
import { bootIndexes } from '../qemu/vm-argv.ts';

export const ROM_DIRS: readonly string[] = ['/usr/share/qemu', '/usr/lib/ipxe/qemu', '/usr/share/ipxe/qemu'];

export function findNicRom(name: string, dirs: readonly string[] = ROM_DIRS): string | null {
  for (const d of dirs) if (existsSync(join(d, name))) return join(d, name);
  return null;
}

/** Throws host-missing when a bootable NIC's iPXE ROM is not installed. */
export function checkNicRoms(def: VmDefinition, dirs: readonly string[] = ROM_DIRS): void {
  if (def.machine === 'microvm') return;
  const boot = bootIndexes(def);
  for (const nic of def.nics) {
    if (!boot.has(nic.id)) continue;
    const rom = nicBootRom(nic.model);
    if (!findNicRom(rom, dirs)) {
      throw new HangarError('host-missing', `NIC "${nic.id}" is in the boot order but its network boot ROM ${rom} is not installed (looked in ${dirs.join(', ')})`,
        'install it: apt-get install ipxe-qemu — or take the network out of the boot order (--boot disk,cdrom)');
    }
  }
}
