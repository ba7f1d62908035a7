// Case 14: 100 start/stop cycles over four VMs (a bridge NIC (a tap per start), a passt NIC, an swtpm TPM, a vhost-user-blk
// disk served by qemu-storage-daemon), through the core's API as the UI drives it: each start
// runs QEMU up to `cont`, most stops are Force Off, one cycle per VM boots the guest and shuts it
// down cleanly. Afterwards the core has no more file descriptors than before (a small constant
// allowed; a VM's serial.log the core keeps open counts once per VM), no zombie children, no tap device appeared, no QEMU or back-end process of these VMs
// is left, their runtime dirs hold no sockets or files, and the core's RSS is flat (printed).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectCore } from '../../core/node/rpc/client.ts';
import type { CoreConnection } from '../../core/node/rpc/client.ts';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';
import { addAclLines, createBridge, testBridgeName } from '../helpers/bridge-host.ts';
import type { TestBridge } from '../helpers/bridge-host.ts';

const ROUNDS = 25;
/** The round in which each VM boots its guest and is shut down through ACPI instead of forced off. */
const CLEAN_ROUND = 12;
const FD_SLACK = 2;
const RSS_SLACK_KIB = 64 * 1024;

let h: HangarHarness;
let conn: CoreConnection;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
let bridge: TestBridge;
let restoreAcl: (() => void) | undefined;
const vms: Array<{ name: string; id: string }> = [];

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
  bridge = createBridge(testBridgeName('hgtlk'));
  restoreAcl = addAclLines([`allow ${bridge.name}`]);
  const qsdImage = join(h.home, 'qsd.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', qsdImage, '16M']);
  const kinds: Record<string, Record<string, unknown>> = {
    // QEMU runs qemu-bridge-helper, which makes a tap device on the bridge for each start.
    'leak-bridge': { nics: [{ id: 'net0', network: { type: 'bridge', bridge: bridge.name } }] },
    'leak-passt': { nics: [{ id: 'net0', network: { type: 'passt' } }] },
    'leak-tpm': { tpm: { model: 'tpm-crb' } },
    'leak-qsd': { disks: [{ id: 'qsd0', file: qsdImage, format: 'qcow2', bus: 'vhost-user-blk' }] },
  };
  for (const [name, extra] of Object.entries(kinds)) {
    const file = join(h.home, `${name}.json`);
    writeFileSync(file, JSON.stringify({ memoryMiB: 192, accel: 'tcg', shutdownTimeoutSec: 60, boot: { kernel: { kernel: guest.kernel, initrd: guest.initrd, append: GUEST_CMDLINE } }, ...extra }));
    const info = await h.json<{ id: string }>(['create', '--name', name, '--file', file]);
    vms.push({ name, id: info.id });
  }
  process.env.HANGAR_HOME = h.home;
  conn = await connectCore({ autostart: false });
});

after(async () => {
  conn?.close();
  await h?.cleanup();
  restoreAcl?.();
  bridge?.remove();
});

function pids(): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number);
}

/** The core daemon of this data dir: `hangar daemon run` with HANGAR_HOME set to it. */
function daemonPid(): number {
  const found = pids().filter((pid) => {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      return args.includes('daemon') && args.includes('run') && env.includes(`HANGAR_HOME=${h.home}`);
    } catch { return false; }
  });
  assert.equal(found.length, 1, `one core daemon for ${h.home}: ${found.join(' ')}`);
  return found[0]!;
}

interface Sample { fds: number; fdTargets: string[]; rssKiB: number; zombies: string[]; taps: string[] }

/** What each of the process's file descriptors points at (socket:[inode], a path, anon_inode:...). */
function fdTargets(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try { return readlinkSync(`/proc/${pid}/fd/${fd}`).replace(/\[\d+\]$/, '[]'); } catch { return 'gone'; }
  }).sort();
}

/** The targets in `after` beyond those in `before` (as a multiset). */
function added(before: readonly string[], after: readonly string[]): string[] {
  const left = [...before];
  return after.filter((t) => {
    const i = left.indexOf(t);
    if (i < 0) return true;
    left.splice(i, 1);
    return false;
  });
}

