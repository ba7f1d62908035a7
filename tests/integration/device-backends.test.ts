// Device back ends as the real test guest (TCG, kernel + initrd) uses them: a virtio-serial
// channel carries guest bytes to its host socket, an extra UART's output lands in its log,
// a virtiofs share (a supervised virtiofsd) moves files both ways and virtiofsd goes away on
// every stop path, a NIC on a real tap device reaches the host; and what this host lacks
// (vhost-net, vhost-vsock) is refused before any QEMU runs, with the fix in the message.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, PCI_END, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';
import { requireRoot, testBridgeName } from '../helpers/bridge-host.ts';
import { createTap } from '../helpers/tap-host.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
});

after(async () => {
  await h?.cleanup();
});

function writeDefinition(name: string, extra: Record<string, unknown>): string {
  const file = join(h.home, `${name}.json`);
  writeFileSync(file, JSON.stringify({ memoryMiB: 256, accel: 'tcg', boot: { kernel: { kernel: guest.kernel, initrd: guest.initrd, append: GUEST_CMDLINE } }, ...extra }));
  return file;
}

/** Creates a VM from a definition (kernel boot of the test guest), starts it, waits for the guest's shell. */
async function boot(name: string, extra: Record<string, unknown>): Promise<{ id: string; dir: string }> {
  const info = await h.json<{ id: string; dir: string }>(['create', '--name', name, '--file', writeDefinition(name, extra)]);
  await h.ok(['start', name]);
  await h.waitForSerial(info.id, READY_MARKER, 1, 120_000);
  await h.waitForSerial(info.id, PCI_END);
  return info;
}

async function waitFor(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Processes whose argv[0] ends in `binary` and whose command line contains `needle`. */
function pidsOf(binary: string, needle: string): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number).filter((pid) => {
    try {
      const a = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return (a[0] ?? '').endsWith(binary) && a.some((x) => x.includes(needle));
    } catch { return false; }
  });
}

/** virtiofsd processes serving `folder` that Hangar started: QEMU's virtiofsd forks its sandboxed worker into a new PID namespace, so the worker's parent is a virtiofsd too. */
function virtiofsdParents(folder: string): number[] {
  const all = pidsOf('virtiofsd', folder);
  const ppid = (pid: number): number => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]);
  return all.filter((pid) => { try { return !all.includes(ppid(pid)); } catch { return false; } });
}

/** The VM's runtime dir (HANGAR_HOME/run/vms/<id>, see core/node/paths.ts). */
function runtimeDirOf(id: string): string {
  return join(h.home, 'run', 'vms', id);
}

