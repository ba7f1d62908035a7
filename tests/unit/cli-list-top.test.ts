// The text `hangar list` and `hangar top` print: the list's ADDRESS column (first guest address
// the agent reported, '-' otherwise) and top's host line (virt-top's header), from plain data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listText } from '../../core/node/cli/list.ts';
import { hostLine, topRows, topText } from '../../core/node/cli/stats.ts';
import type { HostSummary, StatsSample } from '../../core/common/stats.ts';

const MiB = 1024 * 1024;

test('hangar list shows the first guest address, and - without an agent answer', () => {
  const text = listText([
    { id: 'a', name: 'web', state: 'running', vcpus: 2, memoryMiB: 2048, guest: { agent: true, addresses: ['10.0.2.15', 'fec0::5054'], os: 'Debian', at: 1 } },
    { id: 'b', name: 'db', state: 'running', vcpus: 1, memoryMiB: 512, guest: { agent: false, addresses: [], at: 1 } },
    { id: 'c', name: 'off', state: 'stopped', vcpus: 1, memoryMiB: 256, reason: 'why not' },
  ]);
  assert.equal(text, [
    'NAME  STATE    VCPUS  MEMORY   ADDRESS    NOTE',
    'web   running  2      2 GiB    10.0.2.15',
    'db    running  1      512 MiB  -',
    'off   stopped  1      256 MiB  -          why not',
  ].join('\n'));
});

const host: HostSummary = {
  t: 0, cpus: 4, cpuPercent: 12.34, memTotalBytes: 8000 * MiB, memAvailableBytes: 5000 * MiB,
  committedBytes: 2304 * MiB, guestRssBytes: 300 * MiB, runningVms: 2, definedVms: 5,
};

test('hangar top\'s host line: CPU of all CPUs, memory committed / total, available, running / defined', () => {
  assert.equal(hostLine(host), 'Host: CPU 12.3% of 4 CPUs, memory 2304 MiB committed / 8000 MiB total, 5000 MiB available, guests hold 300 MiB; 2/5 VMs running');
  assert.match(hostLine({ ...host, cpuPercent: null, cpus: 1 }), /^Host: CPU - of 1 CPU, /);
});

test('hangar top\'s screen: the title, the host line, then the VMs sorted by CPU', () => {
  const sample = (name: string, cpu: number): StatsSample => ({
    vmId: name, name, t: 0, intervalMs: 1000, cpuPercent: cpu, vcpuPercent: cpu, otherPercent: 0, vcpus: 1, cpuSeconds: 1, vcpuSeconds: 1,
    rssBytes: 100 * MiB, memoryBytes: 256 * MiB, disks: [], nics: [],
  });
  const lines = topText(topRows([sample('a', 5), sample('b', 50)]), new Date(2026, 0, 1, 12, 0, 0), host).split('\n');
  assert.equal(lines[0], 'hangar top - 12:00:00, 2 running VMs, CPU 55.0% of one core');
  assert.equal(lines[1], hostLine(host));
  assert.match(lines[3]!, /^NAME\s+CPU\s+VCPUS/);
  assert.match(lines[4]!, /^b\s+50\.0%/);
  assert.match(lines[5]!, /^a\s+5\.0%/);
  assert.equal(topText([], new Date(2026, 0, 1), host).split('\n').slice(1).join('\n'), `${hostLine(host)}\n\nNo running VMs.`);
});
