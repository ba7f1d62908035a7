// Host device assignment in the renderer (issue 6), in Node: the Host page's pure parts (PCI
// devices by IOMMU group, VF labels, the VF count and VF MAC/VLAN forms, privilege words, action
// status lines), the Devices tab's host device editors (picker options with their disabled
// reasons, the IOMMU group warning, the passthrough consequences against the memlock limit, forms
// -> the device the core takes, table rows), 'permission' errors carrying the commands to run as
// root, and the host-devices store's actions against the in-memory core.
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { createPinia, setActivePinia } from 'pinia';
import { HangarError } from '../../core/common/errors.ts';
import type { HostDeviceReport } from '../../core/common/host-devices.ts';
import { blankForm, buildDeviceRequest, devicePatch, formFromDevice } from '../../renderer/src/devices/device-forms.ts';
import { canAdd, isHostKind, kindText } from '../../renderer/src/devices/device-kinds.ts';
import { hostColumns, tableRows } from '../../renderer/src/devices/device-table.ts';
import {
  groupWarning, hostPciText, memlockConsequence, mdevPickerOptions, passthroughConsequences, pciPickerOptions, usbPickerOptions,
} from '../../renderer/src/devices/host-pickers.ts';
import {
  actionKey, actionStatus, assignmentsOf, classText, flrText, groupByIommu, numaText, parseVfConfig, parseVfCount, pciName, resetText,
  sriovRole, ungroupedReason, vfIndex, vfLabel,
} from '../../renderer/src/host/host-report.ts';
import { useConnectionStore } from '../../renderer/src/stores/connection.ts';
import { useHostDevicesStore } from '../../renderer/src/stores/host-devices.ts';
import { FakeCore, ManualTimers, fakeDefinition, fakeVm, settle } from '../../renderer/src/testing/fake-core.ts';
import { SAMPLE_MDEV_UUID, SAMPLE_PF, sampleHostReport, vfAddress } from '../../renderer/src/testing/host-report.ts';
import { toUiError } from '../../renderer/src/util/ui-error.ts';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const dev = (r: HostDeviceReport, a: string) => r.pci.find((d) => d.address === a)!;

