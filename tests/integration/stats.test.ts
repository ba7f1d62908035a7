// Statistics with real QEMU under TCG and the real test guest (issue 17): one guest with a
// virtio disk, a bridged NIC and a user-mode NIC, plus a paused second VM. A busy loop in the
// guest shows as about one vCPU's worth of CPU; dd to the virtio disk shows its bytes in the
// disk counters and series; traffic over the bridge's tap shows in the NIC series while the
// user-mode NIC says why it has none; `hangar top --once --json` lists both VMs by CPU;
// `hangar stats --history` returns the samples; live samples reach only a connection that
// watches; the host summary agrees with /proc/meminfo and counts the two VMs, and its hostStats
// events reach only a watching connection; live `hangar top` (no terminal) redraws plain tables
// with the host line until Ctrl-C; /metrics answers with the token and refuses without.
// Needs root (the bridge and qemu-bridge-helper's ACL): fails, never skips, without it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostSummary, StatsHistory, StatsSample } from '../../core/common/stats.ts';
import type { TopJson } from '../../core/node/cli/stats.ts';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { addAclLines, createBridge, requireRoot, testBridgeName } from '../helpers/bridge-host.ts';
import type { TestBridge } from '../helpers/bridge-host.ts';
import { HANGAR_BIN, HangarHarness, sleep } from '../helpers/hangar.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
let br: TestBridge | undefined;
let restoreAcl: (() => void) | undefined;
const HOST_IP = '10.232.0.1';
const GUEST_IP = '10.232.0.2';
const DD_MIB = 32;
let vmId = '';
let bridgeMac = '';

