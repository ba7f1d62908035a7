// Host USB devices at start, on the fixture sysfs tree: an absent device is a note (QEMU attaches
// it when it appears), a present one whose /dev/bus/usb node this user cannot open is refused with
// the udev rule, and root opens everything.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDefinition } from '../../core/common/definition.ts';
import { HangarError } from '../../core/common/errors.ts';
import type { VmDefinition } from '../../core/common/model.ts';
import { checkUsbHostDevices, matchingUsbDevices } from '../../core/node/host/usb-host-checks.ts';
import { listUsbDevices } from '../../core/node/host/usb-devices.ts';

const sysRoot = join(import.meta.dirname, '..', 'fixtures', 'sysfs', 'workstation');
let devRoot: string;

before(() => {
  devRoot = mkdtempSync(join(tmpdir(), 'hgt-dev-'));
  mkdirSync(join(devRoot, 'bus/usb/001'), { recursive: true });
  // 1-1.2 (046d:c52b) is bus 1 device 5: readable by its owner only; 1-1.4 (bus 1 device 7) by anyone.
  writeFileSync(join(devRoot, 'bus/usb/001/005'), '');
  chmodSync(join(devRoot, 'bus/usb/001/005'), 0o600);
  writeFileSync(join(devRoot, 'bus/usb/001/007'), '');
  chmodSync(join(devRoot, 'bus/usb/001/007'), 0o666);
});

after(() => rmSync(devRoot, { recursive: true, force: true }));

const vm = (hostUsb: unknown[]): VmDefinition => parseDefinition({ version: 1, id: crypto.randomUUID(), name: 'usb', hostUsb }) as VmDefinition;

test('a usb-host entry matches by vendor:product on any port, by bus + port, or by both', async () => {
  const devs = await listUsbDevices({ sysRoot });
  const names = (u: Record<string, unknown>) => matchingUsbDevices(vm([{ id: 'usbhost0', ...u }]).hostUsb[0]!, devs).map((d) => d.name);
  assert.deepEqual(names({ vendorId: '046d', productId: 'c52b' }), ['1-1.2']);
  assert.deepEqual(names({ hostbus: 1, hostport: '1.4' }), ['1-1.4']);
  assert.deepEqual(names({ vendorId: '046d', productId: 'c52b', hostbus: 1, hostport: '1.4' }), [], 'both given: both must hold');
  assert.deepEqual(names({ hostbus: 1, hostport: '1' }), ['1-1'], 'a hub is a device too');
});

test('absent: a note; present and openable: nothing; present but not openable by this user: refused with the udev rule', async () => {
  const absent = vm([{ id: 'usbhost0', vendorId: '1209', productId: '0001' }]);
  assert.deepEqual(await checkUsbHostDevices(absent, { sysRoot, devRoot, uid: 1000 }), ['USB host device usbhost0 (1209:0001) is not plugged in: the guest gets it when it appears']);
  // Root opens any node, so whether "this user" may is asked of a stand-in: only bus 1 device 7 opens.
  const canOpen = async (node: string): Promise<boolean> => node === join(devRoot, 'bus/usb/001/007');
  assert.deepEqual(await checkUsbHostDevices(vm([{ id: 'usbhost0', hostbus: 1, hostport: '1.4' }]), { sysRoot, devRoot, uid: 1000, canOpen }), []);
  const closed = vm([{ id: 'usbhost1', vendorId: '046d', productId: 'c52b' }]);
  await assert.rejects(checkUsbHostDevices(closed, { sysRoot, devRoot, uid: 1000, canOpen }), (e: unknown) => {
    assert.ok(e instanceof HangarError);
    assert.equal(e.code, 'permission');
    assert.match(e.message, /usbhost1 \(046d:c52b\) is .*bus\/usb\/001\/005, which this user cannot open, so QEMU would leave it out/);
    assert.match(e.hint ?? '', /ATTRS\{idVendor\}=="046d", ATTRS\{idProduct\}=="c52b"/);
    assert.deepEqual((e.details as { commands: string[] }).commands.slice(1), ['udevadm control --reload', 'udevadm trigger']);
    return true;
  });
  assert.deepEqual(await checkUsbHostDevices(closed, { sysRoot, devRoot, uid: 0, canOpen }), [], 'root opens every node');
  // The default check is access(2) on the real node.
  assert.deepEqual(await checkUsbHostDevices(vm([{ id: 'usbhost0', hostbus: 1, hostport: '1.4' }]), { sysRoot, devRoot, uid: 1000 }), []);
});
