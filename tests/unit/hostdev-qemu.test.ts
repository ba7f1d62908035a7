// Host devices on the QEMU side (issue 6): vfio-pci for host PCI devices / VFs and mdevs (own root
// port on q35 with chassis numbers apart from the hotplug slots', pci.0 on pc, refused on microvm),
// usb-host by vendor:product or bus + port (qemu-xhci added for it), the definition rules, the
// device rows, and what a running VM takes live.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDefinition } from '../../core/common/definition.ts';
import { deviceRows } from '../../core/common/device-rows.ts';
import type { HangarError } from '../../core/common/errors.ts';
import type { VmDefinition } from '../../core/common/model.ts';
import { hostPciParts, VFIO_CHASSIS_BASE, vfioPortId } from '../../core/node/qemu/devices/host-pci.ts';
import { mdevParts } from '../../core/node/qemu/devices/mdev.ts';
import { usbHostDevice } from '../../core/node/qemu/devices/usb-host.ts';
import { buildArgv, hasUsbDevices, usbControllerOf } from '../../core/node/qemu/vm-argv.ts';
import { plugBlocker, unplugBlocker, VFIO_PLUG_REASON } from '../../core/node/service/hotplug.ts';

const base = { version: 1, id: '0b6c1c2e-8f0a-4c59-9d3e-8a6f1d1e2a3b', name: 'vm' };
const def = (extra: Record<string, unknown> = {}): VmDefinition => parseDefinition({ ...base, ...extra });
const paths = { qmpSocket: '/r/q', serialSocket: '/r/s', pidfile: '/r/p' };
const devices = (d: VmDefinition): Array<Record<string, unknown>> => {
  const argv = buildArgv(d, { accel: 'tcg', paths });
  return argv.flatMap((a, i) => (a === '-device' ? [JSON.parse(argv[i + 1]!) as Record<string, unknown>] : []));
};
const UUID = '8e2f3a1c-5b6d-4e7f-9a0b-1c2d3e4f5a6b';

test('vfio-pci on q35: each device in its own root port, chassis from 100 on (hotplug slots keep 1..N); rombar 0 when the ROM is off', () => {
  const d = def({
    hostPci: [{ id: 'gpu0', address: '0000:01:00.0', rom: false }, { id: 'gpu1', address: '0000:01:00.1' }],
    mdevs: [{ id: 'vgpu0', uuid: UUID, parent: '0000:00:02.0', type: 'i915-GVTg_V5_4' }],
  });
  const devs = devices(d);
  const ports = devs.filter((x) => x.driver === 'pcie-root-port');
  assert.deepEqual(ports.map((p) => `${String(p.id)}:${String(p.chassis)}`), ['rp-gpu0:100', 'rp-gpu1:101', 'rp-vgpu0:102', 'hp0:1', 'hp1:2', 'hp2:3', 'hp3:4']);
  assert.equal(new Set(ports.map((p) => p.chassis)).size, ports.length, 'every root port is its own chassis');
  assert.deepEqual(devs.filter((x) => x.driver === 'vfio-pci'), [
    { driver: 'vfio-pci', id: 'gpu0', host: '0000:01:00.0', bus: 'rp-gpu0', rombar: 0 },
    { driver: 'vfio-pci', id: 'gpu1', host: '0000:01:00.1', bus: 'rp-gpu1' },
    { driver: 'vfio-pci', id: 'vgpu0', sysfsdev: `/sys/bus/mdev/devices/${UUID}`, bus: 'rp-vgpu0' },
  ]);
  assert.equal(vfioPortId('gpu0'), 'rp-gpu0');
  assert.equal(VFIO_CHASSIS_BASE, 100);
});

test('vfio-pci on pc sits on pci.0 (no port); a microvm is refused with the fix', () => {
  const d = def({ machine: 'pc', hostPci: [{ id: 'nic0', address: '0000:03:10.0' }], mdevs: [{ id: 'm0', uuid: UUID }] });
  const devs = devices(d);
  assert.equal(devs.filter((x) => x.driver === 'pcie-root-port').length, 0);
  assert.deepEqual(devs.filter((x) => x.driver === 'vfio-pci').map((x) => [x.id, x.bus]), [['nic0', undefined], ['m0', undefined]]);
  const dev = def({ hostPci: [{ id: 'nic0', address: '0000:03:10.0' }] }).hostPci[0]!;
  assert.throws(() => hostPciParts(dev, 0, 'microvm'), (e: HangarError) => e.code === 'invalid-input' && /microvm has no PCI bus/.test(e.message) && /machine q35/.test(e.hint ?? ''));
  assert.throws(() => mdevParts({ id: 'm0', uuid: UUID }, 0, 'microvm'), /microvm has no PCI bus/);
});