before(async () => {
  requireRoot('the statistics integration test (bridged NIC)');
  guest = await ensureTestGuest();
  h = new HangarHarness();
  br = createBridge(testBridgeName('hgtst-'), `${HOST_IP}/24`);
  restoreAcl = addAclLines([`allow ${br.name}`]);
  const disk = join(h.home, 'data.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
  const vm = await h.json<{ id: string; definition: { nics: Array<{ id: string; mac: string }> } }>(['create', '--name', 'st', '--memory', '256', '--accel', 'tcg',
    '--disk', `${disk},bus=virtio-blk`, '--nic', `bridge,br=${br.name},model=virtio-net`, '--nic', 'user,model=virtio-net',
    '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE]);
  vmId = vm.id;
  bridgeMac = vm.definition.nics[0]!.mac;
  await h.ok(['start', 'st']);
  await h.waitForSerial(vm.id, READY_MARKER, 1, 240_000);
  // The second VM: no guest at all, paused at once (it still has a QEMU to sample).
  await h.ok(['create', '--name', 'idle', '--memory', '32', '--accel', 'tcg']);
  await h.ok(['start', 'idle']);
  await h.ok(['pause', 'idle']);
});

after(async () => {
  await h?.cleanup();
  restoreAcl?.();
  br?.remove();
});

const stats = (): Promise<StatsSample> => h.json<StatsSample>(['stats', 'st']);
const history = (range: string): Promise<StatsHistory> => h.json<StatsHistory>(['stats', 'st', '--history', range]);
const mean = (xs: Array<number | null>): number => { const v = xs.filter((x): x is number => x !== null); return v.reduce((a, b) => a + b, 0) / v.length; };

describe('statistics', { timeout: 900_000 }, () => {
  test('a busy-looping guest shows about one vCPU\'s worth of CPU', async () => {
    await h.consoleCommand('st', 'while :; do :; done &', 2);
    try {
      await sleep(6000);
      const hist = await history('5s');
      const vcpu = mean(hist.series.vcpu!.slice(-5));
      assert.ok(vcpu > 60, `the vCPU thread is busy: ${vcpu.toFixed(1)}% of one core over the last 5 s`);
      assert.ok(vcpu < 130, `one vCPU cannot use more than one core: ${vcpu.toFixed(1)}%`);
      const s = await stats();
      assert.equal(s.vcpus, 1);
      assert.ok(s.cpuPercent >= s.vcpuPercent, 'the total includes the vCPU threads');
      assert.ok(s.rssBytes > 64 * 1024 * 1024, `QEMU holds guest memory: RSS ${s.rssBytes}`);
      assert.equal(s.memoryBytes, 256 * 1024 * 1024);
    } finally {
      await h.consoleCommand('st', 'kill %1; kill $!', 2);
    }
  });

  test('dd to the virtio disk shows its bytes in the disk counters and series', async () => {
    const before = await stats();
    const d0 = before.disks.find((d) => d.id === 'disk0');
    assert.ok(d0, `disk0 is sampled: ${JSON.stringify(before.disks)}`);
    const out = await h.consoleCommand('st', `dd if=/dev/zero of=/dev/vda bs=1M count=${DD_MIB} oflag=direct 2>&1; echo DD-DONE`, 20);
    assert.match(out, new RegExp(`${DD_MIB}\\+0 records out`), out);
    await sleep(2500);
    const after = await stats();
    const d1 = after.disks.find((d) => d.id === 'disk0')!;
    const written = d1.wrBytes - d0.wrBytes;
    const want = DD_MIB * 1024 * 1024;
    assert.ok(Math.abs(written - want) <= want * 0.03, `the counter grew by ${written} bytes; dd wrote ${want}`);
    assert.ok(d1.wrOps - d0.wrOps >= DD_MIB, `at least one write per MiB: ${d1.wrOps - d0.wrOps}`);
    // The series: bytes per second, one point a second; their sum is what was written.
    const hist = await history('2m');
    const series = hist.series['disk.disk0.wrBps']!;
    const sum = series.reduce<number>((a, v) => a + (v ?? 0), 0) * hist.stepSeconds;
    assert.ok(Math.abs(sum - want) <= want * 0.1, `the write series adds up to ${sum} bytes; dd wrote ${want}`);
    assert.ok(hist.series['disk.disk0.wrIops']!.some((v) => (v ?? 0) > 0), 'write IOPS show');
    assert.ok(hist.series['disk.disk0.latMs']!.some((v) => (v ?? 0) > 0), 'latency shows');
  });

  test('traffic over the bridged NIC shows in its series; the user-mode NIC says why it has none', async () => {
    const iface = `$(for i in /sys/class/net/eth*; do [ "$(cat $i/address)" = ${bridgeMac} ] && echo \${i##*/}; done)`;
    const before = await stats();
    const n0 = before.nics.find((n) => n.id === 'net0');
    assert.ok(n0?.available, `net0 has counters: ${JSON.stringify(before.nics)}`);
    assert.match(n0.device, /^tap\d+$/, 'from the tap qemu-bridge-helper made');
    assert.deepEqual(before.nics.find((n) => n.id === 'net1'), { id: 'net1', available: false, reason: 'user-mode networking (slirp) keeps no counters Hangar can read' });
    const ping = await h.consoleCommand('st', `IF=${iface}; ip addr add ${GUEST_IP}/24 dev $IF; ip link set $IF up; ping -c 10 -s 4000 -w 40 ${HOST_IP}`, 25);
    assert.match(ping, /10 packets transmitted, 10 packets received/, ping);
    await sleep(2500);
    const after = await stats();
    const n1 = after.nics.find((n) => n.id === 'net0');
    assert.ok(n1?.available && n0.available);
    assert.ok(n1.txBytes - n0.txBytes >= 10 * 4000, `the guest sent ${n1.txBytes - n0.txBytes} bytes (10 pings of 4000)`);
    assert.ok(n1.rxBytes - n0.rxBytes >= 10 * 4000, `the guest received ${n1.rxBytes - n0.rxBytes} bytes (10 replies of 4000)`);
    const hist = await history('2m');
    assert.ok(hist.series['nic.net0.txBps']!.some((v) => (v ?? 0) > 4000), 'the send series shows the pings');
    assert.ok(hist.series['nic.net0.rxBps']!.some((v) => (v ?? 0) > 4000), 'the receive series shows the replies');
    assert.equal(hist.series['nic.net1.rxBps'], undefined, 'no series for the user-mode NIC');
    assert.deepEqual(hist.unavailable, [{ id: 'net1', reason: 'user-mode networking (slirp) keeps no counters Hangar can read', kind: 'nic' }]);
  });

  test('hangar top --once --json lists the running VMs by CPU; hangar stats --history returns the samples', async () => {
    const { vms: rows, host } = await h.json<TopJson>(['top', '--once']);
    assert.equal(host.runningVms, 2, JSON.stringify(host));
    assert.deepEqual(rows.map((r) => r.name).sort(), ['idle', 'st']);
    for (const r of rows) {
      assert.ok(r.rssBytes > 0 && r.vcpus === 1, JSON.stringify(r));
      assert.ok(r.cpuPercent >= 0);
    }
    assert.ok(rows[0]!.cpuPercent >= rows[1]!.cpuPercent, 'sorted by CPU');
    assert.equal(rows.find((r) => r.name === 'idle')!.netRxBytesPerSec, null, 'a VM without NICs has no network rates');
    const text = await h.ok(['top', '--once']);
    assert.match(text, /^NAME\s+CPU\s+VCPUS\s+RSS\s+MEMORY\s+DISK RD\s+DISK WR\s+NET RX\s+NET TX$/m, text);
    assert.match(text, /^Host: CPU [\d.]+% of \d+ CPUs?, memory 288 MiB committed \/ \d+ MiB total, \d+ MiB available, guests hold \d+ MiB; 2\/2 VMs running$/m, text);

    const hist = await history('1m');
    assert.equal(hist.vmId, vmId);
    assert.equal(hist.stepSeconds, 1);
    assert.ok(hist.t.length >= 50 && hist.t.length <= 62, `about a minute of 1 s points: ${hist.t.length}`);
    assert.equal(hist.series.cpu!.length, hist.t.length);
    assert.ok(hist.t.every((t, i) => i === 0 || t > hist.t[i - 1]!), 'oldest first');
    assert.ok(hist.latest && hist.latest.vmId === vmId);
    const shown = await h.ok(['stats', 'st', '--history', '1m']);
    assert.match(shown, /^cpu\s+\S+%/m, shown);
    const now = await h.ok(['stats', 'st']);
    assert.match(now, /^Disk disk0: read /m, now);
    assert.match(now, /^NIC net1: no counters: user-mode networking/m, now);
  });

  test('live samples reach only a connection that watches, for the VMs it watches', async () => {
    process.env.HANGAR_HOME = h.home;
    const { connectCore } = await import('../../core/node/rpc/client.ts');
    const got: StatsSample[] = [];
    const c = await connectCore({ autostart: false, events: { statsSample: (s) => { got.push(s); } } });
    try {
      await sleep(2500);
      assert.equal(got.length, 0, 'nothing pushed before watchStats');
      await c.api.watchStats(['st']);
      await sleep(3500);
      assert.ok(got.length >= 2, `samples arrive each second: ${got.length}`);
      assert.ok(got.every((s) => s.name === 'st'), 'only the watched VM');
      await c.api.watchStats(null);
      await sleep(2500);
      assert.ok(got.some((s) => s.name === 'idle'), 'null watches every running VM');
      await c.api.watchStats([]);
      await sleep(1500);
      const n = got.length;
      await sleep(2500);
      assert.equal(got.length, n, 'an empty list stops them');
    } finally {
      c.close();
    }
  });

  test('the host summary agrees with /proc/meminfo and counts the running VMs\' memory; hostStats reach only a watching connection', async () => {
    process.env.HANGAR_HOME = h.home;
    const { connectCore } = await import('../../core/node/rpc/client.ts');
    const watched: HostSummary[] = [];
    const unwatched: HostSummary[] = [];
    const c = await connectCore({ autostart: false, events: { hostStats: (e) => { watched.push(e); } } });
    const quiet = await connectCore({ autostart: false, events: { hostStats: (e) => { unwatched.push(e); } } });
    try {
      const hs = await c.api.hostSummary();
      const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
      assert.equal(hs.memTotalBytes, kb('MemTotal'));
      const avail = kb('MemAvailable');
      assert.ok(Math.abs(hs.memAvailableBytes - avail) <= avail * 0.1, `available ${hs.memAvailableBytes} vs /proc/meminfo ${avail}`);
      assert.equal(hs.committedBytes, (256 + 32) * 1024 * 1024, 'st (256 MiB) and the paused idle (32 MiB)');
      assert.equal(hs.runningVms, 2);
      assert.equal(hs.definedVms, 2);
      assert.ok(hs.guestRssBytes > 64 * 1024 * 1024 && hs.guestRssBytes < hs.memTotalBytes, `guest RSS ${hs.guestRssBytes}`);
      assert.ok(hs.cpus >= 1);
      assert.ok(hs.cpuPercent !== null && hs.cpuPercent >= 0 && hs.cpuPercent <= 100, `host CPU ${hs.cpuPercent}`);
      await sleep(2500);
      assert.equal(watched.length, 0, 'nothing before watchStats');
      await c.api.watchStats(['idle']);
      await quiet.api.watchStats([]);
      await sleep(3500);
      assert.ok(watched.length >= 2, `about one a second: ${watched.length}`);
      assert.ok(watched.every((e) => e.runningVms === 2 && e.memTotalBytes === hs.memTotalBytes));
      assert.equal(unwatched.length, 0, 'never to a connection that did not watch (or watched nothing)');
      await c.api.watchStats([]);
      await sleep(1500);
      const n = watched.length;
      await sleep(2500);
      assert.equal(watched.length, n, 'an empty list stops them');
    } finally {
      c.close();
      quiet.close();
    }
  });

  test('live hangar top without a terminal redraws plain tables with the host line until Ctrl-C, then exits 0', async () => {
    const child = spawn(process.execPath, [HANGAR_BIN, 'top'], { env: h.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      const frames = (): string[] => out.split(/^(?=hangar top - )/m).filter((f) => f.startsWith('hangar top - '));
      const deadline = Date.now() + 60_000;
      // Three frames, so at least two are redraws after the first.
      while (frames().length < 3 && Date.now() < deadline) await sleep(200);
      const shown = frames();
      assert.ok(shown.length >= 3, `redraws: ${shown.length}\n${out}\n${err}`);
      for (const f of shown.slice(1)) {
        assert.match(f, /^Host: CPU \S+ of \d+ CPUs?, memory 288 MiB committed/m, f);
        assert.match(f, /^st\s+\d+\.\d%/m, f);
      }
      assert.ok(!out.includes('\x1b['), 'no escape codes without a terminal');
      child.kill('SIGINT');
      assert.equal(await exited, 0, err);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  test('/metrics in browser mode answers with the token and refuses without it', async () => {
    const web = await h.serve();
    try {
      const ok = await fetch(`${web.origin}/metrics?token=${web.token}`);
      assert.equal(ok.status, 200);
      assert.match(ok.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const text = await ok.text();
      assert.match(text, /^# TYPE hangar_vm_cpu_seconds_total counter$/m, text);
      assert.match(text, new RegExp(`^hangar_vm_cpu_seconds_total\\{vm="st",id="${vmId}"\\} \\d+(\\.\\d+)?$`, 'm'), text);
      assert.match(text, /^hangar_vm_disk_written_bytes_total\{vm="st",id="[^"]+",disk="disk0"\} (\d+)$/m);
      assert.match(text, /^hangar_vm_network_transmit_bytes_total\{vm="st",id="[^"]+",nic="net0",device="tap\d+"\} \d+$/m);
      assert.match(text, /^hangar_vm_memory_resident_bytes\{vm="idle",/m);
      assert.match(text, /^hangar_vms_running\{\} 2$/m);
      const bearer = await fetch(`${web.origin}/metrics`, { headers: { Authorization: `Bearer ${web.token}` } });
      assert.equal(bearer.status, 200, 'Prometheus can send the token as a bearer token');
      await bearer.text();
      const none = await fetch(`${web.origin}/metrics`);
      assert.equal(none.status, 401);
      const wrong = await fetch(`${web.origin}/metrics`, { headers: { Authorization: 'Bearer nope' } });
      assert.equal(wrong.status, 401);
    } finally {
      await web.stop();
    }
  });
});
