import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDefinition, validateVmName, migrateDefinition } from '../../core/common/definition.ts';
import { assertCan, canDo } from '../../core/common/state.ts';
import type { HangarError } from '../../core/common/errors.ts';

const base = { version: 1, id: '0b6c1c2e-8f0a-4c59-9d3e-8a6f1d1e2a3b', name: 'vm' };

test('defaults are filled in', () => {
  const d = parseDefinition(base);
  assert.equal(d.machine, 'q35');
  assert.equal(d.accel, 'auto');
  assert.equal(d.memoryMiB, 512);
  assert.equal(d.cpu.vcpus, 1);
  assert.deepEqual(d.boot.order, ['disk', 'cdrom', 'network']);
  assert.equal(d.serial.enabled, true);
});

test('unknown fields survive a round trip, at the top and nested', () => {
  const d = parseDefinition({ ...base, futureField: { x: 1 }, cpu: { vcpus: 2, futureCpu: 'y' } });
  const again = parseDefinition(JSON.parse(JSON.stringify(d)));
  assert.deepEqual((again as Record<string, unknown>).futureField, { x: 1 });
  assert.equal((again.cpu as Record<string, unknown>).futureCpu, 'y');
});

test('a definition without version is migrated; a newer one is refused with the fix', () => {
  assert.equal(migrateDefinition({ name: 'x' }).version, 1);
  assert.throws(() => parseDefinition({ ...base, version: 99 }), (e: HangarError) => /newer Hangar/.test(e.message) && /update Hangar/.test(e.hint ?? ''));
});

test('names are validated', () => {
  assert.equal(validateVmName('ok name-1'), 'ok name-1');
  for (const bad of ['', 'a/b', 'a\nb', ' lead', 'x'.repeat(65), '..']) {
    assert.throws(() => validateVmName(bad), (e: HangarError) => e.code === 'invalid-input', bad);
  }
});

test('every bad field is named', () => {
  assert.throws(() => parseDefinition({ ...base, memoryMiB: 'lots', machine: 'vax' }),
    (e: HangarError) => /memoryMiB/.test(e.message) && /machine/.test(e.message));
});

test('cross-field rules', () => {
  const nic = (id: string, mac: string) => ({ id, mac, network: { type: 'user' } });
  assert.throws(() => parseDefinition({ ...base, nics: [nic('n0', '52:54:00:00:00:01'), nic('n0', '52:54:00:00:00:02')] }), /used twice/);
  assert.throws(() => parseDefinition({ ...base, nics: [nic('n0', '52:54:00:00:00:01'), nic('n1', '52:54:00:00:00:01')] }), /MAC .* two NICs/);
  assert.throws(() => parseDefinition({ ...base, nics: [nic('n0', '53:54:00:00:00:01')] }), /unicast/);
  assert.throws(() => parseDefinition({ ...base, cpu: { vcpus: 4, sockets: 2, cores: 1 } }), /topology/);
  assert.throws(() => parseDefinition({ ...base, machine: 'microvm' }), /microvm/);
  assert.throws(() => parseDefinition({ ...base, disks: [{ id: 'd', file: 'relative.qcow2' }] }), /absolute path/);
});

test('state machine: valid actions pass, others get a typed error naming the state', () => {
  assert.ok(canDo('start', 'stopped'));
  assert.ok(canDo('start', 'crashed'));
  assert.ok(!canDo('start', 'running'));
  assert.ok(canDo('resume', 'paused'));
  assert.ok(!canDo('delete', 'running'));
  assert.throws(() => assertCan('pause', 'stopped', 'vm1'), (e: HangarError) => e.code === 'invalid-state' && /it is stopped/.test(e.message) && !!e.hint);
});

test('device kinds: defaults, and the rules a machine imposes', () => {
  const d = parseDefinition({ ...base, rng: {}, balloon: {}, watchdog: {}, sound: {}, inputs: [{ id: 'tab', type: 'tablet' }] });
  assert.deepEqual([d.rng, d.balloon, d.watchdog, d.sound, d.video], [
    { source: 'urandom' }, { freePageReporting: false, deflateOnOom: false }, { model: 'i6300esb', action: 'reset' }, { model: 'hda' }, { model: 'none', display: 'vnc', clipboard: false },
  ]);
  assert.equal(d.inputs[0]!.bus, 'usb');
  assert.throws(() => parseDefinition({ ...base, inputs: [{ id: 't', type: 'tablet', bus: 'ps2' }] }), /PS\/2 has no tablet/);
  assert.throws(() => parseDefinition({ ...base, inputs: [{ id: 'a', type: 'mouse', bus: 'ps2' }, { id: 'b', type: 'mouse', bus: 'ps2' }] }), /one mouse port/);
  assert.throws(() => parseDefinition({ ...base, inputs: [{ id: 'x', type: 'mouse' }], nics: [{ id: 'x', mac: '52:54:00:00:00:01', network: { type: 'user' } }] }), /"x" is used twice/);
  const kernel = { boot: { kernel: { kernel: '/k' } } };
  for (const [extra, re] of [
    [{ video: { model: 'vga' } }, /video adapter/], [{ sound: {} }, /sound card/], [{ watchdog: {} }, /watchdog/],
    [{ usb: {} }, /USB controller/], [{ inputs: [{ id: 'k', type: 'keyboard', bus: 'usb' }] }, /no USB or PS\/2/],
  ] as const) {
    assert.throws(() => parseDefinition({ ...base, machine: 'microvm', ...kernel, ...extra }), re);
  }
  assert.doesNotThrow(() => parseDefinition({ ...base, machine: 'microvm', ...kernel, rng: {}, balloon: {}, inputs: [{ id: 'k', type: 'keyboard', bus: 'virtio' }] }));
  assert.throws(() => parseDefinition({ ...base, watchdog: { action: 'explode' } }), /watchdog/);
});
