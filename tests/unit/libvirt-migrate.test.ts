import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDomjobinfo, virshMigrateArgs } from '../../core/node/libvirt/libvirt-migrate.ts';

test('virsh migrate arguments: live, persistent there, undefined here; storage copy and bandwidth on request', () => {
  assert.deepEqual(virshMigrateArgs('web', 'qemu+ssh://root@b/system', {}),
    ['migrate', '--live', '--persistent', '--undefinesource', '--auto-converge', '--domain', 'web', '--desturi', 'qemu+ssh://root@b/system']);
  assert.deepEqual(virshMigrateArgs('web', 'qemu+ssh://b/system', { copyStorage: true, maxBandwidthMiBs: 100 }).slice(5, 9),
    ['--copy-storage-all', '--bandwidth', '100', '--domain']);
});

test('domjobinfo as progress figures', () => {
  const running = `Job type:         Unbounded
Operation:        Outgoing migration
Time elapsed:     2312         ms
Data processed:   120.250 MiB
Data remaining:   135.750 MiB
Data total:       1.000 GiB
Memory processed: 120.250 MiB
Memory remaining: 135.750 MiB
Memory total:     1.000 GiB
Memory bandwidth: 52.002 MiB/s
Dirty rate:       1500         pages/s
Page size:        4096         bytes
Iteration:        2
Constant pages:   196391
Normal pages:     30658
Normal data:      119.758 MiB
Expected downtime: 307         ms
Setup time:       14           ms
`;
  assert.deepEqual(parseDomjobinfo(running), {
    transferredBytes: Math.round(120.25 * 1048576), remainingBytes: Math.round(135.75 * 1048576), totalBytes: 1073741824,
    dirtyRateBytesPerSec: 1500 * 4096, expectedDowntimeMs: 307,
  });
  const completed = 'Job type:         Completed\nData processed:   300.000 MiB\nTotal downtime:   41           ms\n';
  assert.equal(parseDomjobinfo(completed)?.downtimeMs, 41);
  assert.equal(parseDomjobinfo('Job type:         None\n'), null);
});