function sample(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]);
  const zombies: string[] = [];
  for (const p of pids()) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === pid && rest[0] === 'Z') zombies.push(`${p} ${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}`);
    } catch { /* gone */ }
  }
  const taps = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).split('\n')
    .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1] ?? '').filter((n) => /tap/.test(n)).sort();
  const targets = fdTargets(pid);
  return { fds: targets.length, fdTargets: targets, rssKiB, zombies, taps };
}

/** Processes of these VMs still there: QEMU (-uuid ID) and back ends (their sockets and pidfiles live under the VM's dirs). */
function leftoverProcesses(): string[] {
  const out: string[] = [];
  for (const p of pids()) {
    let args: string[];
    try { args = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0'); } catch { continue; }
    if (vms.some((v) => args.some((a) => a.includes(v.id)))) out.push(`${p} ${args.slice(0, 3).join(' ')}`);
  }
  return out;
}

function serialCount(id: string, text: string): number {
  return h.serialLog(id).split(text).length - 1;
}

describe('case 14: start/stop cycles leave nothing behind', { timeout: 900_000 }, () => {
  test(`${ROUNDS * 4} start/stop cycles over 4 VMs: no leaked fds, zombies, taps, processes or runtime files; RSS flat`, async () => {
    const api = conn.api;
    // One warm-up cycle each: the core's lazily loaded modules and caches are in place before measuring.
    for (const v of vms) {
      await api.start(v.name);
      await api.destroy(v.name);
    }
    await sleep(500);
    const pid = daemonPid();
    const before = sample(pid);
    const started = Date.now();
    let cycles = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (const v of vms) {
        if (round === CLEAN_ROUND) {
          const boots = serialCount(v.id, READY_MARKER);
          await api.start(v.name);
          await h.waitForSerial(v.id, READY_MARKER, boots + 1, 180_000);
          await api.shutdown(v.name, { wait: true });
          assert.equal((await api.get(v.name)).state, 'stopped', `${v.name} stopped cleanly`);
        } else {
          const info = await api.start(v.name);
          assert.equal(info.state, 'running', `${v.name} round ${round}`);
          if (round === 0 && v.name === 'leak-bridge') assert.equal(bridge.ports().length, 1, 'the bridge NIC\'s tap is on the bridge while the VM runs');
          await api.destroy(v.name);
        }
        cycles++;
      }
    }
    const seconds = (Date.now() - started) / 1000;
    await sleep(1000);
    const afterSample = sample(pid);
    console.log(`${cycles} cycles in ${seconds.toFixed(0)} s; core fds ${before.fds} -> ${afterSample.fds} (new: ${added(before.fdTargets, afterSample.fdTargets).join(' ') || 'none'}); RSS ${(before.rssKiB / 1024).toFixed(1)} -> ${(afterSample.rssKiB / 1024).toFixed(1)} MiB`);

    assert.ok(cycles >= 100, `${cycles} cycles`);
    // A VM's serial.log stays open in the core once its guest has written to it (kept across stops,
    // one per VM, never per cycle); anything else new is counted against a small constant.
    const fresh = added(before.fdTargets, afterSample.fdTargets);
    const serialLogs = fresh.filter((t) => vms.some((v) => t === join(h.home, 'vms', v.id, 'logs', 'serial.log')));
    assert.equal(new Set(serialLogs).size, serialLogs.length, `at most one open serial.log per VM: ${serialLogs.join(' ')}`);
    const other = fresh.filter((t) => !serialLogs.includes(t));
    assert.ok(other.length <= FD_SLACK, `core file descriptors ${before.fds} -> ${afterSample.fds}; new beside the serial logs: ${other.join(' ')}`);
    assert.deepEqual(afterSample.zombies, [], 'no zombie children of the core');
    assert.deepEqual(afterSample.taps, before.taps, 'no tap device left');
    assert.deepEqual(leftoverProcesses(), [], 'no QEMU or back-end process of these VMs left');
    for (const v of vms) {
      const dir = join(h.home, 'run', 'vms', v.id);
      const left = existsSync(dir) ? readdirSync(dir) : [];
      assert.deepEqual(left, [], `runtime dir of ${v.name} holds nothing`);
    }
    assert.ok(afterSample.rssKiB - before.rssKiB < RSS_SLACK_KIB, `core RSS grew ${((afterSample.rssKiB - before.rssKiB) / 1024).toFixed(1)} MiB over ${cycles} cycles`);
    for (const v of vms) assert.equal((await api.get(v.name)).state, 'stopped');
  });
});
