// The one table of I/O virtualization modes: every choice is well formed, availability follows the
// doctor's checks (with the host's own reason and fix first), and the text lists every kind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DoctorCheckInfo } from '../../core/common/api.ts';
import { adviceText, choiceAvailability, deviceChoices, ioModeInfo, ioModes } from '../../core/common/device-advice.ts';
import { diskBuses, inputBuses, nicModels, soundModels, usbModels, videoModels } from '../../core/common/model.ts';

const ok = (id: string): DoctorCheckInfo => ({ id, label: id, status: 'ok', detail: `${id} ok` });
const missing = (id: string, fix: string): DoctorCheckInfo => ({ id, label: id, status: 'missing', detail: `${id} is missing`, fix });

test('every mode is explained; every choice names a mode; ids are unique per kind', () => {
  for (const m of ioModes) assert.ok(ioModeInfo[m].summary && ioModeInfo[m].tradeoffs, m);
  const seen = new Set<string>();
  for (const c of deviceChoices) {
    assert.ok((ioModes as readonly string[]).includes(c.mode), c.id);
    assert.ok(c.advice.length > 10, c.id);
    assert.ok(!seen.has(`${c.kind}/${c.id}`), `${c.kind}/${c.id} twice`);
    seen.add(`${c.kind}/${c.id}`);
  }
});

test('every bus, model and back end the definition knows has advice', () => {
  const ids = (kind: string) => deviceChoices.filter((c) => c.kind === kind).map((c) => c.id);
  for (const b of diskBuses) assert.ok(ids('disk').includes(b), `disk bus ${b}`);
  for (const m of nicModels) assert.ok(ids('nic').includes(m), `NIC model ${m}`);
  for (const v of videoModels.filter((v) => v !== 'none')) assert.ok(ids('video').includes(v), `video ${v}`);
  for (const b of inputBuses) assert.ok(ids('input').includes(b), `input bus ${b}`);
  for (const s of soundModels) assert.ok(ids('sound').includes(s), `sound ${s}`);
  for (const u of usbModels) assert.ok(ids('usb').includes(u), `usb ${u}`);
});

test('availability follows the doctor: the host\'s reason and fix first, then what Hangar cannot do yet', () => {
  const vu = deviceChoices.find((c) => c.id === 'vhost-user-blk')!;
  assert.deepEqual(choiceAvailability(vu, [ok('qemu-storage-daemon')]), { available: true });
  assert.deepEqual(choiceAvailability(vu, [missing('qemu-storage-daemon', 'apt-get install qemu-system-common')]),
    { available: false, reason: 'qemu-storage-daemon is missing', fix: 'apt-get install qemu-system-common' });
  assert.match(choiceAvailability(vu, []).reason!, /did not run/);
  const vhostNet = deviceChoices.find((c) => c.id === 'vhost-net')!;
  assert.equal(choiceAvailability(vhostNet, [missing('vhost-net', 'modprobe vhost_net'), ok('tun')]).fix, 'modprobe vhost_net');
  assert.deepEqual(choiceAvailability(vhostNet, [ok('vhost-net'), ok('tun')]), { available: true });
  // Hangar configures every choice in the table now; the "cannot configure it yet" branch stays for new ones.
  assert.deepEqual(deviceChoices.filter((c) => !c.supported).map((c) => c.id), []);
  assert.match(choiceAvailability({ ...vhostNet, supported: false }, [ok('vhost-net'), ok('tun')]).reason!, /cannot configure it yet/);
  assert.deepEqual(choiceAvailability(deviceChoices.find((c) => c.id === 'virtio-blk')!, []), { available: true });
});

test('host devices: VFIO choices (a PCI device, an SR-IOV VF, an mdev) need the doctor\'s IOMMU check; usb-host needs nothing', () => {
  const hostdev = deviceChoices.filter((c) => c.kind === 'hostdev').map((c) => `${c.id}/${c.mode}/${c.needs.join('+')}`);
  assert.deepEqual(hostdev, ['vfio-pci/passthrough/iommu', 'sr-iov-vf/sr-iov/iommu', 'mdev/passthrough/iommu', 'usb-host/passthrough/']);
  const vfio = deviceChoices.find((c) => c.id === 'vfio-pci')!;
  const noIommu = missing('iommu', 'enable VT-d/AMD-Vi and add intel_iommu=on');
  assert.deepEqual(choiceAvailability(vfio, [noIommu]), { available: false, reason: 'iommu is missing', fix: 'enable VT-d/AMD-Vi and add intel_iommu=on' });
  assert.deepEqual(choiceAvailability(vfio, [ok('iommu')]), { available: true });
  assert.deepEqual(choiceAvailability(deviceChoices.find((c) => c.id === 'usb-host')!, [noIommu]), { available: true }, 'usb-host is not VFIO');
  const text = adviceText([noIommu]);
  assert.match(text, /^ {2}Host devices:$/m);
  assert.match(text, /\[no \] SR-IOV virtual function \(VFIO\) \(SR-IOV virtual function\)[^\n]*\n\s+not here: iommu is missing/);
  assert.match(text, /\[yes\] Host USB device \(usb-host\)/);
});

test('the doctor text lists each kind, marks what runs here, and gives the fix for what does not', () => {
  const text = adviceText([ok('qemu-storage-daemon'), missing('vhost-vsock', 'modprobe vhost_vsock'), ok('passt')]);
  for (const kind of ['Disks:', 'Network:', 'Video:', 'Shared folders:', 'vsock:']) assert.match(text, new RegExp(`^  ${kind}`, 'm'));
  assert.match(text, /\[yes\] virtio-blk \(Paravirtual\)/);
  assert.match(text, /\[no \] vhost-vsock[^\n]*\n\s+not here: vhost-vsock is missing — fix: modprobe vhost_vsock/);
});

test('device rows: every device of a definition with its mode', async () => {
  const { deviceRows } = await import('../../core/common/device-rows.ts');
  const { parseDefinition } = await import('../../core/common/definition.ts');
  const def = parseDefinition({
    version: 1, id: '0b6c1c2e-8f0a-4c59-9d3e-8a6f1d1e2a3b', name: 'vm',
    disks: [{ id: 'disk0', file: '/d.qcow2', bus: 'sata' }, { id: 'disk1', file: '/e.raw', format: 'raw', bus: 'vhost-user-blk', discard: true }],
    nics: [{ id: 'net0', mac: '52:54:00:00:00:01', network: { type: 'passt' } }, { id: 'net1', model: 'e1000', mac: '52:54:00:00:00:02', network: { type: 'isolated', network: 'lab' } }],
    inputs: [{ id: 'tab', type: 'tablet' }], video: { model: 'qxl' }, rng: {}, shares: [{ id: 'sh', source: '/srv', tag: 'srv' }],
  });
  const rows = deviceRows(def).map((r) => `${r.kind}/${r.id}/${r.type}/${r.mode}`);
  assert.deepEqual(rows, [
    'disk/disk0/sata/Emulated', 'disk/disk1/vhost-user-blk/vhost-user (user-space back end)',
    'nic/net0/virtio-net/Paravirtual', 'nic/net1/e1000/Emulated',
    'video/video0/qxl/Paravirtual', 'input/tab/tablet (usb)/Emulated', 'rng/rng0/virtio-rng/Paravirtual',
    'usb/usb0/qemu-xhci/Emulated', 'share/sh/virtio-9p/Paravirtual', 'serial/serial0/isa-serial/Emulated',
  ]);
  assert.match(deviceRows(def).find((r) => r.id === 'net1')!.detail, /isolated network lab/);
});
