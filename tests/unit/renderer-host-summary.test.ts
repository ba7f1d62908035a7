// The list page's host summary in words: CPU of all host CPUs, committed guest memory against the
// host's, overcommit said in text (not only by colour), the meters' values clamped to 0-100.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HostSummary } from '../../core/common/stats.ts';
import { hostSummaryView } from '../../renderer/src/performance/host-summary.ts';

const GiB = 2 ** 30;
const host = (x: Partial<HostSummary> = {}): HostSummary => ({
  t: 1, cpus: 2, cpuPercent: 41.6, memTotalBytes: 8 * GiB, memAvailableBytes: 5 * GiB, committedBytes: 2 * GiB,
  guestRssBytes: GiB, runningVms: 1, definedVms: 3, ...x,
});

describe('host summary view', () => {
  it('says CPU of all CPUs, committed of total and available, the counts', () => {
    const v = hostSummaryView(host());
    assert.deepEqual(v.cpu, { now: 42, text: '42%', valueText: '42% of 2 CPUs' });
    assert.equal(v.mem.text, 'committed by guests 2.0 GiB of 8.0 GiB, 5.0 GiB available');
    assert.equal(v.mem.valueText, v.mem.text);
    assert.equal(v.mem.now, 25);
    assert.equal(v.mem.over, false);
    assert.equal(v.mem.overText, '');
    assert.equal(v.vms, 'VMs: 1 running, 3 defined');
  });

  it('says overcommit in words, the meter full', () => {
    const v = hostSummaryView(host({ committedBytes: 10 * GiB }));
    assert.equal(v.mem.over, true);
    assert.equal(v.mem.now, 100);
    assert.equal(v.mem.overText, 'Overcommitted by 2.0 GiB: guests may not all get their memory');
    assert.match(v.mem.valueText, /^overcommitted: committed by guests 10\.0 GiB of 8\.0 GiB/);
  });

  it('before a second CPU reading: no figure yet', () => {
    const v = hostSummaryView(host({ cpuPercent: null, cpus: 1 }));
    assert.deepEqual(v.cpu, { now: 0, text: 'measuring…', valueText: 'not measured yet' });
  });
});
