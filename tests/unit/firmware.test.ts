// Firmware descriptor reading and selection (QEMU's firmware.json rules) against fixture dirs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDefinition } from '../../core/common/definition.ts';
import type { HangarError } from '../../core/common/errors.ts';
import { listFirmwareDescriptors, resolveFirmware, selectFirmware } from '../../core/node/host/firmware.ts';
import { buildArgv } from '../../core/node/qemu/vm-argv.ts';

const GOLDEN_FW = join(import.meta.dirname, '..', 'golden', 'firmware');
const base = { version: 1, id: '0b6c1c2e-8f0a-4c59-9d3e-8a6f1d1e2a3b', name: 'vm' };

test('descriptors are read in file-name order', () => {
  const names = listFirmwareDescriptors([GOLDEN_FW]).map((d) => d.file.split('/').pop());
  assert.deepEqual(names, ['40-edk2-x86_64-secure-enrolled.json', '50-edk2-x86_64-secure.json', '60-edk2-x86_64.json']);
});

test('uefi picks the build without Secure Boot; uefi-secure the enrolled one; pc gets no Secure Boot', () => {
  const all = listFirmwareDescriptors([GOLDEN_FW]);
  assert.match(selectFirmware(all, 'uefi', 'q35')!.file, /60-edk2-x86_64\.json$/);
  assert.match(selectFirmware(all, 'uefi', 'pc')!.file, /60-edk2-x86_64\.json$/);
  assert.match(selectFirmware(all, 'uefi-secure', 'q35')!.file, /40-edk2-x86_64-secure-enrolled\.json$/);
  assert.equal(selectFirmware(all, 'uefi-secure', 'pc'), null);
  assert.equal(selectFirmware(all, 'uefi', 'microvm'), null);
});

test('a later dir overrides a descriptor of the same file name; lower names win', () => {
  const root = mkdtempSync(join(tmpdir(), 'hangar-fw-'));
  try {
    const user = join(root, 'user');
    mkdirSync(user);
    const desc = (code: string): string => JSON.stringify({
      'interface-types': ['uefi'],
      mapping: { device: 'flash', executable: { filename: code, format: 'raw' }, 'nvram-template': { filename: '/x/VARS.fd', format: 'raw' } },
      targets: [{ architecture: 'x86_64', machines: ['pc-q35-*'] }],
      features: [],
    });
    writeFileSync(join(user, '60-edk2-x86_64.json'), desc('/override/CODE.fd'));
    writeFileSync(join(user, '10-mine.json'), 'not json');
    const fw = resolveFirmware({ firmware: 'uefi', machine: 'q35' }, '/vms/a', { dirs: [GOLDEN_FW, user], checkFiles: false });
    assert.equal(fw?.code.filename, '/override/CODE.fd');
    assert.equal(fw?.vars.filename, '/vms/a/uefi-vars.fd');
    assert.equal(fw?.varsTemplate.filename, '/x/VARS.fd');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('no fitting descriptor: host-missing with the ovmf fix; bios needs none', () => {
  assert.equal(resolveFirmware({ firmware: 'bios', machine: 'q35' }, '/vms/a', { dirs: [] }), null);
  assert.throws(() => resolveFirmware({ firmware: 'uefi', machine: 'q35' }, '/vms/a', { dirs: ['/nonexistent'] }),
    (e: HangarError) => e.code === 'host-missing' && /ovmf/.test(e.hint ?? ''));
});

test('uefi-secure needs q35 (message names the fix); uefi on microvm is refused', () => {
  assert.throws(() => parseDefinition({ ...base, machine: 'pc', firmware: 'uefi-secure' }), /uefi-secure needs machine q35.*--machine q35/);
  assert.throws(() => parseDefinition({ ...base, machine: 'microvm', firmware: 'uefi', boot: { kernel: { kernel: '/k' } } }), /microvm has no flash/);
  assert.equal(parseDefinition({ ...base, machine: 'pc', firmware: 'uefi' }).firmware, 'uefi');
});

test('a UEFI VM without resolved firmware is an internal error, not a BIOS boot', () => {
  const def = parseDefinition({ ...base, firmware: 'uefi' });
  assert.throws(() => buildArgv(def, { accel: 'tcg', paths: { qmpSocket: '/r/q', serialSocket: '/r/s', pidfile: '/r/p' } }), /no firmware was resolved/);
});

test('swtpm command line: TPM 2.0, state in the VM folder, control socket, pidfile, log, terminate + daemon', async () => {
  const { swtpmArgs } = await import('../../core/node/service/swtpm.ts');
  assert.deepEqual(swtpmArgs({ vmDir: '/vms/a', socket: '/run/a/swtpm.sock', pidfile: '/run/a/swtpm.pid' }), [
    'socket', '--tpm2', '--tpmstate', 'dir=/vms/a/tpm,mode=0600', '--ctrl', 'type=unixio,path=/run/a/swtpm.sock,mode=0600',
    '--pid', 'file=/run/a/swtpm.pid', '--log', 'file=/vms/a/logs/swtpm.log', '--terminate', '--daemon',
  ]);
  assert.throws(() => swtpmArgs({ vmDir: '/vms/a,b', socket: '/s', pidfile: '/p' }), /comma/);
});

test('tpm: defaults to CRB; a microvm has none; a VM with a TPM needs the swtpm socket in the argv context', () => {
  assert.deepEqual(parseDefinition({ ...base, tpm: {} }).tpm, { model: 'tpm-crb' });
  assert.equal(parseDefinition(base).tpm, undefined);
  assert.throws(() => parseDefinition({ ...base, machine: 'microvm', tpm: {}, boot: { kernel: { kernel: '/k' } } }), /microvm has no TPM/);
  const def = parseDefinition({ ...base, tpm: { model: 'tpm-tis' } });
  const paths = { qmpSocket: '/r/q', serialSocket: '/r/s', pidfile: '/r/p' };
  assert.throws(() => buildArgv(def, { accel: 'tcg', paths }), /no swtpm socket/);
  const argv = buildArgv(def, { accel: 'tcg', paths, swtpmSocket: '/r/swtpm.sock' });
  assert.ok(argv.includes('socket,id=chrtpm,path=/r/swtpm.sock'));
  assert.ok(argv.includes('emulator,id=tpmdev0,chardev=chrtpm'));
  assert.ok(argv.includes('{"driver":"tpm-tis","id":"tpm0","tpmdev":"tpmdev0"}'));
});
