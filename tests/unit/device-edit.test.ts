// Device operations on definitions (add/edit/remove, ids, pending changes), the hotplug rules,
// and the CLI's device SPEC parsing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDefinition } from '../../core/common/definition.ts';
import { nextDeviceId, pendingChanges, withDeviceAdded, withDeviceEdited, withDeviceRemoved } from '../../core/common/device-edit.ts';
import type { HangarError } from '../../core/common/errors.ts';
import type { VmDefinition } from '../../core/common/model.ts';
import { plugBlocker, unplugBlocker } from '../../core/node/service/hotplug.ts';
import { parseDeviceKind, parseDeviceSpec } from '../../core/node/cli/device-spec.ts';
import { checkApiArgs } from '../../core/common/api-schema.ts';
import { buildArgv } from '../../core/node/qemu/vm-argv.ts';

const base = { version: 1, id: '0b6c1c2e-8f0a-4c59-9d3e-8a6f1d1e2a3b', name: 'vm' };
const def = (extra: Record<string, unknown> = {}): VmDefinition => parseDefinition({ ...base, ...extra });
const raw = (d: VmDefinition): Record<string, unknown> => d as unknown as Record<string, unknown>;
const disk = (id: string, bus = 'virtio-blk'): Record<string, unknown> => ({ id, file: `/img/${id}.qcow2`, bus });
const nic = (id: string, mac: string): Record<string, unknown> => ({ id, mac, network: { type: 'user' } });

test('an added list device gets the next free id, across kinds; a taken id is refused', () => {
  const d = def({ disks: [disk('disk0')], nics: [nic('disk1', '52:54:00:00:00:01')] });
  const r = withDeviceAdded(raw(d), 'disk', { file: '/img/x.qcow2' });
  assert.equal(r.id, 'disk2', 'disk1 is taken by a NIC: QEMU ids are one namespace');
  assert.equal(parseDefinition(r.definition).disks.length, 2);
  assert.throws(() => withDeviceAdded(raw(d), 'disk', { id: 'disk0', file: '/img/y.qcow2' }), (e: HangarError) => e.code === 'already-exists' && /"disk0"/.test(e.message));
  assert.equal(nextDeviceId(raw(d), 'serial'), 'serial1', 'serial0 is the console');
  assert.throws(() => withDeviceAdded(raw(d), 'serial', { id: 'serial0' }), /already has a device with id "serial0"/);
});

test('singletons: one per VM, fixed ids, edit merges, remove unsets (video back to none)', () => {
  const d = def();
  const added = withDeviceAdded(raw(d), 'sound', { model: 'hda' });
  assert.equal(added.id, 'sound0');
  const withSound = parseDefinition(added.definition);
  assert.throws(() => withDeviceAdded(raw(withSound), 'sound', { model: 'ac97' }), (e: HangarError) => e.code === 'already-exists' && /edit it instead/.test(e.hint ?? ''));
  assert.equal(parseDefinition(withDeviceEdited(raw(withSound), 'sound', 'sound0', { model: 'ac97' })).sound?.model, 'ac97');
  assert.throws(() => withDeviceEdited(raw(withSound), 'sound', 'sound1', { model: 'ac97' }), (e: HangarError) => e.code === 'not-found');
  assert.equal(parseDefinition(withDeviceRemoved(raw(withSound), 'sound', 'sound0').definition).sound, undefined);
  const vga = parseDefinition(withDeviceAdded(raw(d), 'video', { model: 'vga' }).definition);
  assert.equal(parseDefinition(withDeviceRemoved(raw(vga), 'video', 'video0').definition).video.model, 'none');
  assert.throws(() => withDeviceRemoved(raw(d), 'video', 'video0'), (e: HangarError) => e.code === 'not-found', 'video none counts as no video device');
});

test('edit merges fields, null removes one, the id cannot change, unknown ids name the ones there are', () => {
  const d = def({ cdroms: [{ id: 'cd0', file: '/iso/a.iso' }], disks: [disk('disk0')] });
  const ejected = parseDefinition(withDeviceEdited(raw(d), 'cdrom', 'cd0', { file: null }));
  assert.equal(ejected.cdroms[0]!.file, undefined);
  const cached = parseDefinition(withDeviceEdited(raw(d), 'disk', 'disk0', { cache: 'none', aio: 'native' }));
  assert.equal(cached.disks[0]!.cache, 'none');
  assert.equal(cached.disks[0]!.file, '/img/disk0.qcow2', 'untouched fields stay');
  assert.throws(() => withDeviceEdited(raw(d), 'disk', 'disk0', { id: 'other' }), /id cannot change/);
  assert.throws(() => withDeviceEdited(raw(d), 'disk', 'nope', {}), (e: HangarError) => e.code === 'not-found' && /disk0/.test(e.hint ?? ''));
  // The merged result still meets every rule: aio native needs O_DIRECT.
  assert.throws(() => parseDefinition(withDeviceEdited(raw(d), 'disk', 'disk0', { aio: 'native' })), /aio native needs O_DIRECT/);
});