test('usb-host: vendorid/productid as integers, or hostbus + hostport; qemu-xhci is added for it', () => {
  const d = def({ hostUsb: [{ id: 'u0', vendorId: '046d', productId: 'c52b' }, { id: 'u1', hostbus: 1, hostport: '1.4' }] });
  assert.deepEqual(usbHostDevice(d.hostUsb[0]!), { driver: 'usb-host', id: 'u0', bus: 'usb0.0', vendorid: 0x046d, productid: 0xc52b, hostbus: undefined, hostport: undefined });
  const devs = devices(d);
  assert.deepEqual(devs.filter((x) => x.driver === 'usb-host'), [
    { driver: 'usb-host', id: 'u0', bus: 'usb0.0', vendorid: 1133, productid: 50475 },
    { driver: 'usb-host', id: 'u1', bus: 'usb0.0', hostbus: 1, hostport: '1.4' },
  ]);
  assert.ok(devs.some((x) => x.driver === 'qemu-xhci' && x.id === 'usb0'), 'a USB controller for the host USB devices');
  assert.ok(hasUsbDevices(d));
  assert.deepEqual(usbControllerOf(d), { model: 'qemu-xhci' });
  assert.equal(usbControllerOf(def()), undefined);
  const ehci = def({ usb: { model: 'ich9-ehci' }, hostUsb: [{ id: 'u0', hostbus: 2, hostport: '3' }] });
  assert.equal(devices(ehci).filter((x) => x.driver === 'qemu-xhci').length, 0, 'a named controller is kept');
});

test('definition rules: a PCI address, an mdev UUID or a USB device assigned twice, host devices on microvm', () => {
  const twice = (extra: Record<string, unknown>, re: RegExp): void => assert.throws(() => def(extra), (e: HangarError) => e.code === 'invalid-input' && re.test(e.message), JSON.stringify(extra));
  twice({ hostPci: [{ id: 'a', address: '0000:03:10.0' }, { id: 'b', address: '0000:03:10.0' }] }, /PCI device 0000:03:10\.0 is assigned twice \(host PCI devices "a" and "b"\).*remove one/);
  twice({ mdevs: [{ id: 'a', uuid: UUID }, { id: 'b', uuid: UUID }] }, new RegExp(`mediated device ${UUID} is assigned twice \\("a" and "b"\\).*create another instance`));
  twice({ hostPci: [{ id: 'gpu', address: '0000:00:02.0' }], mdevs: [{ id: 'v', uuid: UUID, parent: '0000:00:02.0' }] }, /slice of 0000:00:02\.0, which is also assigned whole/);
  twice({ hostUsb: [{ id: 'a', vendorId: '046d', productId: 'c52b' }, { id: 'b', vendorId: '046d', productId: 'c52b' }] }, /USB device 046d:c52b is assigned twice.*pick each by bus and port/);
  twice({ hostUsb: [{ id: 'a', hostbus: 1, hostport: '1.4' }, { id: 'b', vendorId: '046d', productId: 'c52b', hostbus: 1, hostport: '1.4' }] }, /USB bus 1 port 1\.4 is assigned twice/);
  twice({ hostPci: [{ id: 'x', address: '0000:03:10.0' }], disks: [{ id: 'x', file: '/a.qcow2' }] }, /device id "x" is used twice/);
  twice({ hostPci: [{ id: 'x', address: '0000:03:10.0' }], shares: [{ id: 'rp-x', source: '/srv', tag: 't' }] }, /"rp-x" is taken by the root port of host device "x"/);
  const micro = { machine: 'microvm', boot: { kernel: { kernel: '/k' } } };
  twice({ ...micro, hostPci: [{ id: 'p', address: '0000:03:10.0' }] }, /host PCI device "p": a microvm has no PCI bus for VFIO devices \(use machine q35\)/);
  twice({ ...micro, mdevs: [{ id: 'm', uuid: UUID }] }, /mediated device "m": a microvm has no PCI bus/);
  twice({ ...micro, hostUsb: [{ id: 'u', vendorId: '046d', productId: 'c52b' }] }, /USB host device "u": a microvm has no USB controller/);
  // Two identical devices picked by their ports are fine; so is the same VF in two VMs' definitions (checked at start).
  assert.equal(def({ hostUsb: [{ id: 'a', vendorId: '046d', productId: 'c52b', hostbus: 1, hostport: '1' }, { id: 'b', vendorId: '046d', productId: 'c52b', hostbus: 1, hostport: '2' }] }).hostUsb.length, 2);
});