describe('Host page: PCI devices by IOMMU group', () => {
  it('groups members by IOMMU group in ascending order; the GPU, its HDMI audio and root port share group 13', () => {
    const r = sampleHostReport();
    const { groups, ungrouped } = groupByIommu(r.pci);
    assert.deepEqual(groups.map((g) => g.group), [...groups.map((g) => g.group)].sort((a, b) => a - b));
    const g13 = groups.find((g) => g.group === 13)!;
    assert.deepEqual(g13.members.map((d) => d.address), ['0000:00:01.0', '0000:01:00.0', '0000:01:00.1']);
    const g14 = groups.find((g) => g.group === 14)!;
    assert.deepEqual(g14.members.map((d) => d.driver), ['pcieport', 'vfio-pci', 'vfio-pci']);
    // Every VF has a group of its own.
    for (const vf of r.pci.filter((d) => d.physfn)) assert.equal(groups.find((g) => g.group === vf.iommuGroup)!.members.length, 1);
    assert.deepEqual(ungrouped.map((d) => d.address), ['0000:06:00.0']);
    assert.equal(groups.reduce((n, g) => n + g.members.length, 0) + ungrouped.length, r.pci.length, 'every device shown once');
  });

  it('devices without a group say why: the IOMMU is off (with the fix), or their link is broken', () => {
    const r = sampleHostReport();
    assert.match(ungroupedReason(r, dev(r, '0000:06:00.0')), /dangling/);
    assert.match(ungroupedReason(r), /IOMMU is on/);
    const off = { readiness: [{ id: 'passthrough-iommu', label: 'IOMMU', status: 'missing' as const, detail: 'no IOMMU groups', fix: 'add intel_iommu=on iommu=pt to the kernel command line' }] };
    assert.equal(ungroupedReason(off), 'the IOMMU is off: no IOMMU groups — add intel_iommu=on iommu=pt to the kernel command line');
  });

  it('names, class, reset, FLR and NUMA in words; missing fields say unknown', () => {
    const r = sampleHostReport();
    const gpu = dev(r, '0000:01:00.0');
    assert.equal(pciName(gpu), 'Advanced Micro Devices, Inc. [AMD/ATI] Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]');
    assert.equal(classText(gpu), 'VGA compatible controller');
    assert.equal(resetText(gpu), 'bus');
    assert.equal(flrText(gpu), 'no');
    assert.equal(numaText(gpu), '0');
    const broken = dev(r, '0000:06:00.0');
    assert.equal(pciName(broken), 'unknown vendor device 0612');
    assert.equal(numaText(broken), 'none');
    assert.equal(flrText(broken), 'unknown');
    assert.equal(resetText(dev(r, '0000:00:00.0')), 'none');
    assert.equal(numaText({ numaNode: undefined }), 'unknown');
  });

  it('SR-IOV: the PF and its VFs, each VF labelled with its index on its PF', () => {
    const r = sampleHostReport();
    assert.equal(sriovRole(dev(r, SAMPLE_PF)), 'pf');
    assert.equal(sriovRole(dev(r, '0000:03:10.4')), 'vf');
    assert.equal(sriovRole(dev(r, '0000:01:00.0')), undefined);
    assert.equal(vfLabel(r.pci, dev(r, '0000:03:10.4')), 'VF 2 of 0000:03:00.0');
    assert.equal(vfIndex(r.pci, dev(r, '0000:03:10.0')), 0);
    assert.equal(vfLabel(r.pci, dev(r, '0000:01:00.0')), undefined);
    assert.equal(vfLabel([], { address: '0000:09:10.0', physfn: '0000:09:00.0' }), 'VF of 0000:09:00.0', 'a PF that is not listed');
    assert.equal(vfAddress(SAMPLE_PF, 7), '0000:03:11.6');
  });

  it('assignments per device kind and name', () => {
    const r = { assignments: [
      { device: '0000:03:10.0', kind: 'hostpci' as const, vmId: 'a', vmName: 'a', deviceId: 'hostpci0', running: true },
      { device: '046d:c52b', kind: 'usbhost' as const, vmId: 'b', vmName: 'b', deviceId: 'usbhost0', running: false },
    ] };
    assert.equal(assignmentsOf(r, 'hostpci', '0000:03:10.0').length, 1);
    assert.equal(assignmentsOf(r, 'usbhost', '046d:c52b', '1-1.2').length, 1);
    assert.equal(assignmentsOf(r, 'mdev', '0000:03:10.0').length, 0);
  });
});

describe('Host page: SR-IOV forms', () => {
  it('the VF count is a whole number from 0 to totalVfs, checked before anything is sent', () => {
    assert.deepEqual(parseVfCount('0', 8), { ok: true, value: 0 });
    assert.deepEqual(parseVfCount(' 8 ', 8), { ok: true, value: 8 });
    assert.deepEqual(parseVfCount(4 as unknown as string, 8), { ok: true, value: 4 }, 'a number input hands back a number');
    for (const bad of ['9', '-1', '1.5', 'abc', '']) {
      const r = parseVfCount(bad, 8);
      assert.ok(!r.ok, `"${bad}" refused`);
    }
    const over = parseVfCount('64', 63);
    assert.ok(!over.ok && /at most 63/.test(over.error));
    const unknown = parseVfCount('1', undefined);
    assert.ok(!unknown.ok && /sriov_totalvfs/.test(unknown.error));
  });

  it('a VF\'s MAC (unicast, lower-cased) and VLAN (0..4095); empty leaves it; nothing at all is an error', () => {
    assert.deepEqual(parseVfConfig({ mac: '52:54:00:AA:BB:CC', vlan: '' }), { ok: true, value: { mac: '52:54:00:aa:bb:cc' } });
    assert.deepEqual(parseVfConfig({ mac: '', vlan: '100' }), { ok: true, value: { vlan: 100 } });
    assert.deepEqual(parseVfConfig({ mac: '', vlan: 0 }), { ok: true, value: { vlan: 0 } });
    const multicast = parseVfConfig({ mac: '01:00:5e:00:00:01', vlan: '' });
    assert.ok(!multicast.ok && /unicast/.test(multicast.errors.mac!));
    const bad = parseVfConfig({ mac: 'nope', vlan: '4096' });
    assert.ok(!bad.ok && bad.errors.mac && /4095/.test(bad.errors.vlan!));
    const none = parseVfConfig({ mac: ' ', vlan: '' });
    assert.ok(!none.ok && /MAC address, a VLAN id, or both/.test(none.errors.form!));
  });

  it('action keys and status lines say what was done and how', () => {
    const r = { commands: ['echo 4 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs'], via: 'sudo' as const };
    assert.equal(actionKey({ type: 'bind', address: '0000:01:00.0' }), actionKey({ type: 'release', address: '0000:01:00.0' }));
    assert.equal(actionStatus({ type: 'sriov', pf: SAMPLE_PF, count: 4 }, r), '0000:03:00.0 has 4 VFs now (through sudo)');
    assert.equal(actionStatus({ type: 'vf', pf: SAMPLE_PF, vf: 1, cfg: { mac: '52:54:00:00:00:01', vlan: 0 } }, { ...r, via: 'root' }), 'VF 1 of 0000:03:00.0: MAC 52:54:00:00:00:01, no VLAN set (as root)');
    assert.match(actionStatus({ type: 'mdev-create', parent: '0000:04:00.0', mdevType: 'nvidia-222' }, { ...r, uuid: 'u-1' }), /u-1 of type nvidia-222 created on 0000:04:00.0/);
  });
});

