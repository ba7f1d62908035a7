// What the New VM wizard needs to know about the host: its limits (CPUs, memory, free space where
// the disks go) and which choices can really run here (firmware, TPM, NIC back ends, network boot,
// cloud-init), each unavailable one with the reason and the fix. Roots are injectable for tests.
import { existsSync, readdirSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { availableParallelism, homedir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { HostInfo, HostOption } from '../../common/api.ts';
import type { HangarError } from '../../common/errors.ts';
import type { FirmwareType } from '../../common/model.ts';
import { DEB_PACKAGES, findBinary as defaultFindBinary } from './binaries.ts';
import { resolveFirmware } from './firmware.ts';
import { findNicRom } from './nic-roms.ts';

export interface HostInfoOptions {
  dataDir: string;
  /** Default /sys (bridges are /sys/class/net/NAME/bridge). */
  sysRoot?: string;
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

/** Host bridges (Linux bridge devices), by name. */
export function listBridges(sysRoot = '/sys'): string[] {
  const net = join(sysRoot, 'class', 'net');
  let names: string[];
  try {
    names = readdirSync(net);
  } catch {
    return [];
  }
  return names.filter((n) => existsSync(join(net, n, 'bridge'))).sort();
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

export async function hostInfo(opts: HostInfoOptions): Promise<HostInfo> {
  const find = opts.findBinary ?? ((n: string) => defaultFindBinary(n));
  const bridges = listBridges(opts.sysRoot);
  // Bridged NICs (tap via qemu-bridge-helper, whose ACL is /etc/qemu/bridge.conf) arrive with the
  // Devices tab's network back ends; the wizard shows the option with the reason until then.
  const bridge: HostOption = bridges.length
    ? { available: false, reason: `bridged NICs (${bridges.join(', ')} found) are not offered by this wizard yet`, fix: 'use NAT or passt now; bridged networking comes with the Devices tab' }
    : { available: false, reason: 'this host has no network bridge', fix: 'create one (e.g. nmcli con add type bridge ifname br0), or use NAT or passt' };
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
      bridge: { ...bridge, bridges },
    },
    pxe: pxeRom ? { available: true } : { available: false, reason: 'the iPXE network boot ROMs are not installed', fix: 'sudo apt-get install -y ipxe-qemu' },
    cloudInit: !xorriso.available ? xorriso : openssl,
  };
}
