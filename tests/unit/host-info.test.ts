// Host facts for the wizard, against fixture trees: bridges, the bridge helper's ACL, missing tools.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeBytesAt, hostInfo, listBridges } from '../../core/node/host/host-info.ts';

function sysWith(devices: Record<string, boolean>): string {
  const root = mkdtempSync(join(tmpdir(), 'hangar-sys-'));
  for (const [name, isBridge] of Object.entries(devices)) {
    mkdirSync(join(root, 'class', 'net', name), { recursive: true });
    if (isBridge) mkdirSync(join(root, 'class', 'net', name, 'bridge'));
  }
  return root;
}

test('bridges are the net devices with a bridge/ folder', () => {
  assert.deepEqual(listBridges(sysWith({ eth0: false, virbr0: true, br0: true, lo: false })), ['br0', 'virbr0']);
  assert.deepEqual(listBridges(join(tmpdir(), 'no-such-sys')), []);
});

test('missing tools and firmware are unavailable, each with the reason and the apt fix', async () => {
  const data = mkdtempSync(join(tmpdir(), 'hangar-data-'));
  const hi = await hostInfo({ dataDir: join(data, 'not', 'yet'), sysRoot: sysWith({ eth0: false }), findBinary: () => null, firmwareDirs: [join(data, 'nofw')], romDirs: [join(data, 'noroms')] });
  assert.equal(hi.firmware.bios.available, true);
  assert.equal(hi.firmware.uefi.available, false);
  assert.match(hi.firmware.uefi.fix!, /ovmf/);
  assert.match(hi.tpm.reason!, /swtpm is not installed/);
  assert.match(hi.tpm.fix!, /apt-get install -y swtpm/);
  assert.match(hi.network.passt.fix!, /passt/);
  assert.equal(hi.network.bridge.available, false);
  assert.match(hi.network.bridge.reason!, /no network bridge/);
  assert.match(hi.pxe.fix!, /ipxe-qemu/);
  assert.match(hi.cloudInit.reason!, /xorriso/);
  assert.ok(hi.freeBytes > 0, 'free space of the nearest existing parent');
  assert.ok(await freeBytesAt(join(data, 'a', 'b')) > 0);
  // A bridge this user cannot use (no qemu-bridge-helper): not offered, with the reason and the fix.
  const withBridge = await hostInfo({ dataDir: data, sysRoot: sysWith({ br0: true }), findBinary: () => null, bridge: { helperDirs: [join(data, 'nohelper')] } });
  assert.equal(withBridge.network.bridge.available, false);
  assert.deepEqual(withBridge.network.bridge.bridges, []);
  assert.match(withBridge.network.bridge.reason!, /qemu-bridge-helper is not installed/);
  assert.match(withBridge.network.bridge.fix!, /apt-get install qemu-system-common/);
});
