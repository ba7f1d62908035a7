// Host USB discovery against tests/fixtures/sysfs/workstation: two root hubs, a hub with a
// Logitech receiver and a keyboard, and a SanDisk stick, plus the usb.ids sample.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { listUsbDevices } from '../../core/node/host/usb-devices.ts';
import { UsbIds } from '../../core/node/host/usb-ids.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures');
const sysRoot = join(FIXTURES, 'sysfs/workstation');
const usbIds = new UsbIds(join(FIXTURES, 'usb.ids'));

describe('listUsbDevices', () => {
  it('lists devices and hubs, not interfaces, in bus/port order', async () => {
    const list = await listUsbDevices({ sysRoot, usbIds });
    assert.deepEqual(list.map((d) => d.name), ['usb1', '1-1', '1-1.2', '1-1.4', 'usb2', '2-1']);
    assert.deepEqual(list.map((d) => d.problems), list.map(() => []));
  });

  it('reads bus, port path, device number, ids, strings, speed and usb.ids names', async () => {
    const list = await listUsbDevices({ sysRoot, usbIds });
    const receiver = list.find((d) => d.name === '1-1.2');
    assert.deepEqual(receiver, {
      name: '1-1.2', busnum: 1, devnum: 5, portPath: '1.2', vendorId: '046d', productId: 'c52b',
      manufacturer: 'Logitech', product: 'USB Receiver', serial: undefined,
      vendorName: 'Logitech, Inc.', productName: 'Unifying Receiver', speed: '12', deviceClass: '00',
      isHub: false, isRootHub: false, problems: [],
    });
    const hub = list.find((d) => d.name === '1-1');
    assert.equal(hub?.isHub, true);
    assert.equal(hub?.productName, 'Hub');
    const root = list.find((d) => d.name === 'usb2');
    assert.equal(root?.isRootHub, true);
    assert.equal(root?.portPath, undefined);
    assert.equal(root?.productName, '3.0 root hub');
    const stick = list.find((d) => d.name === '2-1');
    assert.equal(stick?.manufacturer, 'SanDisk', 'descriptor strings are trimmed');
    assert.equal(stick?.speed, '5000');
    assert.equal(stick?.serial, '4C530001230815110544');
  });

  it('ids not in usb.ids, or no usb.ids at all, give undefined names', async () => {
    const kb = (await listUsbDevices({ sysRoot, usbIds })).find((d) => d.name === '1-1.4');
    assert.equal(kb?.vendorId, '04d9');
    assert.equal(kb?.vendorName, undefined);
    assert.equal(kb?.manufacturer, undefined);
    const noDb = await listUsbDevices({ sysRoot, usbIds: new UsbIds('/nonexistent/usb.ids') });
    assert.equal(noDb.length, 6);
    assert.ok(noDb.every((d) => d.vendorName === undefined && d.productName === undefined));
  });

  it('a root without USB gives an empty list', async () => {
    assert.deepEqual(await listUsbDevices({ sysRoot: '/nonexistent', usbIds }), []);
  });
});