test('pending changes: adds, removals and edits between the running and the saved definition', () => {
  const running = def({ disks: [disk('disk0'), disk('disk1')], rng: {} });
  const saved = def({ disks: [{ ...disk('disk0'), cache: 'none' }, disk('disk2')], sound: { model: 'hda' } });
  const p = pendingChanges(running, saved).map((c) => `${c.change} ${c.kind} ${c.id}`).sort();
  assert.deepEqual(p, ['add disk disk2', 'add sound sound0', 'edit disk disk0', 'remove disk disk1', 'remove rng rng0']);
  assert.deepEqual(pendingChanges(running, parseDefinition(JSON.parse(JSON.stringify(running)))), [], 'equal definitions (any key order) have nothing pending');
});

test('hotplug rules: what a running q35 / pc / microvm VM can take and give back', () => {
  const q35 = { definition: def({ disks: [disk('disk0')], inputs: [{ id: 'input0', type: 'tablet', bus: 'usb' }] }), slots: {} };
  assert.equal(plugBlocker('disk', disk('d1'), q35), null);
  assert.match(plugBlocker('disk', disk('d1', 'sata'), q35) ?? '', /no hotplug/);
  assert.match(plugBlocker('disk', disk('d1', 'scsi'), q35) ?? '', /without a SCSI controller/);
  assert.match(plugBlocker('nic', { id: 'n', network: { type: 'passt', portForwards: [] } }, q35) ?? '', /passt process starts with the VM/);
  assert.equal(plugBlocker('input', { id: 'k', type: 'keyboard', bus: 'usb' }, q35), null, 'the VM has a USB controller (for its tablet)');
  assert.match(plugBlocker('sound', { model: 'hda' }, q35) ?? '', /cannot be added to a running VM/);
  const full = { definition: def({ hotplugSlots: 1 }), slots: { x: 'hp0' } };
  assert.match(plugBlocker('disk', disk('d1'), full) ?? '', /all 1 hotplug slots .* in use/);
  assert.match(unplugBlocker('disk', q35.definition.disks[0]!, q35) ?? '', /pcie\.0/, 'a boot-time disk on q35 sits on the root bus');
  assert.equal(unplugBlocker('disk', { ...disk('d1') }, { ...q35, slots: { d1: 'hp0' } }), null, 'a disk in a root port can leave');
  const pc = { definition: def({ machine: 'pc', disks: [disk('disk0')] }), slots: {} };
  assert.equal(unplugBlocker('disk', pc.definition.disks[0]!, pc), null, 'pci.0 of the pc machine has ACPI hotplug');
  const micro = { definition: def({ machine: 'microvm', boot: { kernel: { kernel: '/k' } } }), slots: {} };
  assert.match(plugBlocker('disk', disk('d1'), micro) ?? '', /microvm has no hotplug/);
});

test('q35 gets hotplugSlots spare root ports, each its own chassis; pc gets none', () => {
  const paths = { qmpSocket: '/r/q', serialSocket: '/r/s', pidfile: '/r/p' };
  const ports = (d: VmDefinition): string[] => buildArgv(d, { accel: 'tcg', paths }).filter((a) => a.includes('pcie-root-port'));
  assert.equal(ports(def()).length, 4);
  assert.deepEqual(ports(def({ hotplugSlots: 2 })).map((a) => (JSON.parse(a) as { chassis: number }).chassis), [1, 2]);
  assert.equal(ports(def({ machine: 'pc' })).length, 0);
});

