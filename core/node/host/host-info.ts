// What the New VM wizard needs to know about the host: its limits (CPUs, memory, free space where
// the disks go) and which choices can really run here (firmware, TPM, NIC back ends, network boot,
// cloud-init), each unavailable one with the reason and the fix. Roots are injectable for tests.
import { statfs } from 'node:fs/promises';
import { availableParallelism, homedir, totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { HostInfo, HostOption } from '../../common/api.ts';
import type { HangarError } from '../../common/errors.ts';
import type { FirmwareType } from '../../common/model.ts';
import { DEB_PACKAGES, findBinary as defaultFindBinary } from './binaries.ts';
import { usableBridges } from './bridges.ts';
import type { BridgeHostOptions } from './bridges.ts';
import { resolveFirmware } from './firmware.ts';
import { findNicRom } from './nic-roms.ts';

export interface HostInfoOptions {
  dataDir: string;
  /** Default /sys (bridges are /sys/class/net/NAME/bridge). */
  sysRoot?: string;
  /** The bridge helper's ACL file, helper folders and user (see BridgeHostOptions); sysRoot above wins. */
  bridge?: Omit<BridgeHostOptions, 'sysRoot'>;
  findBinary?: (name: string) => string | null;
  firmwareDirs?: readonly string[];
  romDirs?: readonly string[];
}

function tool(find: (n: string) => string | null, name: string, what: string): HostOption {
  if (find(name)) return { available: true };
  return { available: false, reason: `${name} is not installed (${what})`, fix: `sudo apt-get install -y ${DEB_PACKAGES[name] ?? name}` };
}

function firmwareOption(type: FirmwareType, dirs: readonly string[] | undefined): HostOption {
  if (type === 'bios') return { available: true }; // SeaBIOS ships inside qemu-system-x86
  try {
    resolveFirmware({ firmware: type, machine: 'q35' }, '/nonexistent', dirs ? { dirs } : {});
    return { available: true };
  } catch (e) {
    const err = e as HangarError;
    return { available: false, reason: err.message, ...(err.hint ? { fix: err.hint } : {}) };
  }
}

/** Free bytes on the file system that holds `dir` (or its nearest existing parent). */
export async function freeBytesAt(dir: string): Promise<number> {
  let cur = resolve(dir);
  for (;;) {
    try {
      const s = await statfs(cur);
      return Number(s.bavail) * Number(s.bsize);
    } catch {
      const up = dirname(cur);
      if (up === cur) return 0;
      cur = up;
    }
  }
}

/** Moved to bridges.ts; still exported here for callers of host-info. */
export { listBridges } from './bridges.ts';

export async function hostInfo(opts: HostInfoOptions): Promise<HostInfo> {
  const find = opts.findBinary ?? ((n: string) => defaultFindBinary(n));
  // Bridged NICs: the bridges this user may put a VM on (tap by qemu-bridge-helper, allowed by its ACL).
  const bridge = usableBridges({ ...opts.bridge, ...(opts.sysRoot === undefined ? {} : { sysRoot: opts.sysRoot }) });
  const xorriso = tool(find, 'xorriso', 'it builds the cloud-init seed');
  const openssl = tool(find, 'openssl', 'it hashes the cloud-init password');
  const pxeRom = findNicRom('efi-virtio.rom', opts.romDirs);
  return {
    cpus: availableParallelism(),
    memoryBytes: totalmem(),
    dataDir: opts.dataDir,
    freeBytes: await freeBytesAt(opts.dataDir),
    homeDir: homedir(),
    firmware: {
      bios: firmwareOption('bios', opts.firmwareDirs),
      uefi: firmwareOption('uefi', opts.firmwareDirs),
      'uefi-secure': firmwareOption('uefi-secure', opts.firmwareDirs),
    },
    tpm: tool(find, 'swtpm', 'it emulates the TPM 2.0'),
    network: {
      user: { available: true },
      passt: tool(find, 'passt', 'rootless user-mode networking'),
      bridge,
    },
    pxe: pxeRom ? { available: true } : { available: false, reason: 'the iPXE network boot ROMs are not installed', fix: 'sudo apt-get install -y ipxe-qemu' },
    cloudInit: !xorriso.available ? xorriso : openssl,
  };
}
