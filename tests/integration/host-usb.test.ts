// Host USB devices (usb-host) with the real core, QEMU under TCG and the test guest: one plugged
// into a running q35 VM that has a USB controller (`hangar device add` applies it now, QEMU has the
// device with the ids asked for, waiting for a host device that is absent) and unplugged again; a
// VM started with a usb-host on an empty bus+port starts and runs; a running VM without a USB
// controller, or given a VFIO device, keeps the change pending with the reason.
// The QEMU side is read over QMP with the daemon stopped (QEMU outlives it; the next command
// starts a new one that re-attaches), since the daemon holds QEMU's one QMP connection.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runtimeDir, vmRuntimePaths } from '../../core/node/paths.ts';
import { QmpClient } from '../../core/node/qmp/client.ts';
import { ensureTestGuest, GUEST_CMDLINE, PCI_END, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness } from '../helpers/hangar.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

/** pid.codes test ids and bus numbers above 200: no host has them, so QEMU never takes a real device. */
const ABSENT_IDS = '1209:0003';
const ABSENT_BUS = 201;
const ABSENT_PORT = '1.4';

interface Change { applied: string; id: string; note?: string; info: { pending?: Array<{ kind: string; id: string; change: string; summary: string }> } }

before(async () => {
  // Were these plugged in here, QEMU would take them from the host.
  const root = '/sys/bus/usb/devices';
  if (existsSync(root)) {
    for (const name of readdirSync(root)) {
      assert.notEqual(name, `${ABSENT_BUS}-${ABSENT_PORT}`, `a device is in USB port ${name} of this host`);
      const id = (f: string): string => { try { return readFileSync(join(root, name, f), 'utf8').trim(); } catch { return ''; } };
      assert.notEqual(`${id('idVendor')}:${id('idProduct')}`, ABSENT_IDS, `USB device ${ABSENT_IDS} is plugged into this host (${name})`);
    }
  }
  guest = await ensureTestGuest();
  h = new HangarHarness();
});

after(async () => {
  await h?.cleanup();
});

async function boot(name: string, extra: Record<string, unknown>): Promise<{ id: string }> {
  const file = join(h.home, `${name}.json`);
  writeFileSync(file, JSON.stringify({ machine: 'q35', memoryMiB: 256, accel: 'tcg', boot: { kernel: { kernel: guest.kernel, initrd: guest.initrd, append: GUEST_CMDLINE } }, ...extra }));
  const info = await h.json<{ id: string }>(['create', '--name', name, '--file', file]);
  await h.ok(['start', name]);
  await h.waitForSerial(info.id, READY_MARKER, 1, 120_000);
  await h.waitForSerial(info.id, PCI_END);
  return info;
}

interface UsbHostSeen { vendorid: number; productid: number; hostbus: number; hostport: string; attached: boolean }

/** The usb-host devices QEMU has now (children of /machine/peripheral), read over QMP while the daemon is stopped. */
async function qemuUsbHosts(vmId: string): Promise<Map<string, UsbHostSeen>> {
  await h.ok(['daemon', 'stop']);
  const socket = vmRuntimePaths(runtimeDir({ HANGAR_HOME: h.home }), vmId).qmpSocket;
  // QEMU greets the next client once the daemon's connection is closed.
  const qmp = await QmpClient.connect(socket, { connectTimeoutMs: 15_000, commandTimeoutMs: 10_000 });
  try {
    const out = new Map<string, UsbHostSeen>();
    for (const child of await qmp.qomList('/machine/peripheral')) {
      if (child.type !== 'child<usb-host>') continue;
      const path = `/machine/peripheral/${child.name}`;
      const get = <T>(p: string): Promise<T> => qmp.qomGet<T>(path, p);
      out.set(child.name, { vendorid: await get('vendorid'), productid: await get('productid'), hostbus: await get('hostbus'), hostport: await get('hostport'), attached: await get('attached') });
    }
    return out;
  } finally {
    qmp.close();
  }
}