describe('device back ends in the guest', () => {
  test('virtio-serial channel: the guest sees the port by name, and bytes it writes to /dev/vportNpM arrive on the host socket', { timeout: 240_000 }, async () => {
    const vm = await boot('chan', { machine: 'q35', channels: [{ id: 'chan0', name: 'org.hangar.test.0' }] });
    const socket = join(runtimeDirOf(vm.id), 'chan0.sock');
    assert.ok(existsSync(socket), `QEMU serves the channel on ${socket}`);
    let received = '';
    const conn = createConnection(socket);
    conn.setEncoding('utf8').on('data', (d: string) => { received += d; });
    await new Promise<void>((resolve, reject) => { conn.once('connect', resolve); conn.once('error', reject); });
    const out = await h.consoleCommand('chan', 'for p in /sys/class/virtio-ports/*; do echo "port ${p##*/} $(cat $p/name)"; '
      + '[ "$(cat $p/name)" = org.hangar.test.0 ] && echo HANGAR-CHANNEL-DATA > /dev/${p##*/}; done', 4);
    assert.match(out, /^port vport\dp\d org\.hangar\.test\.0\s*$/m, out);
    await waitFor(() => received.includes('HANGAR-CHANNEL-DATA'), `the guest's bytes on ${socket} (got ${JSON.stringify(received)})`);
    conn.destroy();
    await h.ok(['destroy', 'chan']);
    assert.ok(!existsSync(socket), 'the channel socket is removed after the stop');
  });

  test('an extra serial port: the guest writes to /dev/ttyS1 and the text is in logs/<id>.log', { timeout: 240_000 }, async () => {
    const vm = await boot('uart', { machine: 'pc', serialPorts: [{ id: 'uart1', output: 'log' }] });
    const out = await h.consoleCommand('uart', 'stty -F /dev/ttyS1 raw -echo 2>/dev/null; echo HANGAR-UART-DATA > /dev/ttyS1 && echo WROTE-TTYS1', 4);
    assert.match(out, /^WROTE-TTYS1\s*$/m, out);
    const log = join(vm.dir, 'logs', 'uart1.log');
    await waitFor(() => existsSync(log) && readFileSync(log, 'utf8').includes('HANGAR-UART-DATA'), `HANGAR-UART-DATA in ${log}`);
    await h.ok(['destroy', 'uart']);
  });

  test('virtiofs: a supervised virtiofsd serves the folder, files go both ways; virtiofsd is gone after a stop and after SIGKILL of QEMU', { timeout: 300_000 }, async () => {
    const shared = join(h.home, 'vfs-share');
    mkdirSync(shared);
    writeFileSync(join(shared, 'from-host.txt'), 'hello over virtiofs\n');
    const vm = await boot('vfs', { machine: 'q35', shares: [{ id: 'fs0', driver: 'virtiofs', source: shared, tag: 'hostfs' }] });
    assert.equal(virtiofsdParents(shared).length, 1, 'one virtiofsd serves the share');
    const cmd = (await h.ok(['cmdline', 'vfs'])).replace(/\\\n\s*/g, ' ');
    assert.match(cmd, /memory-backend-memfd.*"share":true/, 'guest memory is shared with virtiofsd');
    const out = await h.consoleCommand('vfs', 'mkdir -p /mnt/v; mount -t virtiofs hostfs /mnt/v && cat /mnt/v/from-host.txt; '
      + 'echo written over virtiofs > /mnt/v/from-guest.txt; sync; echo DONE-VFS', 5);
    assert.match(out, /hello over virtiofs/, out);
    assert.match(out, /^DONE-VFS\s*$/m, out);
    await waitFor(() => existsSync(join(shared, 'from-guest.txt')), 'the guest\'s file in the host folder');
    assert.equal(readFileSync(join(shared, 'from-guest.txt'), 'utf8'), 'written over virtiofs\n');
    await h.ok(['destroy', 'vfs']);
    await waitFor(() => pidsOf('virtiofsd', shared).length === 0, 'virtiofsd stopped with the VM');

    await h.ok(['start', 'vfs']);
    await h.waitForSerial(vm.id, READY_MARKER, 2, 120_000);
    assert.equal(virtiofsdParents(shared).length, 1, 'a fresh virtiofsd for the second boot');
    const pid = (await h.json<{ pid: number }>(['show', 'vfs'])).pid;
    process.kill(pid, 'SIGKILL');
    await h.waitForState('vfs', 'crashed', 30_000);
    await waitFor(() => pidsOf('virtiofsd', shared).length === 0, 'virtiofsd stopped after QEMU was killed');
    assert.deepEqual(readdirSync(runtimeDirOf(vm.id)).filter((f) => /^vfs\d+\./.test(f)), [], 'no virtiofsd socket or pidfile left');
  });

  test('a NIC on a real tap device: the guest takes a static address and pings the host end of the tap', { timeout: 240_000 }, async () => {
    requireRoot('the tap NIC test (it creates a tap device with ip tuntap)');
    const name = testBridgeName('hgtap');
    const tap = createTap(name, '10.231.7.1/24');
    try {
      await boot('tapnic', { machine: 'q35', nics: [{ id: 'net0', model: 'virtio-net', mac: '52:54:00:7a:00:01', network: { type: 'tap', ifname: name } }] });
      const out = await h.consoleCommand('tapnic', 'ip link set eth0 up; ip addr add 10.231.7.2/24 dev eth0; '
        + 'ping -c 3 -W 5 10.231.7.1 >/dev/null 2>&1 && echo PING-HOST-OK || echo PING-HOST-FAILED', 20);
      assert.match(out, /^PING-HOST-OK\s*$/m, out);
      await h.ok(['destroy', 'tapnic']);
      // The tap is the user's: it outlives the VM.
      assert.ok(existsSync(`/sys/class/net/${name}`), 'the tap device is still there after the VM stopped');
    } finally {
      tap.remove();
    }
    const r = await h.run(['start', 'tapnic']);
    assert.notEqual(r.code, 0, 'a missing tap device is refused');
    assert.match(r.stderr, new RegExp(`tap device ${name}, which does not exist`));
    assert.match(r.stderr, new RegExp(`ip tuntap add dev ${name} mode tap user `));
  });

  test('vhost-user-net on a real back end (DPDK testpmd): frames the guest sends come back through the switch', { timeout: 240_000 }, async () => {
    const testpmd = '/usr/bin/dpdk-testpmd';
    assert.ok(existsSync(testpmd), 'dpdk-testpmd is missing: bash scripts/setup.sh --test installs dpdk-dev');
    const sock = join(h.home, 'vhu.sock');
    // No hugepages needed: testpmd's own buffers are plain memory; it maps the guest's shared memfd.
    // macswap sends every frame back with source and destination swapped.
    const pmd = spawn(testpmd, ['--no-huge', '-m', '512', '--no-pci', '--file-prefix', `hgt${process.pid}`, '--vdev', `net_vhost0,iface=${sock},client=0`,
      '--', '--total-num-mbufs=2048', '--forward-mode=macswap', '--auto-start', '--stats-period', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    pmd.stdout.on('data', (d: Buffer) => { log += d.toString(); });
    pmd.stderr.on('data', (d: Buffer) => { log += d.toString(); });
    try {
      await waitFor(() => existsSync(sock), `testpmd's vhost-user socket (log: ${log.slice(-500)})`, 20_000);
      await boot('vhunet', { machine: 'q35', nics: [{ id: 'net0', model: 'virtio-net', mac: '52:54:00:7a:00:02', network: { type: 'vhost-user', socket: sock } }] });
      const argv = await h.ok(['cmdline', 'vhunet']);
      assert.match(argv, /memory-backend-memfd/, 'guest memory is a shared memfd for the back end');
      const out = await h.consoleCommand('vhunet', 'ip link set eth0 up; ip addr add 10.231.9.2/24 dev eth0; ping -c 3 -W 1 10.231.9.1 >/dev/null 2>&1; '
        + 'echo "tx=$(cat /sys/class/net/eth0/statistics/tx_packets) rx=$(cat /sys/class/net/eth0/statistics/rx_packets)"', 12);
      const m = /tx=(\d+) rx=(\d+)/.exec(out);
      assert.ok(m, out);
      assert.ok(Number(m[1]) >= 3, `the guest sent frames: ${out}`);
      assert.ok(Number(m[2]) >= 3, `frames came back through testpmd: ${out}\ntestpmd: ${log.slice(-800)}`);
      assert.match(log, /new device|VHOST_CONFIG: .*negotiated/i, 'testpmd saw the vhost-user device');
      await h.ok(['destroy', 'vhunet']);
    } finally {
      pmd.kill('SIGKILL');
    }
  });

  test('vhost-net and vsock are refused before start when the host lacks their device nodes, with the fix; no QEMU is spawned', { timeout: 120_000 }, async () => {
    const cases = [
      { name: 'vhostnet', node: '/dev/vhost-net', extra: { nics: [{ id: 'net0', model: 'virtio-net', mac: '52:54:00:7a:00:02', network: { type: 'bridge', bridge: 'br-hgt-none', vhost: true } }] },
        message: /NIC "net0" has vhost on, and \/dev\/vhost-net missing: load the vhost_net module \(modprobe vhost_net\)/ },
      { name: 'vsock', node: '/dev/vhost-vsock', extra: { vsock: { cid: 7 } },
        message: /vsock \(guest CID 7\) needs the host kernel's vhost-vsock, and \/dev\/vhost-vsock missing: load the vhost_vsock module \(modprobe vhost_vsock\)/ },
    ];
    for (const c of cases) {
      // This host has neither node (see the design brief); a host that has one cannot show the refusal.
      assert.ok(!existsSync(c.node), `${c.node} exists on this host: this test proves the refusal only where it is missing`);
      const info = await h.json<{ id: string; dir: string }>(['create', '--name', c.name, '--file', writeDefinition(c.name, { machine: 'q35', ...c.extra })]);
      const r = await h.run(['start', c.name]);
      assert.notEqual(r.code, 0, `${c.name} start must fail`);
      assert.match(r.stderr, c.message, r.stderr);
      assert.equal(await h.state(c.name), 'stopped');
      assert.equal(pidsOf('qemu-system-x86_64', info.id).length, 0, 'no QEMU runs for the VM');
      const qemuLog = join(info.dir, 'logs', 'qemu.log');
      assert.ok(!existsSync(qemuLog), `QEMU was never spawned (no ${qemuLog})`);
    }
  });
});
