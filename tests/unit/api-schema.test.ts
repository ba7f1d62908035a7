import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkApiArgs } from '../../core/common/api-schema.ts';
import { coreApiMethods } from '../../core/common/api.ts';
import { HangarError } from '../../core/common/errors.ts';

function refused(method: string, args: unknown[], pattern: RegExp): void {
  assert.throws(() => checkApiArgs(method, args), (e: unknown) => {
    assert.ok(e instanceof HangarError);
    assert.equal(e.code, 'invalid-input');
    assert.match(e.message, pattern);
    assert.ok(e.hint);
    return true;
  });
}

test('every API method has a schema', () => {
  const noArgs = new Set(['list', 'doctor', 'daemonStatus', 'daemonStop', 'hostInfo', 'osList', 'hostDevices', 'hostCpuMemory', 'statsLatest', 'statsMetrics', 'hostSummary', 'capabilities', 'connections']);
  const sample = (m: string): unknown[] => {
    if (noArgs.has(m)) return [];
    if (m === 'create' || m === 'previewCreate') return [{ definition: {} }];
    if (m === 'edit') return ['vm', {}];
    if (m === 'inspectPath') return ['/x.iso', 'iso'];
    if (m === 'resizeDisk') return ['vm', 'disk0', 1 << 30];
    if (m === 'addDevice') return ['vm', 'disk', {}, { newDiskBytes: 1 << 30 }];
    if (m === 'editDevice') return ['vm', 'disk', 'disk0', { cache: 'none' }];
    if (m === 'removeDevice') return ['vm', 'disk', 'disk0', { deleteFile: true, timeoutSec: 5 }];
    if (m === 'setBalloon') return ['vm', 256];
    if (m === 'sendKeys') return ['vm', ['ctrl', 'alt', 'delete']];
    if (m === 'agentExec') return ['vm', ['echo', 'hi'], { timeoutMs: 5000, input: 'x' }];
    if (m === 'setShutdownMode') return ['vm', 'acpi'];
    if (m === 'bindVfio' || m === 'releaseVfio') return ['0000:01:00.0'];
    if (m === 'setSriovVfs') return ['0000:03:00.0', 4];
    if (m === 'setVfConfig') return ['0000:03:00.0', 0, { mac: '52:54:00:12:34:56', vlan: 10 }];
    if (m === 'createMdev') return ['0000:04:00.0', 'nvidia-222'];
    if (m === 'removeMdev') return ['4b20d080-1b54-4048-85b3-a6a62d165c01'];
    if (m === 'setAutostart') return ['vm', true];
    if (m === 'addConnection') return ['lab', 'qemu+ssh://root@lab/system'];
    if (m === 'removeConnection') return ['lab'];
    if (m === 'migrate') return ['vm', { to: 'lab', copyStorage: true, maxBandwidthMiBs: 100, downtimeLimitMs: 300 }];
    if (m === 'prepareIncomingMigration') return [{ definition: { name: 'vm' }, copyStorage: false }];
    if (m === 'finishIncomingMigration') return ['vm', 'a'.repeat(64), { resume: true }];
    if (m === 'abortIncomingMigration') return ['vm', 'a'.repeat(64), 'the source gave up'];
    if (m === 'cpuModels') return ['tcg'];
    if (m === 'watchStats') return [null];
    if (m === 'statsHistory') return ['vm', 3600];
    if (m === 'setVcpus') return ['vm', 2];
    if (m === 'setCpuPinning') return ['vm', { vcpus: ['0-1', null], emulator: '2' }];
    if (m === 'resizeMemory') return ['vm', 2048];
    if (m === 'setKsm') return [true];
    if (m === 'setHugepages') return ['2M', 64];
    if (m === 'start') return ['vm', { discardSaved: true }];
    if (m === 'clone') return ['vm', { name: 'copy', linked: true, unowned: 'copy', copyTpm: false, requestId: 'r1' }];
    if (m === 'createSnapshot') return ['vm', { name: 'before-upgrade', description: 'x', kind: 'external', memory: false }];
    if (m === 'revertSnapshot' || m === 'deleteSnapshot' || m === 'snapshotScreenshot') return ['vm', 'before-upgrade'];
    return ['vm'];
  };
  for (const m of coreApiMethods) assert.doesNotThrow(() => checkApiArgs(m, sample(m)), m);
});

