// The guest NUMA node rows of the Edit CPU and memory dialog: to and from the definition, the even
// split, and the edit() patch (removal and stale distances marked with null).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDefinition } from '../../core/common/definition.ts';
import { numaPatch, numaRowsFromDefinition, splitEvenly } from '../../renderer/src/tuning/numa-form.ts';

const def = (extra: Record<string, unknown> = {}) => parseDefinition({ id: '0b5a3c52-1f3e-4c1e-9d7e-2a6f3e9b8c10', name: 'vm', memoryMiB: 1024, ...extra });

describe('NUMA node rows', () => {
  it('come from the definition and go back as the memory patch', () => {
    const d = def({ cpu: { vcpus: 4 }, memory: { numa: [{ cpus: '0-1', memoryMiB: 512, hostNodes: '0' }, { cpus: '2-3', memoryMiB: 512, hostNodes: '1', policy: 'preferred' }], numaDistances: [[10, 20], [20, 10]] } });
    const rows = numaRowsFromDefinition(d);
    assert.deepEqual(rows, [{ cpus: '0-1', memoryMiB: '512', hostNodes: '0', policy: 'bind' }, { cpus: '2-3', memoryMiB: '512', hostNodes: '1', policy: 'preferred' }]);
    assert.deepEqual(numaPatch(rows, d), { ok: true, memory: { numa: [{ cpus: '0-1', memoryMiB: 512, hostNodes: '0', policy: 'bind' }, { cpus: '2-3', memoryMiB: 512, hostNodes: '1', policy: 'preferred' }] } }, 'same count: the distances stay');
    assert.deepEqual(numaPatch([], d), { ok: true, memory: { numa: null, numaDistances: null } }, 'all nodes removed');
    assert.deepEqual(numaPatch([], def()), { ok: true, memory: {} }, 'none before, none after: nothing to send');
    const three = splitEvenly(3, 4, 1024, rows);
    assert.deepEqual(numaPatch(three, d).ok && (numaPatch(three, d) as { memory: Record<string, unknown> }).memory.numaDistances, null, 'a new node count drops the old distance table');
  });

  it('split evenly: the first nodes take what does not divide; host bindings kept by position', () => {
    assert.deepEqual(splitEvenly(3, 4, 1000, [{ cpus: '', memoryMiB: '', hostNodes: '1', policy: 'interleave' }]), [
      { cpus: '0-1', memoryMiB: '334', hostNodes: '1', policy: 'interleave' },
      { cpus: '2', memoryMiB: '333', hostNodes: '', policy: 'bind' },
      { cpus: '3', memoryMiB: '333', hostNodes: '', policy: 'bind' },
    ]);
    assert.equal(splitEvenly(8, 2, 512).length, 2, 'never more nodes than vCPU slots');
  });

  it('each field\'s syntax is checked; a blank host node list sends no binding', () => {
    const r = numaPatch([{ cpus: '3-1', memoryMiB: 'x', hostNodes: 'a', policy: 'bind' }, { cpus: '0', memoryMiB: '64', hostNodes: ' ', policy: 'interleave' }], def());
    assert.equal(r.ok, false);
    assert.deepEqual(!r.ok && r.errors, [
      { cpus: 'vCPUs as a list like 0-1 or 0,2', memoryMiB: 'memory in whole MiB, at least 1', hostNodes: 'host nodes as a list like 0 or 0-1' },
      {},
    ]);
    assert.deepEqual(numaPatch([{ cpus: '0,1', memoryMiB: '64', hostNodes: '', policy: 'interleave' }], def()), { ok: true, memory: { numa: [{ cpus: '0-1', memoryMiB: 64 }] } });
    // A number input's v-model hands back a number.
    assert.deepEqual(numaPatch([{ cpus: '0', memoryMiB: 64 as unknown as string, hostNodes: '', policy: 'bind' }], def()), { ok: true, memory: { numa: [{ cpus: '0', memoryMiB: 64 }] } });
  });
});