describe('host USB devices (usb-host)', { timeout: 600_000 }, () => {
  test('a usb-host is hotplugged into a running VM with a USB controller, is there in QEMU, and is unplugged', async () => {
    const vm = await boot('usbhot', { inputs: [{ id: 'tab0', type: 'tablet', bus: 'usb' }] });
    const add = await h.json<Change>(['device', 'add', 'usbhot', 'usbhost', ABSENT_IDS]);
    assert.equal(add.applied, 'now', `add: ${add.note}`);
    assert.match(add.note ?? '', /hotplugged/);
    assert.deepEqual(add.info.pending, [], 'nothing pending after the hotplug');
    const list = await h.ok(['device', 'list', 'usbhot']);
    assert.match(list, new RegExp(`usbhost\\s+${add.id}\\s+usb-host\\s+Passthrough[^\\n]*${ABSENT_IDS}`), list);

    const seen = await qemuUsbHosts(vm.id);
    assert.deepEqual(seen.get(add.id), { vendorid: 0x1209, productid: 0x0003, hostbus: 0, hostport: '', attached: false },
      `QEMU has ${add.id} waiting for ${ABSENT_IDS}: ${JSON.stringify([...seen])}`);
    assert.equal(await h.state('usbhot'), 'running', 'the restarted daemon re-attached to the running VM');

    const rm = await h.json<Change>(['device', 'remove', 'usbhot', 'usbhost', add.id]);
    assert.equal(rm.applied, 'now', `remove: ${rm.note}`);
    assert.match(rm.note ?? '', /unplugged/);
    assert.equal((await qemuUsbHosts(vm.id)).size, 0, 'QEMU no longer has the usb-host device');
    const shown = await h.json<{ state: string; definition: { hostUsb: unknown[]; inputs: unknown[] }; pending: unknown[] }>(['show', 'usbhot']);
    assert.deepEqual([shown.state, shown.definition.hostUsb.length, shown.definition.inputs.length, shown.pending.length], ['running', 0, 1, 0]);
    // Plugged again under the same id: the unplug freed it.
    const again = await h.json<Change>(['device', 'add', 'usbhot', 'usbhost', `bus=${ABSENT_BUS},port=${ABSENT_PORT},id=${add.id}`]);
    assert.equal(again.applied, 'now', `add again: ${again.note}`);
    await h.ok(['destroy', 'usbhot']);
  });

  test('a VM with a usb-host on an empty bus and port starts and runs', async () => {
    const vm = await boot('usbport', { hostUsb: [{ id: 'port0', hostbus: ABSENT_BUS, hostport: ABSENT_PORT }] });
    assert.equal(await h.state('usbport'), 'running');
    // The guest works: its shell answers.
    assert.match(await h.consoleCommand('usbport', 'echo usb-$((20+22))', 3), /usb-42/);
    const seen = await qemuUsbHosts(vm.id);
    assert.deepEqual(seen.get('port0'), { vendorid: 0, productid: 0, hostbus: ABSENT_BUS, hostport: ABSENT_PORT, attached: false });
    const rows = await h.json<{ devices: Array<{ kind: string; id: string; detail: string }> }>(['device', 'list', 'usbport']);
    assert.ok(rows.devices.some((r) => r.kind === 'usb' && r.detail === 'added for the USB devices'), 'qemu-xhci was added for it');
    assert.equal(rows.devices.find((r) => r.id === 'port0')?.detail, `bus ${ABSENT_BUS} port ${ABSENT_PORT}`);
    await h.ok(['destroy', 'usbport']);
  });

  test('a running VM without a USB controller, or given a VFIO device, keeps the change for its next boot, with the reason', async () => {
    await boot('nousb', {});
    const usb = await h.json<Change>(['device', 'add', 'nousb', 'usbhost', ABSENT_IDS]);
    assert.equal(usb.applied, 'next-boot');
    assert.match(usb.note ?? '', /applies at next boot: the VM started without a USB controller/);
    const pci = await h.json<Change>(['device', 'add', 'nousb', 'hostpci', '0000:03:10.0,rom=off']);
    assert.equal(pci.applied, 'next-boot');
    assert.match(pci.note ?? '', /VFIO devices are assigned at start \(the group is bound to vfio-pci then\)/);
    const pending = (await h.json<{ pending: Array<{ kind: string; id: string; change: string }> }>(['show', 'nousb'])).pending;
    assert.deepEqual(pending.map((p) => `${p.change} ${p.kind} ${p.id}`).sort(), [`add hostpci ${pci.id}`, `add usbhost ${usb.id}`]);
    assert.equal(await h.state('nousb'), 'running');
    await h.ok(['destroy', 'nousb']);
  });
});