test('well-formed requests pass, trailing undefined options included', () => {
  checkApiArgs('shutdown', ['vm', { timeoutSec: 5, wait: true }]);
  checkApiArgs('shutdown', ['vm', undefined]);
  checkApiArgs('delete', ['vm', { deleteDisks: true }]);
  checkApiArgs('create', [{ definition: { name: 'a' }, newDisks: [{ sizeBytes: 1024, bus: 'sata', format: 'raw' }] }]);
  checkApiArgs('serialLog', ['vm', 4096]);
});

test('host device changes: addresses, counts, MACs and UUIDs are checked at the boundary', () => {
  refused('bindVfio', ['03:00.0'], /bindVfio \(argument 0\): a PCI address looks like 0000:03:00\.0/);
  refused('bindVfio', ['../../etc'], /PCI address/);
  refused('setSriovVfs', ['0000:03:00.0', -1], /setSriovVfs \(argument 1\)/);
  refused('setVfConfig', ['0000:03:00.0', 0, { mac: '01:00:5e:00:00:01' }], /unicast/);
  refused('setVfConfig', ['0000:03:00.0', 0, { vlan: 4096 }], /argument 2\.vlan/);
  refused('setVfConfig', ['0000:03:00.0', 0, { mtu: 9000 }], /argument 2/);
  refused('createMdev', ['0000:04:00.0', '../create'], /mdev type/);
  checkApiArgs('createMdev', ['0000:04:00.0', 'nvidia-222', '4b20d080-1b54-4048-85b3-a6a62d165c01']);
  refused('createMdev', ['0000:04:00.0', 'nvidia-222', 'not-a-uuid'], /mdev UUID/);
  refused('removeMdev', ['4B20D080-1B54-4048-85B3-A6A62D165C01'], /mdev UUID/);
});

test('wrong shapes are refused with the method and argument named', () => {
  refused('get', [42], /get \(argument 0\)/);
  refused('get', [], /get/);
  refused('get', [''], /name or id is required/);
  refused('start', ['a', 'b'], /start/);
  refused('shutdown', ['vm', { timeoutSec: -1 }], /shutdown/);
  refused('shutdown', ['vm', { force: true }], /shutdown/);
  refused('delete', ['vm', { deleteDisks: 'yes' }], /delete/);
  refused('create', [{ definition: 'x' }], /create/);
  refused('create', [{ definition: {}, newDisks: [{ sizeBytes: 0 }] }], /create/);
  refused('edit', ['vm', null], /edit/);
  refused('list', ['extra'], /list/);
  refused('inspectPath', ['/x', 'socket'], /inspectPath \(argument 1\)/);
  refused('inspectPath', ['', 'iso'], /a path is required/);
  refused('previewCreate', [{ definition: {}, cloudInit: { user: 'a', extra: 1 } }], /previewCreate/);
  refused('create', [{ definition: {}, cloudInit: { sshKeys: 'ssh-ed25519 AAAA' } }], /create/);
  refused('__proto__', [], /unknown core method/);
  refused('constructor', [], /unknown core method/);
});

test('snapshot requests: a name is required, unknown fields and kinds are refused', () => {
  refused('createSnapshot', ['vm', { description: 'no name' }], /name/);
  refused('createSnapshot', ['vm', { name: 'x', kind: 'copy' }], /kind/);
  refused('createSnapshot', ['vm', { name: 'x', ram: true }], /ram/);
  refused('revertSnapshot', ['vm', ''], /snapshot name is required/);
  refused('deleteSnapshot', ['vm', 'x'.repeat(65)], /at most 64/);
  refused('setHugepages', ['4M', 2], /setHugepages/);
  refused('cpuModels', ['hvf'], /cpuModels/);
  refused('setVcpus', ['vm', 0], /at least 1 vCPU/);
  // A null the method takes is kept (no pinning), not dropped as an absent option.
  assert.deepEqual(checkApiArgs('setCpuPinning', ['vm', null]), ['vm', null]);
  assert.deepEqual(checkApiArgs('start', ['vm', null]), ['vm']);
  refused('setCpuPinning', ['vm', { vcpus: ['0-x'] }], /CPU list/);
  refused('resizeMemory', ['vm', 8], /at least 16 MiB/);
});
