// What host devices cost a VM, in words (hangar show, the Devices tab): migration, pinned memory
// against the locked-memory limit, devices leaving the host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memlockFits, passthroughConsequences, pinnedBytes } from '../../core/common/passthrough-consequences.ts';

const MIB = 1024 * 1024;
const none = { hostPci: [], mdevs: [], hostUsb: [], memoryMiB: 1024 };
const pci = { ...none, hostPci: [{ id: 'hostpci0', address: '0000:03:10.0', managed: true, rom: true }] };

test('no host devices, no consequences', () => {
  assert.deepEqual(passthroughConsequences(none), []);
});

test('a PCI device: migration blocked, memory pinned (and whether the limit allows it), the group leaves the host', () => {
  const plain = passthroughConsequences(pci);
  assert.equal(plain.length, 3);
  assert.match(plain[0]!, /live migration and snapshots that save guest memory are blocked/);
  assert.match(plain[1]!, /all 1024 MiB of guest memory are pinned/);
  assert.match(plain[2]!, /IOMMU group\) leaves the host/);
  assert.match(passthroughConsequences(pci, { limitBytes: 8 * MIB, exempt: false })[1]!, /limit \(8 MiB\) is too small: raise it to at least 2048 MiB/);
  assert.match(passthroughConsequences(pci, { limitBytes: null, exempt: false })[1]!, /limit \(unlimited\) allows it/);
  assert.match(passthroughConsequences(pci, { limitBytes: 8 * MIB, exempt: true })[1]!, /does not apply \(root or CAP_IPC_LOCK\)/);
});

test('USB only: no pinned memory, the device leaves the host', () => {
  const c = passthroughConsequences({ ...none, hostUsb: [{ id: 'usbhost0', vendorId: '1209', productId: '0001' }] });
  assert.equal(c.length, 2);
  assert.doesNotMatch(c.join(' '), /pinned/);
  assert.match(c[1]!, /USB device is detached from the host/);
});

test('the limit check has 1 GiB of headroom over guest memory (libvirt\'s rule)', () => {
  assert.equal(pinnedBytes(1024), 2048 * MIB);
  assert.equal(memlockFits(1024, { limitBytes: 2048 * MIB, exempt: false }), true);
  assert.equal(memlockFits(1024, { limitBytes: 2047 * MIB, exempt: false }), false);
});
