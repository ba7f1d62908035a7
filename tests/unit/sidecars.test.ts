// Everything beside QEMU is a sidecar in one list (core/node/service/sidecar-list.ts). These
// tests prove once, for every sidecar, that VmInstance checks and starts the wanted ones in list
// order and stops all of them in reverse on every path a run ends by: a failed check, a failed
// start, force off, the guest powering off, QEMU killed with SIGKILL, and a restarted core that
// finds QEMU dead (while one that finds it alive leaves the back ends running). A fake sidecar
// records the calls; QEMU is the real qemu-system-x86_64 (TCG, SeaBIOS, no kernel).
import { after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDefinition } from '../../core/common/definition.ts';
import { HangarError } from '../../core/common/errors.ts';
import type { VmState } from '../../core/common/state.ts';
import type { Sidecar } from '../../core/node/service/sidecar.ts';
import { SIDECARS } from '../../core/node/service/sidecar-list.ts';
import { VmInstance } from '../../core/node/service/vm-instance.ts';
import type { StoredVm } from '../../core/node/store/vm-store.ts';

// Short: QEMU's sockets live under the runtime dir and unix socket paths are limited to 107 bytes.
const root = mkdtempSync(join(tmpdir(), 'hgsc-'));
const instances: VmInstance[] = [];

after(() => rmSync(root, { recursive: true, force: true }));
afterEach(async () => {
  for (const vm of instances.splice(0)) if (vm.pid !== undefined) await vm.destroy().catch(() => {});
});

interface Fake {
  calls: string[];
  /** Sidecars started and not stopped since. */
  running: Set<string>;
  sidecar(name: string, opts?: { failCheck?: boolean; failStart?: boolean; wanted?: boolean }): Sidecar;
}

function fakes(): Fake {
  const calls: string[] = [];
  const running = new Set<string>();
  return {
    calls,
    running,
    sidecar: (name, opts = {}) => ({
      name,
      wanted: () => opts.wanted ?? true,
      async check(def) {
        calls.push(`check ${name}`);
        if (opts.failCheck) throw new HangarError('host-missing', `${name} not found: VM "${def.name}" needs it`, `install ${name}`);
      },
      async start() {
        calls.push(`start ${name}`);
        if (opts.failStart) throw new HangarError('io-error', `${name} failed to start`);
        running.add(name);
      },
      async stop() {
        calls.push(`stop ${name}`);
        running.delete(name);
      },
      async reattach() {
        calls.push(`reattach ${name}`);
      },
      argv() {
        calls.push(`argv ${name}`);
        return {};
      },
    }),
  };
}

/** The tail of calls from the last call matching `from` on. */
function since(calls: string[], from: string): string[] {
  return calls.slice(calls.lastIndexOf(from));
}

function storedVm(extra: Record<string, unknown> = {}): StoredVm {
  const id = randomUUID();
  const dir = join(root, 'vms', id);
  const definition = parseDefinition({ version: 1, id, name: `sc-${id.slice(0, 8)}`, accel: 'tcg', machine: 'pc', memoryMiB: 64, ...extra });
  return { id, dir, definition };
}

function instance(stored: StoredVm, sidecars: Sidecar[]): VmInstance {
  const vm = new VmInstance(stored, {
    runtimeDir: join(root, 'run'),
    probe: () => Promise.reject(new Error('accel tcg needs no probe')),
    onChange: () => {},
    sidecars,
  });
  instances.push(vm);
  return vm;
}

const settled = (s: VmState): boolean => s === 'stopped' || s === 'crashed';

test('the real list: every back end is one entry, VFIO first (bound before back ends run, given back after they stop)', () => {
  assert.deepEqual(SIDECARS.map((s) => s.name), ['vfio', 'swtpm', 'passt', 'qemu-storage-daemon', 'virtiofsd']);
  const def = storedVm({ tpm: {} }).definition!;
  assert.deepEqual(SIDECARS.filter((s) => s.wanted(def)).map((s) => s.name), ['swtpm']);
});