describe('Devices tab: the PCI host device picker', () => {
  it('offers every non-bridge device, VFs last with their PF; blocked ones disabled with the core\'s reasons', () => {
    const r = sampleHostReport();
    const opts = pciPickerOptions(r);
    assert.ok(!opts.some((o) => o.address === '0000:00:01.0' || o.address === '0000:00:00.0'), 'bridges are not offered');
    const firstVf = opts.findIndex((o) => o.section === 'vf');
    assert.ok(firstVf > 0 && opts.slice(firstVf).every((o) => o.section === 'vf'), 'VFs after the devices');
    assert.equal(opts.find((o) => o.address === '0000:03:10.4')!.vf, 'VF 2 of 0000:03:00.0');
    const vga = opts.find((o) => o.address === '0000:00:02.0')!;
    assert.equal(vga.disabled, true);
    assert.match(vga.reasons.join(), /boot VGA/);
    const pf = opts.find((o) => o.address === SAMPLE_PF)!;
    assert.ok(pf.disabled && /enp3s0f0 is up/.test(pf.reasons.join()));
    const gpu = opts.find((o) => o.address === '0000:01:00.0')!;
    assert.equal(gpu.disabled, false);
    assert.match(gpu.warnings.join(), /function-level reset/);
    assert.equal(gpu.testid, 'hostpci-option-0000:01:00.0');
    assert.match(opts.find((o) => o.address === '0000:06:00.0')!.reasons.join(), /no IOMMU group/);
  });

  it('a device already in this VM is disabled, except for the device being edited; other VMs are named', () => {
    const r = { ...sampleHostReport(), assignments: [{ device: '0000:03:10.2', kind: 'hostpci' as const, vmId: 'other', vmName: 'db', deviceId: 'hostpci0', running: true }] };
    const def = fakeDefinition('web', { hostPci: [{ id: 'hostpci0', address: '0000:03:10.0' }] });
    const add = pciPickerOptions(r, def);
    assert.deepEqual(add.find((o) => o.address === '0000:03:10.0')!.reasons, ['already assigned to this VM (hostpci0)']);
    assert.deepEqual(add.find((o) => o.address === '0000:03:10.2')!.assignedTo, ['db (running)']);
    assert.equal(pciPickerOptions(r, def, '0000:03:10.0').find((o) => o.address === '0000:03:10.0')!.disabled, false);
    // No viability for a device: not offered blindly.
    const noInfo = { ...r, viability: {} };
    assert.match(pciPickerOptions(noInfo)[0]!.reasons.join(), /no assignment information/);
  });

  it('the shared-group warning lists every other member and what happens to it', () => {
    const r = sampleHostReport();
    const w = groupWarning(r.viability['0000:01:00.0'])!;
    assert.deepEqual(w.members.map((m) => [m.address, m.action]), [['0000:00:01.0', 'bridge'], ['0000:01:00.1', 'vfio']]);
    assert.equal(w.members[1]!.text, 'will be bound to vfio-pci and disappear from the host while the VM runs');
    assert.equal(w.members[0]!.text, 'a PCI bridge: stays with the host');
    assert.equal(w.blocked, false);
    assert.deepEqual(groupWarning(r.viability['0000:02:00.0'])!.members.map((m) => m.text), ['a PCI bridge: stays with the host', 'already on vfio-pci']);
    assert.equal(groupWarning(r.viability['0000:03:10.0']), null, 'a VF is alone in its group');
    assert.equal(groupWarning(undefined), null);
    const blocked = groupWarning({ address: 'a', assignable: false, blockers: [], warnings: [], group: [{ address: 'b', name: 'NIC', action: 'blocked', reasons: ['network interface eth0 is up'] }] })!;
    assert.ok(blocked.blocked);
    assert.match(blocked.members[0]!.text, /in use by the host.*eth0 is up/);
  });

  it('memlock: all guest memory is pinned; a limit below it is called out with the fix', () => {
    const small = memlockConsequence(512, { limitBytes: 8 * MiB, exempt: false });
    assert.equal(small.tone, 'warn');
    assert.match(small.text, /512\.0 MiB of guest memory is pinned/);
    assert.match(small.text, /limit is 8\.0 MiB, less than the VM's 512\.0 MiB/);
    assert.match(small.fix!, /memlock/);
    assert.match(small.fix!, /at least 1\.5 GiB/);
    const tight = memlockConsequence(1024, { limitBytes: 1.5 * GiB, exempt: false });
    assert.equal(tight.tone, 'warn');
    assert.match(tight.text, /limit is 1\.5 GiB, less than the VM's 1\.0 GiB plus 1 GiB for QEMU's own mappings: the VM will not start/);
    const ok = memlockConsequence(1024, { limitBytes: 4 * GiB, exempt: false });
    assert.deepEqual([ok.tone, ok.fix], ['info', undefined]);
    assert.match(ok.text, /covers it/);
    assert.match(memlockConsequence(1024, { limitBytes: null, exempt: false }).text, /unlimited/);
    const root = memlockConsequence(1024, { limitBytes: 8 * MiB, exempt: true });
    assert.equal(root.tone, 'info');
    assert.match(root.text, /CAP_IPC_LOCK/);
  });

  it('the consequences box: migration and memory snapshots blocked, memory pinned, the device leaves the host', () => {
    const c = passthroughConsequences({ memoryMiB: 512, memlock: { limitBytes: null, exempt: false }, device: '0000:01:00.0', managed: true, warnings: ['no FLR'] });
    assert.deepEqual(c.map((x) => x.id), ['migration', 'memlock', 'host', 'warning']);
    assert.match(c[0]!.text, /Live migration and snapshots with memory are blocked/);
    assert.match(c[2]!.text, /0000:01:00\.0 disappears from the host while assigned: Hangar binds it to vfio-pci/);
    const unmanaged = passthroughConsequences({ memoryMiB: 512, memlock: { limitBytes: null, exempt: false }, managed: false });
    assert.match(unmanaged[2]!.text, /must be on vfio-pci before the VM starts/);
  });

  it('mdev instances and USB devices to pick (hubs are not offered)', () => {
    const r = sampleHostReport();
    const m = mdevPickerOptions(r);
    assert.deepEqual(m.map((o) => [o.uuid, o.label, o.parent, o.type]), [[SAMPLE_MDEV_UUID, 'GRID T4-1B on 0000:04:00.0', '0000:04:00.0', 'nvidia-222']]);
    const inVm = mdevPickerOptions(r, fakeDefinition('v', { mdevs: [{ id: 'mdev0', uuid: SAMPLE_MDEV_UUID }] }));
    assert.ok(inVm[0]!.disabled);
    const usb = usbPickerOptions(r);
    assert.deepEqual(usb.map((o) => o.name), ['1-1.2', '2-1']);
    assert.equal(usb[0]!.label, '046d:c52b Logitech, Inc. Unifying Receiver');
    assert.ok(usb[0]!.byId && usb[0]!.byPort);
    assert.match(usb[1]!.detail, /bus 2, port 1, 5000 Mbit\/s/);
    assert.equal(hostPciText(r, '0000:03:10.2'), 'Intel Corporation 82599 Ethernet Controller Virtual Function (VF 1 of 0000:03:00.0)');
    assert.equal(hostPciText(null, '0000:03:10.2'), undefined);
  });
});

describe('Devices tab: host device forms and rows', () => {
  it('hostpci: an address is required; managed and rom default on', () => {
    const none = buildDeviceRequest('hostpci', blankForm('hostpci'), 'add');
    assert.ok(!none.ok && /choose a host PCI device/.test(none.errors.address!));
    const ok = buildDeviceRequest('hostpci', { ...blankForm('hostpci'), address: '0000:03:10.0' }, 'add');
    assert.deepEqual(ok.ok && ok.device, { address: '0000:03:10.0', managed: true, rom: true });
    const bad = buildDeviceRequest('hostpci', { ...blankForm('hostpci'), address: '03:10.0' }, 'add');
    assert.ok(!bad.ok && /PCI address/.test(bad.errors.address!));
    const edited = buildDeviceRequest('hostpci', { ...formFromDevice('hostpci', { id: 'hostpci0', address: '0000:03:10.0', managed: true, rom: true }), rom: false }, 'edit', { id: 'hostpci0', address: '0000:03:10.0', managed: true, rom: true });
    assert.deepEqual(edited.ok && edited.device, { rom: false });
  });

  it('mdev: an instance is required; its parent and type are kept', () => {
    const none = buildDeviceRequest('mdev', blankForm('mdev'), 'add');
    assert.ok(!none.ok && /Host page/.test(none.errors.uuid!));
    const ok = buildDeviceRequest('mdev', { uuid: SAMPLE_MDEV_UUID, parent: '0000:04:00.0', type: 'nvidia-222' }, 'add');
    assert.deepEqual(ok.ok && ok.device, { uuid: SAMPLE_MDEV_UUID, parent: '0000:04:00.0', type: 'nvidia-222' });
  });

  it('usbhost: a picked device by vendor:product or by bus + port, or typed ids; each checked', () => {
    const picked = { ...blankForm('usbhost'), device: '1-1.2', vendorId: '046d', productId: 'c52b', hostbus: '1', hostport: '1.2' };
    assert.deepEqual((buildDeviceRequest('usbhost', picked, 'add') as { device: unknown }).device, { vendorId: '046d', productId: 'c52b' });
    assert.deepEqual((buildDeviceRequest('usbhost', { ...picked, match: 'port' }, 'add') as { device: unknown }).device, { hostbus: 1, hostport: '1.2' });
    const nothing = buildDeviceRequest('usbhost', blankForm('usbhost'), 'add');
    assert.ok(!nothing.ok && nothing.errors.device);
    const manual = buildDeviceRequest('usbhost', { ...blankForm('usbhost'), source: 'manual', manual: ' 046D:C52B ' }, 'add');
    assert.deepEqual(manual.ok && manual.device, { vendorId: '046d', productId: 'c52b' });
    for (const typed of ['046d', '046d:c52', 'zzzz:c52b', '046d-c52b']) {
      const r = buildDeviceRequest('usbhost', { ...blankForm('usbhost'), source: 'manual', manual: typed }, 'add');
      assert.ok(!r.ok && /vendor:product/.test(r.errors.manual!), `"${typed}" refused`);
    }
    const badPort = buildDeviceRequest('usbhost', { ...picked, match: 'port', hostport: '0.1' }, 'add');
    assert.ok(!badPort.ok && badPort.errors.hostport);
  });

  it('usbhost edits: the form comes back from the device; switching the match clears the other fields', () => {
    const byPort = formFromDevice('usbhost', { id: 'usbhost0', hostbus: 1, hostport: '1.2' });
    assert.deepEqual([byPort.source, byPort.match, byPort.device], ['host', 'port', '1-1.2']);
    const byId = formFromDevice('usbhost', { id: 'usbhost0', vendorId: '046d', productId: 'c52b' });
    assert.deepEqual([byId.source, byId.manual], ['manual', '046d:c52b']);
    assert.deepEqual(devicePatch('usbhost', { id: 'usbhost0', vendorId: '046d', productId: 'c52b' }, { hostbus: 1, hostport: '1.2' }),
      { hostbus: 1, hostport: '1.2', vendorId: null, productId: null });
  });

  it('the host kinds have sections and rows naming the host device', () => {
    assert.deepEqual(['hostpci', 'mdev', 'usbhost'].map((k) => kindText[k as 'hostpci'].title), ['PCI host devices', 'Mediated devices', 'USB host devices']);
    assert.ok(isHostKind('hostpci') && !isHostKind('disk'));
    const def = fakeDefinition('web', {
      hostPci: [{ id: 'hostpci0', address: '0000:03:10.0', rom: false }],
      mdevs: [{ id: 'mdev0', uuid: SAMPLE_MDEV_UUID, type: 'nvidia-222' }],
      hostUsb: [{ id: 'usbhost0', vendorId: '046d', productId: 'c52b' }, { id: 'usbhost1', hostbus: 2, hostport: '1' }],
    });
    assert.ok(canAdd(def, 'hostpci'));
    const [pci] = tableRows(def, ['hostpci']);
    assert.equal(pci!.cells.hostDevice, '0000:03:10.0');
    assert.equal(pci!.noun, 'PCI host device');
    assert.ok(pci!.cells.mode && pci!.cells.mode !== '—', 'a mode, from device-rows or the renderer\'s own');
    assert.equal(tableRows(def, ['mdev'])[0]!.cells.hostDevice, SAMPLE_MDEV_UUID);
    assert.deepEqual(tableRows(def, ['usbhost']).map((r) => r.cells.hostDevice), ['046d:c52b', 'bus 2 port 1']);
    assert.deepEqual(hostColumns.map((c) => c.key), ['id', 'hostDevice', 'type', 'mode', 'detail']);
  });
});

describe('permission errors', () => {
  it('carry the exact commands to run as root; other errors and malformed details carry none', () => {
    const e = new HangarError('permission', 'Hangar may not bind devices here', 'run these as root', { commands: ['echo vfio-pci > /sys/bus/pci/devices/0000:01:00.0/driver_override'] });
    assert.deepEqual(toUiError(e).commands, ['echo vfio-pci > /sys/bus/pci/devices/0000:01:00.0/driver_override']);
    assert.deepEqual(toUiError(e.toPayload()).commands, ['echo vfio-pci > /sys/bus/pci/devices/0000:01:00.0/driver_override'], 'a payload too');
    assert.equal(toUiError(new HangarError('invalid-state', 'x', 'y', { commands: ['rm -rf /'] })).commands, undefined);
    assert.equal(toUiError(new HangarError('permission', 'x', 'y', { commands: [1] })).commands, undefined);
  });
});

describe('host-devices store against the fake core', () => {
  let core: FakeCore;
  let timers: ManualTimers;

  beforeEach(() => {
    setActivePinia(createPinia());
    core = new FakeCore();
    timers = new ManualTimers();
  });

  async function connected(): Promise<ReturnType<typeof useHostDevicesStore>> {
    const conn = useConnectionStore();
    conn.start({ transport: core, timers });
    await settle();
    assert.equal(conn.status, 'connected');
    return useHostDevicesStore();
  }

  it('loads the report once; Refresh fetches again', async () => {
    const hd = await connected();
    await hd.load();
    await hd.load();
    assert.equal(hd.fetches.report, 1);
    assert.equal(hd.report?.pci.length, sampleHostReport().pci.length);
    await hd.refresh();
    assert.equal(hd.fetches.report, 2);
  });

  it('bind to vfio-pci binds the group\'s other functions too; the report is fetched again; give back restores the drivers', async () => {
    const hd = await connected();
    await hd.load();
    const r = await hd.bindVfio('0000:01:00.0');
    assert.ok(r.ok);
    assert.match(r.status, /0000:01:00\.0 \(and the rest of its IOMMU group\) is on vfio-pci now \(through sudo\)/);
    assert.ok(r.result.commands.some((c) => c.includes('0000:01:00.1/driver_override')), 'the HDMI audio function goes with it');
    assert.equal(hd.fetches.report, 2, 're-fetched after the change');
    assert.equal(dev(hd.report!, '0000:01:00.0').driver, 'vfio-pci');
    assert.equal(dev(hd.report!, '0000:01:00.1').driver, 'vfio-pci');
    assert.equal(dev(hd.report!, '0000:00:01.0').driver, 'pcieport', 'the root port stays');
    assert.deepEqual(hd.status?.commands, r.result.commands);
    const back = await hd.releaseVfio('0000:01:00.0');
    assert.ok(back.ok);
    assert.equal(dev(hd.report!, '0000:01:00.0').driver, 'amdgpu');
    assert.equal(dev(hd.report!, '0000:01:00.1').driver, 'snd_hda_intel');
    assert.deepEqual(core.hostLog, ['bindVfio 0000:01:00.0', 'releaseVfio 0000:01:00.0']);
  });

  it('without privilege an action fails with the commands to run as root, shown beside that action; nothing changes', async () => {
    core.hostReport = { ...core.hostReport, privilege: 'none' };
    const hd = await connected();
    await hd.load();
    const r = await hd.bindVfio('0000:01:00.0');
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'permission');
    assert.ok(r.error.commands?.includes('echo vfio-pci > /sys/bus/pci/devices/0000:01:00.0/driver_override'));
    assert.deepEqual(hd.actionErrors.get('pci:0000:01:00.0'), r.error);
    assert.equal(dev(hd.report!, '0000:01:00.0').driver, 'amdgpu');
    assert.deepEqual(core.hostLog, []);
    hd.dismissError('pci:0000:01:00.0');
    assert.equal(hd.actionErrors.size, 0);
  });

  it('the VF count changes; the core refuses while a running VM has a VF, and that refusal is shown', async () => {
    const hd = await connected();
    await hd.load();
    assert.ok((await hd.setSriovVfs(SAMPLE_PF, 6)).ok);
    assert.equal(dev(hd.report!, SAMPLE_PF).sriov?.numVfs, 6);
    assert.equal(hd.report!.pci.filter((d) => d.physfn === SAMPLE_PF).length, 6);
    core.add(fakeVm('web', 'running', { definition: fakeDefinition('web', { hostPci: [{ id: 'hostpci0', address: '0000:03:10.2' }] }) }));
    const refused = await hd.setSriovVfs(SAMPLE_PF, 2);
    assert.ok(!refused.ok);
    assert.equal(refused.error.code, 'invalid-state');
    assert.match(refused.error.hint!, /shut down web/);
    assert.ok(hd.actionErrors.has(`sriov:${SAMPLE_PF}`));
    assert.equal(dev(hd.report!, SAMPLE_PF).sriov?.numVfs, 6);
    assert.deepEqual(hd.report!.assignments.map((a) => [a.device, a.vmName, a.running]), [['0000:03:10.2', 'web', true]]);
  });

  it('a VF\'s MAC and VLAN, and mdevs created and removed', async () => {
    const hd = await connected();
    await hd.load();
    const vf = await hd.setVfConfig(SAMPLE_PF, 1, { mac: '52:54:00:00:00:01', vlan: 10 });
    assert.ok(vf.ok && vf.result.commands[0] === 'ip link set dev enp3s0f0 vf 1 mac 52:54:00:00:00:01 vlan 10');
    const made = await hd.createMdev('0000:04:00.0', 'nvidia-222');
    assert.ok(made.ok && made.result.uuid);
    assert.ok(hd.report!.mdevs.some((m) => m.uuid === made.result.uuid));
    assert.equal(dev(hd.report!, '0000:04:00.0').mdevTypes[0]!.availableInstances, 14);
    const none = await hd.createMdev('0000:04:00.0', 'nvidia-223');
    assert.ok(!none.ok && /no nvidia-223 instances are left/.test(none.error.message));
    assert.ok((await hd.removeMdev(made.result.uuid!)).ok);
    assert.ok(!hd.report!.mdevs.some((m) => m.uuid === made.result.uuid));
  });

  it('VM changes re-fetch the report while a view follows it; otherwise the next load does', async () => {
    const hd = await connected();
    const stop = hd.follow();
    await settle();
    assert.equal(hd.fetches.report, 1);
    core.add(fakeVm('web', 'stopped', { definition: fakeDefinition('web', { hostPci: [{ id: 'hostpci0', address: '0000:03:10.0' }] }) }));
    core.change('web', 'running');
    await settle();
    assert.equal(hd.fetches.report, 2);
    assert.equal(hd.report!.assignments[0]?.running, true);
    stop();
    core.change('web', 'stopped');
    await settle();
    assert.equal(hd.fetches.report, 2, 'nobody is looking');
    await hd.load();
    assert.equal(hd.fetches.report, 3, 'stale: fetched on the next load');
    assert.equal(hd.report!.assignments[0]?.running, false);
  });

  it('a failed report fetch is kept as the error; a later success clears it', async () => {
    const hd = await connected();
    core.failNext.set('hostDevices', new HangarError('io-error', 'cannot read /sys/bus/pci', 'check the sysfs mount'));
    await hd.load();
    assert.equal(hd.report, null);
    assert.equal(hd.error?.message, 'cannot read /sys/bus/pci');
    await hd.refresh();
    assert.equal(hd.error, null);
    assert.ok(hd.report);
  });
});