test('device SPECs: head values, key=value, booleans, sizes, and the errors that name the fix', async () => {
  assert.deepEqual((await parseDeviceSpec('disk', 'size=8G,bus=scsi,discard=on', false)), { fields: { bus: 'scsi', discard: true }, newDiskBytes: 8 * 1024 ** 3 });
  assert.deepEqual((await parseDeviceSpec('sound', 'model=ac97', true)).fields, { model: 'ac97' }, 'a lone key=value is not the head');
  assert.deepEqual((await parseDeviceSpec('cdrom', 'file=', true)).fields, { file: null }, 'an empty path clears the field');
  assert.deepEqual((await parseDeviceSpec('video', 'vga,vram=16', false)).fields, { model: 'vga', vramMiB: 16 });
  assert.deepEqual((await parseDeviceSpec('nic', 'model=e1000', true)).fields, { model: 'e1000' });
  const n = (await parseDeviceSpec('nic', 'user,hostfwd=tcp::2222-:22', false)).fields;
  assert.equal(n.id, undefined, 'the core picks the NIC id');
  assert.equal((n.network as { type: string }).type, 'user');
  await assert.rejects(parseDeviceSpec('disk', 'size=1G', true), (e: HangarError) => /only makes a new disk/.test(e.message) && /hangar device resize/.test(e.hint ?? ''));
  await assert.rejects(parseDeviceSpec('rng', 'speed=3', false), /unknown option "speed"/);
  await assert.rejects(parseDeviceSpec('balloon', 'x', false), /not key=value/);
  await assert.rejects(parseDeviceSpec('disk', 'x.img,discard=maybe', false), /expected on or off/);
  assert.throws(() => parseDeviceKind('gpu'), /not a device kind \(kinds: disk, cdrom/);
});

test('API args: a trailing null (JSON for undefined) counts as absent; bad kinds are refused', () => {
  assert.deepEqual(checkApiArgs('addDevice', ['vm', 'sound', { model: 'hda' }, null]), ['vm', 'sound', { model: 'hda' }]);
  assert.throws(() => checkApiArgs('addDevice', ['vm', 'gpu', {}]), /bad request to addDevice/);
  assert.throws(() => checkApiArgs('removeDevice', ['vm', 'disk', 'disk0', { deleteFile: 'yes' }]), /bad request to removeDevice/);
});

test('device SPECs for host devices: hostpci ADDR[,managed=off][,rom=off], mdev UUID[,parent=,type=], usbhost VID:PID | BUS-PORT | bus=,port=', async () => {
  const spec = async (kind: 'hostpci' | 'mdev' | 'usbhost', s: string, forEdit = false): Promise<Record<string, unknown>> => (await parseDeviceSpec(kind, s, forEdit)).fields;
  assert.deepEqual(await spec('hostpci', '0000:03:10.0'), { address: '0000:03:10.0' });
  assert.deepEqual(await spec('hostpci', '0000:01:00.0,managed=off,rom=off'), { address: '0000:01:00.0', managed: false, rom: false });
  assert.deepEqual(await spec('hostpci', '03:10.1,id=vf1'), { address: '0000:03:10.1', id: 'vf1' }, 'lspci\'s short form is domain 0000');
  assert.deepEqual(await spec('hostpci', '0000:0A:00.0'), { address: '0000:0a:00.0' }, 'hex is lower-cased');
  assert.deepEqual(await spec('hostpci', 'rom=on', true), { rom: true });
  const uuid = '8e2f3a1c-5b6d-4e7f-9a0b-1c2d3e4f5a6b';
  assert.deepEqual(await spec('mdev', uuid), { uuid });
  assert.deepEqual(await spec('mdev', `${uuid.toUpperCase()},parent=00:02.0,type=i915-GVTg_V5_4`), { uuid, parent: '0000:00:02.0', type: 'i915-GVTg_V5_4' });
  assert.deepEqual(await spec('usbhost', '046d:c52b'), { vendorId: '046d', productId: 'c52b' });
  assert.deepEqual(await spec('usbhost', '046D:C52B'), { vendorId: '046d', productId: 'c52b' });
  assert.deepEqual(await spec('usbhost', 'bus=1,port=1.4'), { hostbus: 1, hostport: '1.4' });
  assert.deepEqual(await spec('usbhost', '1-1.4'), { hostbus: 1, hostport: '1.4' }, 'the sysfs name hangar host usb lists');
  assert.deepEqual(await spec('usbhost', 'vendor=1050,product=0407,id=yubikey'), { vendorId: '1050', productId: '0407', id: 'yubikey' });
  await assert.rejects(spec('usbhost', 'logitech'), (e: HangarError) => /neither VENDOR:PRODUCT \(e\.g\. 046d:c52b\) nor BUS-PORT/.test(e.message) && /hangar host usb/.test(e.hint ?? ''));
  await assert.rejects(spec('usbhost', 'bus=one,port=1'), /expected a whole number/);
  await assert.rejects(spec('hostpci', '0000:03:10.0,rombar=0'), (e: HangarError) => /unknown option "rombar"/.test(e.message) && /managed, rom/.test(e.hint ?? ''));
  await assert.rejects(spec('hostpci', '0000:03:10.0,managed=maybe'), /expected on or off/);
  // What the CLI makes is a valid definition entry.
  const d = parseDefinition({ ...base, hostPci: [await spec('hostpci', '03:10.0,rom=off')].map((f) => ({ id: 'p', ...f })), mdevs: [{ id: 'm', ...(await spec('mdev', uuid)) }], hostUsb: [{ id: 'u', ...(await spec('usbhost', '1-1.4')) }] });
  assert.deepEqual([d.hostPci[0]!.address, d.hostPci[0]!.managed, d.hostPci[0]!.rom, d.mdevs[0]!.uuid, d.hostUsb[0]!.hostport], ['0000:03:10.0', true, false, uuid, '1.4']);
});
