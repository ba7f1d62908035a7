// NICs: a network back end (user-mode slirp inside QEMU, a passt process reached through QEMU's
// stream netdev, a tap device on a host bridge made by qemu-bridge-helper, a tap device that
// already exists, optionally with vhost-net, or a vhost-user-net switch on a unix socket) and an
// emulated or virtio front end.
import { HangarError } from '../../../common/errors.ts';
import type { NicDefinition, NicModel, MachineType } from '../../../common/model.ts';
import type { PropObject } from '../qemu-option.ts';
import { emptyParts } from './types.ts';
import type { BuildContext, DeviceParts } from './types.ts';

const pciDriver: Record<NicModel, string> = {
  'virtio-net': 'virtio-net-pci',
  e1000: 'e1000',
  rtl8139: 'rtl8139',
};

export function nicDriver(model: NicModel, machine: MachineType): string {
  return machine === 'microvm' && model === 'virtio-net' ? 'virtio-net-device' : pciDriver[model];
}

export function netdevId(nic: NicDefinition): string {
  return `${nic.id}-net`;
}

/** The chardev a vhost-user NIC's netdev speaks the vhost-user protocol over. */
export function vhostUserNetChardevId(nic: NicDefinition): string {
  return `${nic.id}-vhu`;
}

/** Whether the NIC's data path is in the host kernel (vhost-net). */
export function usesVhostNet(nic: NicDefinition): boolean {
  return (nic.network.type === 'bridge' || nic.network.type === 'tap') && nic.network.vhost;
}

/** iPXE option ROM names (from ipxe-qemu) per NIC model; QEMU finds them in its data dirs. */
const romBase: Record<NicModel, string> = {
  'virtio-net': 'virtio',
  e1000: 'e1000',
  rtl8139: 'rtl8139',
};

/**
 * The iPXE ROM QEMU loads for a NIC by default: efi-*.rom, which holds both the legacy PXE image
 * SeaBIOS runs and the EFI driver OVMF runs. Hangar leaves romfile at that default: with an
 * explicit pxe-virtio.rom SeaBIOS never ran it (the ROM's PCI id, 1af4:1041, is only patched to
 * the device's 1af4:1000 for the default ROM) and the guest saw "No bootable device".
 */
export function nicBootRom(model: NicModel): string {
  return `efi-${romBase[model]}.rom`;
}

/**
 * The multicast group of an isolated network: a stable hash of its name into the
 * organization-local scope 239.255.0.0/16 and a port in 20000-59999.
 */
export function isolatedGroup(network: string): string {
  let h = 2166136261; // FNV-1a, 32 bits
  for (const ch of Buffer.from(network, 'utf8')) h = Math.imul(h ^ ch, 16777619) >>> 0;
  return `239.255.${(h >>> 8) & 0xff}.${h & 0xff}:${20000 + ((h >>> 16) % 40000)}`;
}

/** The -netdev object of a NIC's back end. */
export function netdevProps(nic: NicDefinition, ctx: BuildContext): PropObject {
  const net = nic.network;
  if (net.type === 'passt') {
    // QEMU >= 7.2 talks to passt over its unix socket (passt serves, QEMU connects); the port
    // forwards are passt's own (its -t/-u options), not QEMU's.
    const path = ctx.passtSockets?.get(nic.id);
    if (!path) throw new HangarError('internal', `NIC "${nic.id}" uses passt but no passt socket was given`);
    return { type: 'stream', id: netdevId(nic), server: false, addr: { type: 'unix', path } };
  }
  if (net.type === 'isolated') {
    // Multicast on 127.0.0.1 (IP_MULTICAST_IF): frames loop back to the group's members on this host and never leave it.
    return { type: 'socket', id: netdevId(nic), mcast: isolatedGroup(net.network), localaddr: '127.0.0.1' };
  }
  if (net.type === 'bridge') {
    // QEMU runs the helper, which creates a tap device, adds it to the bridge (if its ACL allows)
    // and passes the fd back; the tap goes away when QEMU closes it. The helper Hangar checked is
    // named explicitly rather than QEMU's compiled-in default.
    if (!ctx.bridgeHelper) throw new HangarError('internal', `NIC "${nic.id}" uses bridge ${net.bridge} but no bridge helper was given`);
    // The bridge netdev has no vhost switch; a tap netdev running the same helper does (and
    // passes it --use-vnet, as the bridge netdev would).
    if (net.vhost) return { type: 'tap', id: netdevId(nic), helper: ctx.bridgeHelper, br: net.bridge, vhost: true };
    return { type: 'bridge', id: netdevId(nic), br: net.bridge, helper: ctx.bridgeHelper };
  }
  if (net.type === 'tap') {
    // A tap made beforehand: QEMU opens it by name and runs no ifup/ifdown scripts.
    return { type: 'tap', id: netdevId(nic), ifname: net.ifname, script: 'no', downscript: 'no', vhost: net.vhost || undefined };
  }
  if (net.type === 'vhost-user') return { type: 'vhost-user', id: netdevId(nic), chardev: vhostUserNetChardevId(nic) };
  const hostfwd = net.portForwards.map((f) => ({
    str: `${f.protocol}:${f.hostAddress}:${f.hostPort}-:${f.guestPort}`,
  }));
  return {
    type: 'user', id: netdevId(nic), hostfwd: hostfwd.length ? hostfwd : undefined,
    tftp: net.tftp, bootfile: net.bootfile,
  };
}

export function nicParts(nic: NicDefinition, ctx: BuildContext): DeviceParts {
  const parts = emptyParts();
  if (nic.network.type === 'vhost-user') {
    // server: QEMU listens and waits (at start) for the switch to connect; else QEMU connects.
    const server = nic.network.server ? { server: true, wait: false } : {};
    parts.chardevs.push({ opt: '-chardev', implied: 'socket', keyval: { id: vhostUserNetChardevId(nic), path: nic.network.socket, ...server } });
  }
  parts.netdevs.push(netdevProps(nic, ctx));
  const bootindex = ctx.bootIndex.get(nic.id);
  const driver = nicDriver(nic.model, ctx.machine);
  // QEMU 7.2 under TCG segfaults in vhost_net_start (msix_set_vector_notifiers) when a vhost or
  // vhost-user NIC has MSI-X vectors; with none the guest uses INTx and the data path works.
  const vhostPath = usesVhostNet(nic) || nic.network.type === 'vhost-user';
  const vectors = vhostPath && ctx.accel === 'tcg' && driver === 'virtio-net-pci' ? 0 : undefined;
  parts.devices.push({
    driver,
    id: nic.id,
    netdev: netdevId(nic),
    mac: nic.mac,
    bootindex,
    vectors,
  });
  return parts;
}
