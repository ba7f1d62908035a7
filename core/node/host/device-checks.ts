// Start-time checks of what a VM's device back ends need from the host, run before any process
// starts: each failure names the missing piece and the fix. Device nodes are judged by the
// doctor's own checks, so `hangar doctor` and a refused start say the same thing.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { HangarError } from '../../common/errors.ts';
import type { NicDefinition, VmDefinition } from '../../common/model.ts';
import { usesVhostNet } from '../qemu/devices/nic.ts';
import { checkTun, checkVhostNet, checkVhostVsock } from './doctor.ts';
import type { DoctorCheck } from './doctor.ts';

export interface DeviceCheckOptions {
  /** Default /dev. */
  devRoot?: string;
  /** Default /sys (network interfaces are read from <sysRoot>/class/net). */
  sysRoot?: string;
}

/** "modprobe vhost_net" -> "load the vhost_net module (modprobe vhost_net)"; other fixes as they are. */
function fixPhrase(fix: string): string {
  const m = /^modprobe (\S+)$/.exec(fix);
  return m ? `load the ${m[1]} module (${fix})` : fix;
}

function refuse(def: VmDefinition, what: string, check: DoctorCheck, alternative: string): never {
  // Missing reads "/dev/vhost-net missing: load ..."; a node this user cannot open keeps the doctor's detail.
  const why = check.status === 'missing' ? `${check.label} missing: ${fixPhrase(check.fix ?? '')}` : `${check.detail}${check.fix ? ` (${check.fix})` : ''}`;
  throw new HangarError('host-missing', `cannot start VM "${def.name}": ${what}, and ${why}`, `${check.fix ? `${check.fix}, ` : ''}${alternative}`);
}

/** A tap device that exists: /sys/class/net/NAME with tun_flags (only tun/tap devices have it). */
function checkTapExists(def: VmDefinition, nic: NicDefinition, ifname: string, sysRoot: string): void {
  const dir = join(sysRoot, 'class', 'net', ifname);
  const fix = `create it once as root: ip tuntap add dev ${ifname} mode tap user ${userInfo().username} (then ip link set ${ifname} up, and add it to a bridge or give it an address)`;
  if (!statSync(dir, { throwIfNoEntry: false })) {
    throw new HangarError('host-missing', `cannot start VM "${def.name}": NIC "${nic.id}" uses the tap device ${ifname}, which does not exist`, fix);
  }
  if (!statSync(join(dir, 'tun_flags'), { throwIfNoEntry: false })) {
    throw new HangarError('invalid-input', `cannot start VM "${def.name}": NIC "${nic.id}" uses ${ifname} as a tap device, but it is not a tun/tap interface`,
      `pick a tap device, or ${fix}`);
  }
}

function checkVhostUserSocket(def: VmDefinition, nic: NicDefinition, socket: string): void {
  if (statSync(socket, { throwIfNoEntry: false })?.isSocket()) return;
  throw new HangarError('host-missing', `cannot start VM "${def.name}": NIC "${nic.id}" connects to the vhost-user socket ${socket}, which ${statSync(socket, { throwIfNoEntry: false }) ? 'is not a socket' : 'does not exist'}`,
    'start the vhost-user back end (OVS-DPDK, DPDK testpmd, snabb ...) on that socket first, or set server=on so QEMU listens and the back end connects');
}

export async function checkDeviceBackends(def: VmDefinition, opts: DeviceCheckOptions = {}): Promise<void> {
  const devRoot = opts.devRoot ?? '/dev';
  const sysRoot = opts.sysRoot ?? '/sys';
  const vhostNics = def.nics.filter(usesVhostNet);
  if (vhostNics.length) {
    const check = await checkVhostNet(devRoot);
    if (check.status !== 'ok') refuse(def, `NIC "${vhostNics[0]!.id}" has vhost on`, check, 'or turn vhost off on the NIC');
  }
  const taps = def.nics.filter((n) => n.network.type === 'tap');
  if (taps.length) {
    const check = await checkTun(devRoot);
    if (check.status !== 'ok') refuse(def, `NIC "${taps[0]!.id}" is on a tap device`, check, 'or use another network back end');
  }
  for (const nic of def.nics) {
    if (nic.network.type === 'tap') checkTapExists(def, nic, nic.network.ifname, sysRoot);
    if (nic.network.type === 'vhost-user' && !nic.network.server) checkVhostUserSocket(def, nic, nic.network.socket);
  }
  if (def.vsock) {
    const check = await checkVhostVsock(devRoot);
    if (check.status !== 'ok') refuse(def, `vsock (guest CID ${def.vsock.cid}) needs the host kernel's vhost-vsock`, check, 'or remove vsock from the VM');
  }
}