test('a failed check refuses before anything runs; its error is kept', async () => {
  const f = fakes();
  const vm = instance(storedVm(), [f.sidecar('a'), f.sidecar('b', { failCheck: true }), f.sidecar('c')]);
  await assert.rejects(vm.start(), (e: HangarError) => e.code === 'host-missing' && /^b not found: VM "sc-/.test(e.message));
  assert.equal(vm.state, 'stopped');
  assert.equal(vm.pid, undefined);
  // The failure path stops every sidecar (in reverse) even though none started: stop is idempotent.
  assert.deepEqual(f.calls, ['check a', 'check b', 'stop c', 'stop b', 'stop a']);
});

test('a sidecar failing to start: the ones before it stop in reverse order, QEMU never runs', async () => {
  const f = fakes();
  const vm = instance(storedVm(), [f.sidecar('a'), f.sidecar('skip', { wanted: false }), f.sidecar('b'), f.sidecar('c', { failStart: true }), f.sidecar('d')]);
  await assert.rejects(vm.start(), { message: 'c failed to start' });
  assert.equal(vm.state, 'stopped');
  assert.equal(vm.pid, undefined);
  assert.deepEqual(f.calls, [
    'check a', 'check b', 'check c', 'check d',
    // Leftovers of an earlier run are cleared before anything starts.
    'stop d', 'stop c', 'stop b', 'stop skip', 'stop a',
    'start a', 'start b', 'start c',
    'stop d', 'stop c', 'stop b', 'stop skip', 'stop a',
  ]);
  assert.equal(f.running.size, 0);
});

test('force off: QEMU started after the sidecars, sidecars stopped in reverse after it is gone', async () => {
  const f = fakes();
  const vm = instance(storedVm(), [f.sidecar('a'), f.sidecar('b')]);
  await vm.start();
  assert.equal(vm.state, 'running');
  assert.deepEqual(since(f.calls, 'start a'), ['start a', 'start b', 'argv a', 'argv b']);
  assert.deepEqual([...f.running], ['a', 'b']);
  await vm.destroy();
  assert.equal(vm.state, 'stopped');
  assert.deepEqual(since(f.calls, 'start a').slice(4), ['stop b', 'stop a']);
  assert.equal(f.running.size, 0);
});

test('the guest powers off: a clean stop stops the sidecars', async () => {
  // A boot sector that writes SLP_EN (S5) to PM1a_CNT: PIIX4's (SeaBIOS puts it at 0xb000) and ICH9's (0x600).
  const code = [0xba, 0x04, 0xb0, 0xb8, 0x00, 0x20, 0xef, 0xba, 0x04, 0x06, 0xef, 0xf4, 0xeb, 0xfd];
  const sector = Buffer.alloc(512);
  Buffer.from(code).copy(sector);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  const stored = storedVm();
  const disk = join(root, `${stored.id}.img`);
  writeFileSync(disk, Buffer.concat([sector, Buffer.alloc(1024 * 1024 - 512)]));
  stored.definition = parseDefinition({ ...stored.definition, disks: [{ id: 'disk0', file: disk, format: 'raw', bus: 'ide' }] });
  const f = fakes();
  const vm = instance(stored, [f.sidecar('a'), f.sidecar('b')]);
  await vm.start();
  await vm.waitFor(settled, 30_000);
  assert.equal(vm.state, 'stopped', vm.reason ?? '');
  assert.deepEqual(since(f.calls, 'start a').slice(4), ['stop b', 'stop a']);
  assert.equal(f.running.size, 0);
});

test('QEMU killed with SIGKILL: the crash is noticed through QMP and the sidecars stop', async () => {
  const f = fakes();
  const vm = instance(storedVm(), [f.sidecar('a'), f.sidecar('b')]);
  await vm.start();
  process.kill(vm.pid!, 'SIGKILL');
  await vm.waitFor(settled, 15_000);
  assert.equal(vm.state, 'crashed');
  assert.match(vm.reason ?? '', /killed by SIGKILL/);
  assert.deepEqual(since(f.calls, 'start a').slice(4), ['stop b', 'stop a']);
  assert.equal(f.running.size, 0);
});

test('a restarted core: QEMU alive -> back ends left alone; QEMU dead -> they stop', async () => {
  const f = fakes();
  const list = [f.sidecar('a'), f.sidecar('skip', { wanted: false }), f.sidecar('b')];
  const stored = storedVm();
  const first = instance(stored, list);
  await first.start();
  const pid = first.pid!;
  first.detach(); // the core goes away; QEMU and its back ends keep running
  const mark = f.calls.length;

  const second = instance(stored, list);
  await second.reattach();
  assert.equal(second.state, 'running');
  assert.deepEqual(f.calls.slice(mark), ['reattach a', 'reattach b']);
  assert.deepEqual([...f.running], ['a', 'b']);
  second.detach();

  process.kill(pid, 'SIGKILL');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && (() => { try { process.kill(pid, 0); return true; } catch { return false; } })()) await new Promise((r) => setTimeout(r, 20));
  const third = instance(stored, list);
  await third.reattach();
  // Gone while no core watched: stopped with a note (libvirt's "shut off (unknown)"), never stuck as crashed.
  assert.equal(third.state, 'stopped');
  assert.match(third.reason ?? '', /QEMU exited while the Hangar core was not running/);
  assert.deepEqual(f.calls.slice(mark + 2), ['stop b', 'stop skip', 'stop a']);
  assert.equal(f.running.size, 0);
});