test('device rows: vfio-pci Passthrough with address, managed and ROM; mdev with uuid, parent, type; usb-host by id or port', () => {
  const d = def({
    hostPci: [{ id: 'gpu0', address: '0000:01:00.0', rom: false }, { id: 'vf0', address: '0000:03:10.0', managed: false }],
    mdevs: [{ id: 'vgpu0', uuid: UUID, parent: '0000:00:02.0', type: 'i915-GVTg_V5_4' }],
    hostUsb: [{ id: 'u0', vendorId: '046d', productId: 'c52b' }, { id: 'u1', hostbus: 1, hostport: '1.4' }],
  });
  const rows = deviceRows(d);
  assert.deepEqual(rows.map((r) => `${r.kind}/${r.id}/${r.type}/${r.mode}`), [
    'usbhost/u0/usb-host/Passthrough (VFIO)', 'usbhost/u1/usb-host/Passthrough (VFIO)', 'usb/usb0/qemu-xhci/Emulated',
    'hostpci/gpu0/vfio-pci/Passthrough (VFIO)', 'hostpci/vf0/vfio-pci/Passthrough (VFIO)', 'mdev/vgpu0/vfio-pci (mdev)/Passthrough (VFIO)',
    'serial/serial0/isa-serial/Emulated',
  ]);
  const detail = (id: string): string => rows.find((r) => r.id === id)!.detail;
  assert.match(detail('gpu0'), /^0000:01:00\.0, managed .*, ROM off$/);
  assert.match(detail('vf0'), /^0000:03:10\.0, unmanaged \(must already be on vfio-pci\)$/);
  assert.equal(detail('vgpu0'), `${UUID}, parent 0000:00:02.0, type i915-GVTg_V5_4`);
  assert.equal(detail('u0'), '046d:c52b');
  assert.equal(detail('u1'), 'bus 1 port 1.4');
  assert.equal(detail('usb0'), 'added for the USB devices');
});

test('hotplug: usb-host into a running VM with a USB controller (and out again); VFIO devices wait for the next start', () => {
  const withUsb = { definition: def({ inputs: [{ id: 'tab', type: 'tablet', bus: 'usb' }] }), slots: {} };
  const without = { definition: def(), slots: {} };
  const usb = { id: 'u0', vendorId: '046d', productId: 'c52b' };
  assert.equal(plugBlocker('usbhost', usb, withUsb), null);
  assert.equal(plugBlocker('usbhost', usb, { definition: def({ usb: { model: 'ich9-ehci' } }), slots: {} }), null);
  assert.match(plugBlocker('usbhost', usb, without) ?? '', /started without a USB controller/);
  assert.equal(unplugBlocker('usbhost', usb, withUsb), null, 'a usb-host device leaves at once');
  assert.equal(plugBlocker('hostpci', { id: 'p', address: '0000:03:10.0' }, withUsb), 'VFIO devices are assigned at start (the group is bound to vfio-pci then)');
  assert.equal(plugBlocker('mdev', { id: 'm', uuid: UUID }, withUsb), VFIO_PLUG_REASON);
  assert.match(unplugBlocker('hostpci', { id: 'p', address: '0000:03:10.0' }, withUsb) ?? '', /VFIO devices are given back at stop/);
  assert.match(plugBlocker('usbhost', usb, { definition: def({ machine: 'microvm', boot: { kernel: { kernel: '/k' } } }), slots: {} }) ?? '', /microvm has no hotplug/);
});
