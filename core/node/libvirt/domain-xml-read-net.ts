// libvirt <interface> elements -> Hangar NICs. user (slirp or passt), bridge, ethernet (an existing
// tap) and vhostuser have Hangar back ends; a libvirt network becomes user-mode NAT (the guest
// keeps its way out, Hangar joins no libvirt network); the rest is listed as not carried.
import { randomBytes } from 'node:crypto';
import { NIC_MODEL_FROM_LIBVIRT, attr, child, list } from './domain-xml-common.ts';
import type { XNode } from './domain-xml-common.ts';
import { deviceIdOf } from './domain-xml-read-storage.ts';
import type { BootMark } from './domain-xml-read-storage.ts';

export interface NetResult {
  nics: Record<string, unknown>[];
  boot: BootMark[];
  notCarried: string[];
}

const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

/** A locally administered MAC in QEMU's 52:54:00 range, for an interface the XML gave none. */
function newMac(): string {
  return `52:54:00:${[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
}

function portForwards(iface: XNode, label: string, notCarried: string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const pf of list(iface.portForward)) {
    const protocol = attr(pf, 'proto') === 'udp' ? 'udp' : 'tcp';
    // No address: passt binds every host address, which Hangar writes as the empty address.
    const hostAddress = attr(pf, 'address') ?? '';
    if (attr(pf, 'dev') !== undefined) notCarried.push(`${label}: a port forward bound to host interface ${attr(pf, 'dev')!} (Hangar binds to an address)`);
    for (const r of list(pf.range)) {
      if (attr(r, 'exclude') === 'yes') {
        notCarried.push(`${label}: an excluded port range (${attr(r, 'start')!}) is not supported`);
        continue;
      }
      const start = Number(attr(r, 'start'));
      const end = Number(attr(r, 'end') ?? start);
      const to = Number(attr(r, 'to') ?? start);
      for (let p = start; p <= end; p++) out.push({ protocol, hostAddress, hostPort: p, guestPort: to + (p - start) });
    }
  }
  return out;
}

export function readNics(devices: XNode, taken: Set<string>): NetResult {
  const out: NetResult = { nics: [], boot: [], notCarried: [] };
  list(devices.interface).forEach((iface, index) => {
    const type = attr(iface, 'type') ?? '?';
    const source = child(iface, 'source');
    const macText = attr(child(iface, 'mac'), 'address')?.toLowerCase();
    const label = `interface ${index}${macText ? ` (${macText})` : ''}`;
    const modelName = attr(child(iface, 'model'), 'type');
    // No model: libvirt's default for x86 guests is rtl8139.
    let model = modelName === undefined ? 'rtl8139' : NIC_MODEL_FROM_LIBVIRT[modelName];
    if (model === undefined) {
      if (modelName === 'e1000e') {
        model = 'e1000';
        out.notCarried.push(`${label}: NIC model e1000e becomes e1000 (Hangar has virtio, e1000 and rtl8139)`);
      } else {
        out.notCarried.push(`${label}: NIC model ${modelName!} is not supported (Hangar has virtio, e1000 and rtl8139)`);
        return;
      }
    }
    const vhost = attr(child(iface, 'driver'), 'name') === 'vhost';
    let network: Record<string, unknown>;
    switch (type) {
      case 'user':
        network = attr(child(iface, 'backend'), 'type') === 'passt'
          ? { type: 'passt', portForwards: portForwards(iface, label, out.notCarried) }
          : { type: 'user', portForwards: [] };
        break;
      case 'network':
        network = { type: 'user', portForwards: [] };
        out.notCarried.push(`${label}: libvirt network '${attr(source, 'network') ?? '?'}' becomes user-mode NAT (Hangar does not join libvirt networks; the guest is not reachable from the host)`);
        break;
      case 'bridge':
        network = { type: 'bridge', bridge: attr(source, 'bridge'), vhost: vhost && model === 'virtio-net' };
        break;
      case 'ethernet': {
        const dev = attr(child(iface, 'target'), 'dev');
        if (dev === undefined || attr(child(iface, 'target'), 'managed') !== 'no') {
          out.notCarried.push(`${label}: type=ethernet with a tap libvirt creates is not supported (Hangar uses an existing tap: <target dev='tap0' managed='no'/>)`);
          return;
        }
        network = { type: 'tap', ifname: dev, vhost: vhost && model === 'virtio-net' };
        break;
      }
      case 'vhostuser':
        if (attr(source, 'type') !== 'unix' || attr(source, 'path') === undefined) {
          out.notCarried.push(`${label}: vhost-user without a unix socket path is not supported`);
          return;
        }
        network = { type: 'vhost-user', socket: attr(source, 'path'), server: attr(source, 'mode') === 'server' };
        break;
      default: {
        const why: Record<string, string> = {
          direct: 'type=direct (macvtap) is not supported',
          hostdev: 'type=hostdev (a passed-through NIC) is not supported; add it as a host PCI device',
          mcast: 'type=mcast is not supported (Hangar\'s isolated networks are its own multicast groups)',
        };
        out.notCarried.push(`${label}: ${why[type] ?? `type=${type} is not supported`}`);
        return;
      }
    }
    let mac = macText;
    if (mac === undefined || !MAC_RE.test(mac) || (parseInt(mac.slice(0, 2), 16) & 1) === 1) {
      mac = newMac();
      out.notCarried.push(`${label}: ${macText === undefined ? 'no MAC address in the XML' : `MAC ${macText} is not a unicast MAC`}; it gets ${mac}`);
    }
    const id = deviceIdOf(iface, `net${out.nics.length}`, taken, false);
    out.nics.push({ id, model, mac, network });
    const bootOrder = Number(attr(child(iface, 'boot'), 'order'));
    if (bootOrder > 0) out.boot.push({ order: bootOrder, kind: 'network' });
  });
  return out;
}
