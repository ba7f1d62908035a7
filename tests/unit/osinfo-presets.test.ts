// Preset logic (pure) and the built-in generic entries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpuModelFor, presetFor } from '../../core/common/os-presets.ts';
import { GENERIC_OSES, genericFor } from '../../core/common/os-types.ts';
import type { OsEntry } from '../../core/common/os-types.ts';

const GiB = 1024 ** 3;
const gen = (id: string): OsEntry => GENERIC_OSES.find((o) => o.id === id)!;

test('generic Linux: 2 GiB, 2 vCPUs, 20 GiB, virtio, BIOS', () => {
  assert.deepEqual({ ...presetFor(gen('generic-linux')), notes: [] }, {
    osId: 'generic-linux', memoryMiB: 2048, vcpus: 2, diskBytes: 20 * GiB, diskBus: 'virtio-blk', nicModel: 'virtio-net', firmware: 'bios', tpm: false, video: 'virtio-gpu', plainCpu: false, notes: [],
  });
});

test('generic Windows: 4 GiB, 2 vCPUs, 64 GiB, SATA + e1000 (no virtio drivers), UEFI, no TPM', () => {
  const p = presetFor(gen('generic-windows'));
  assert.deepEqual([p.memoryMiB, p.vcpus, p.diskBytes, p.diskBus, p.nicModel, p.firmware, p.tpm], [4096, 2, 64 * GiB, 'sata', 'e1000', 'uefi', false]);
  assert.ok(p.notes.some((n) => /virtio-blk/.test(n)));
});

test('other: 1 GiB, 1 vCPU, 10 GiB, emulated devices, BIOS; generic BSD uses virtio', () => {
  const p = presetFor(gen('other'));
  assert.deepEqual([p.memoryMiB, p.vcpus, p.diskBytes, p.diskBus, p.nicModel, p.firmware, p.tpm], [1024, 1, 10 * GiB, 'sata', 'e1000', 'bios', false]);
  assert.equal(gen('other').name, 'Other / unknown');
  assert.equal(presetFor(gen('generic-bsd')).diskBus, 'virtio-blk');
});

test('genericFor maps osinfo families', () => {
  assert.equal(genericFor('linux').id, 'generic-linux');
  assert.equal(genericFor('winnt').id, 'generic-windows');
  assert.equal(genericFor('win9x').id, 'generic-windows');
  assert.equal(genericFor('freebsd').id, 'generic-bsd');
  assert.equal(genericFor('solaris').id, 'other');
  assert.equal(genericFor(undefined).id, 'other');
});

function os(over: Partial<OsEntry>): OsEntry {
  return { ...gen('generic-linux'), id: 'x', generic: false, minimum: {}, recommended: {}, ...over };
}

test('recommended resources win, never below the minimum; fallbacks when osinfo is silent', () => {
  const p = presetFor(os({ minimum: { memoryMiB: 4096, vcpus: 2, diskBytes: 64 * GiB }, recommended: { memoryMiB: 1024, diskBytes: 40 * GiB } }));
  assert.deepEqual([p.memoryMiB, p.vcpus, p.diskBytes], [4096, 2, 64 * GiB]);
  const q = presetFor(os({ minimum: {}, recommended: {} }));
  assert.deepEqual([q.memoryMiB, q.vcpus, q.diskBytes], [1024, 2, 10 * GiB]);
});

test('firmware: TPM OS → uefi-secure + tpm; EFI-only → uefi; Windows ≥ 8 → uefi, Windows 7 → bios', () => {
  const w11 = presetFor(os({ family: 'winnt', needsTpm: true, firmware: { efi: true, bios: false, secureBoot: true } }));
  assert.equal(w11.firmware, 'uefi-secure');
  assert.equal(w11.tpm, true);
  assert.equal(presetFor(os({ firmware: { efi: true, bios: false } })).firmware, 'uefi');
  assert.equal(presetFor(os({ firmware: { efi: true } })).firmware, 'bios', 'Linux that can do both keeps BIOS');
  assert.equal(presetFor(os({ family: 'winnt', version: '10.0', firmware: {} })).firmware, 'uefi');
  assert.equal(presetFor(os({ family: 'winnt', version: '6.1', firmware: {} })).firmware, 'bios');
  assert.equal(presetFor(os({ firmware: { secureBoot: true, efi: true } })).firmware, 'uefi-secure');
});

test('virtio flags choose disk bus and NIC independently', () => {
  const p = presetFor(os({ virtio: { ...gen('generic-linux').virtio, blk: false, net: true } }));
  assert.equal(p.diskBus, 'sata');
  assert.equal(p.nicModel, 'virtio-net');
});

test('CPU model: host under KVM, max under TCG; OSes from before 2006 and DOS/9x get qemu64 with a note', () => {
  const modern = presetFor(os({ releaseDate: '2023-06-10' }));
  assert.equal(cpuModelFor(modern, 'kvm'), 'host');
  assert.equal(cpuModelFor(modern, 'tcg'), 'max');
  const xp = presetFor(os({ family: 'winnt', version: '5.1', releaseDate: '2001-10-25' }));
  assert.equal(xp.plainCpu, true);
  assert.equal(cpuModelFor(xp, 'kvm'), 'qemu64');
  assert.equal(cpuModelFor(xp, 'tcg'), 'qemu64');
  assert.ok(xp.notes.some((n) => /qemu64/.test(n)));
  assert.equal(presetFor(os({ family: 'win9x' })).plainCpu, true);
  assert.equal(presetFor(os({ releaseDate: undefined })).plainCpu, false, 'no date: a modern model');
  assert.equal(presetFor(gen('generic-windows')).plainCpu, false);
});
