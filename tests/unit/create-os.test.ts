// `hangar create --os`: the OS preset fills in what the flags leave open; explicit flags win.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildCreateRequest } from '../../core/node/cli/create-args.ts';
import { HangarError } from '../../core/common/errors.ts';
import { ensureTestGuest } from '../guest/guest.ts';

test('--os win11 gives UEFI with Secure Boot, a TPM, SATA disks and e1000 NICs', async () => {
  const req = await buildCreateRequest({ name: 'w', os: 'win11', 'new-disk': ['64G'], nic: ['user'] });
  const d = req.definition;
  assert.equal(d.osId, 'win11');
  assert.equal(d.firmware, 'uefi-secure');
  assert.deepEqual(d.tpm, { model: 'tpm-crb' });
  assert.ok((d.memoryMiB as number) >= 4096);
  assert.equal(req.newDisks![0]!.bus, 'sata');
  assert.equal((d.nics as Array<{ model: string }>)[0]!.model, 'e1000');
});

test('explicit flags win over the preset', async () => {
  const req = await buildCreateRequest({ name: 'w', os: 'win11', memory: '8192', vcpus: '6', firmware: 'uefi', 'new-disk': ['10G,bus=virtio-blk'], nic: ['user,model=virtio-net'] });
  const d = req.definition;
  assert.equal(d.memoryMiB, 8192);
  assert.equal((d.cpu as { vcpus: number }).vcpus, 6);
  assert.equal(d.firmware, 'uefi');
  assert.equal(req.newDisks![0]!.bus, 'virtio-blk');
  assert.equal((d.nics as Array<{ model: string }>)[0]!.model, 'virtio-net');
});

test('--os debian11 gives virtio devices and BIOS', async () => {
  const req = await buildCreateRequest({ name: 'd', os: 'debian11', 'new-disk': ['8G'], nic: ['user'] });
  assert.equal(req.definition.firmware, 'bios');
  assert.equal(req.definition.tpm, undefined);
  assert.equal(req.newDisks![0]!.bus, 'virtio-blk');
  assert.equal((req.definition.nics as Array<{ model: string }>)[0]!.model, 'virtio-net');
});

test('--os auto detects from the first --cdrom; an unknown medium gets the generic preset', async () => {
  const guest = await ensureTestGuest();
  const req = await buildCreateRequest({ name: 'g', os: 'auto', cdrom: [guest.iso] });
  assert.equal(req.definition.osId, 'other');
});

test('--os errors name the problem and the fix', async () => {
  await assert.rejects(buildCreateRequest({ name: 'x', os: 'auto' }), (e: unknown) => e instanceof HangarError && /no --cdrom/.test(e.message) && /--cdrom ISO/.test(e.hint ?? ''));
  await assert.rejects(buildCreateRequest({ name: 'x', os: 'no-such-os' }), (e: unknown) => e instanceof HangarError && /unknown OS "no-such-os"/.test(e.message) && /hangar os list/.test(e.hint ?? ''));
});
