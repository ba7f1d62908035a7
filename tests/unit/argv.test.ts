import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keyval, serialize } from '../../core/node/qemu/qemu-option.ts';
import { parseHostfwd, splitSpec, parseNewDisk } from '../../core/node/cli/create-args.ts';
import { runtimeDir, SOCKET_PATH_MAX, vmRuntimePaths } from '../../core/node/paths.ts';
import { parseSize } from '../../core/node/store/qemu-img.ts';
import { isInside } from '../../core/node/store/vm-store.ts';

test('keyval doubles commas inside values, once, in one place', () => {
  assert.equal(keyval({ path: '/a,b/c', server: true, wait: false }, 'socket'), 'socket,path=/a,,b/c,server=on,wait=off');
  assert.deepEqual(serialize([{ opt: '-S' }, { opt: '-kernel', value: '/x,y' }, { opt: '-device', json: { driver: 'e1000', bootindex: undefined } }]),
    ['-S', '-kernel', '/x,y', '-device', '{"driver":"e1000"}']);
});

test('CLI specs: doubled commas are literal; hostfwd forms', () => {
  assert.deepEqual(splitSpec('/a,,b.qcow2,bus=ide,readonly'), { head: '/a,b.qcow2', opts: { bus: 'ide', readonly: 'on' } });
  assert.deepEqual(parseHostfwd('tcp::2222-:22'), { protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 2222, guestPort: 22 });
  assert.deepEqual(parseHostfwd('udp:0.0.0.0:53-:53'), { protocol: 'udp', hostAddress: '0.0.0.0', hostPort: 53, guestPort: 53 });
  assert.throws(() => parseHostfwd('tcp:2222:22'), /tcp::HOSTPORT-:GUESTPORT/);
  assert.deepEqual(parseNewDisk('10G,bus=scsi'), { sizeBytes: 10 * 1024 ** 3, bus: 'scsi' });
  assert.equal(parseSize('512M'), 512 * 1024 ** 2);
  assert.throws(() => parseSize('big'), /not a size/);
});

test('runtime dir falls back to a short path past the unix socket limit', () => {
  const long = '/tmp/' + 'x'.repeat(120);
  const dir = runtimeDir({ HANGAR_HOME: long });
  const p = vmRuntimePaths(dir, '0b6c1c2e-8f0a-4c59-9d3e-8a6f1d1e2a3b');
  assert.ok(Buffer.byteLength(p.serialSocket) <= SOCKET_PATH_MAX, p.serialSocket);
  assert.equal(runtimeDir({ HANGAR_HOME: long }), dir, 'deterministic, so a restarted core finds its sockets');
  assert.equal(runtimeDir({ HANGAR_HOME: '/tmp/h' }), '/tmp/h/run');
});

test('isInside guards deletion to the VM folder', () => {
  assert.ok(isInside('/d/vm', '/d/vm/disk0.qcow2'));
  assert.ok(!isInside('/d/vm', '/d/vm/../other.qcow2'));
  assert.ok(!isInside('/d/vm', '/d/vmx/disk.qcow2'));
  assert.ok(!isInside('/d/vm', '/d/vm'));
});

test('--file accepts YAML and JSON definitions, and names a bad file', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { loadDefinitionFile } = await import('../../core/node/cli/create-args.ts');
  const dir = mkdtempSync(join(tmpdir(), 'hangar-def-'));
  writeFileSync(join(dir, 'vm.yaml'), 'name: from-yaml\nmemoryMiB: 256\ncpu:\n  vcpus: 2\n');
  assert.deepEqual(await loadDefinitionFile(join(dir, 'vm.yaml')), { name: 'from-yaml', memoryMiB: 256, cpu: { vcpus: 2 } });
  writeFileSync(join(dir, 'bad.json'), '{ nope');
  await assert.rejects(loadDefinitionFile(join(dir, 'bad.json')), /bad\.json is not a valid JSON VM definition/);
});
