// I/O modes compared inside the real test guest (TCG here, so absolute figures are far below KVM;
// the ratios between modes are the point): sequential direct-I/O write and read through IDE,
// AHCI, virtio-blk, virtio-scsi and vhost-user-blk on the same host file, and guest -> host TCP
// throughput for e1000, rtl8139 and virtio-net over user-mode NAT, passt and (as root) a tap. Times come from the
// guest's busybox `time` (its dd prints no rate), throughput from the host's TCP sink. The guest has no
// fio, so no 4k random IOPS. Prints a table with ratios against the emulated baseline.
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../tests/guest/guest.ts';
import { HangarHarness } from '../tests/helpers/hangar.ts';
import { createTap } from '../tests/helpers/tap-host.ts';

const DISK_MIB = 256;
const IO_MIB = Number(process.env.BENCH_IO_MIB ?? 192);
const NET_MIB = Number(process.env.BENCH_NET_MIB ?? 32);

/** MB/s from busybox time's "real 0m 1.23s" for `mib` MiB moved (this busybox dd prints no rate). */
function timedRate(out: string, mib: number): number | null {
  const m = /real\s+(\d+)m\s*([\d.]+)s/.exec(out);
  if (!m) return null;
  const secs = Number(m[1]) * 60 + Number(m[2]);
  return secs > 0 ? (mib * 1024 * 1024) / 1e6 / secs : null;
}

let seq = 0;

/**
 * Runs a command in the guest's shell and returns what it printed: typed through the console
 * (which detaches at once), finished when its end marker shows in the serial log. The marker is
 * typed split in two, so the echo of the typed line never matches it.
 */
async function guestRun(h: HangarHarness, id: string, name: string, cmd: string, timeoutMs = 300_000): Promise<string> {
  const mark = `BENCH-END-${++seq}`;
  const before = h.serialLog(id).length;
  await h.consoleCommand(name, `${cmd}; echo "BENCH-END""-${seq}"`, 1);
  await h.waitForSerial(id, mark, 1, timeoutMs);
  const log = h.serialLog(id);
  return log.slice(before, log.indexOf(mark, before));
}

async function boot(h: HangarHarness, guest: Awaited<ReturnType<typeof ensureTestGuest>>, name: string, extra: Record<string, unknown>): Promise<string> {
  const file = join(h.home, `${name}.json`);
  writeFileSync(file, JSON.stringify({ memoryMiB: 512, accel: 'tcg', boot: { kernel: { kernel: guest.kernel, initrd: guest.initrd, append: GUEST_CMDLINE } }, ...extra }));
  const info = await h.json<{ id: string }>(['create', '--name', name, '--file', file]);
  await h.ok(['start', name]);
  await h.waitForSerial(info.id, READY_MARKER, 1, 180_000);
  return info.id;
}

async function diskBench(h: HangarHarness, guest: Awaited<ReturnType<typeof ensureTestGuest>>): Promise<string[]> {
  const img = join(h.home, 'bench-disk.raw');
  writeFileSync(img, Buffer.alloc(DISK_MIB * 1024 * 1024));
  const modes: Array<[string, string, string]> = [['IDE (emulated)', 'pc', 'ide'], ['AHCI (emulated)', 'q35', 'sata'],
    ['virtio-blk', 'q35', 'virtio-blk'], ['virtio-scsi', 'q35', 'scsi'], ['vhost-user-blk', 'q35', 'vhost-user-blk']];
  const rows: Array<{ label: string; write: number | null; read: number | null }> = [];
  for (const [label, machine, bus] of modes) {
    const name = `disk-${bus}`;
    const id = await boot(h, guest, name, { machine, disks: [{ id: 'bench', file: img, format: 'raw', bus, cache: 'none' }] });
    const find = `d=; for b in /sys/block/*; do [ "$(cat $b/size)" = ${DISK_MIB * 2048} ] && d=\${b##*/}; done`;
    const w = await guestRun(h, id, name, `${find}; time dd if=/dev/zero of=/dev/$d bs=1M count=${IO_MIB} oflag=direct`);
    const r = await guestRun(h, id, name, `${find}; time dd if=/dev/$d of=/dev/null bs=1M count=${IO_MIB} iflag=direct`);
    rows.push({ label, write: timedRate(w, IO_MIB), read: timedRate(r, IO_MIB) });
    await h.ok(['destroy', name]);
  }
  const base = rows[0]!;
  const fmt = (v: number | null, b: number | null): string => (v === null ? 'n/a' : `${v.toFixed(1)} MB/s${b ? ` (${(v / b).toFixed(2)}x)` : ''}`);
  return [`disk, sequential ${IO_MIB} MiB, direct I/O, 1 MiB blocks (ratio vs IDE):`,
    ...rows.map((r) => `  ${r.label.padEnd(18)} write ${fmt(r.write, base.write).padEnd(22)} read ${fmt(r.read, base.read)}`),
    '  4k random IOPS: not measured (the test guest has no fio)'];
}

/** A TCP sink on the host: MB/s from the first byte to the last (nc may linger before it closes). */
function sink(address = '127.0.0.1'): Promise<{ port: number; result: Promise<number> }> {
  return new Promise((resolveListen) => {
    let done!: (v: number) => void;
    const result = new Promise<number>((r) => { done = r; });
    const server = createServer((sock) => {
      let bytes = 0;
      let t0 = 0;
      let t1 = 0;
      sock.on('data', (d: Buffer) => { t1 = performance.now(); if (!t0) t0 = t1; bytes += d.length; });
      sock.on('close', () => { server.close(); done(t1 > t0 ? bytes / 1e6 / ((t1 - t0) / 1000) : 0); });
    });
    server.listen(0, address, () => resolveListen({ port: (server.address() as AddressInfo).port, result }));
  });
}

/** The tap back end needs root (to make the tap); elsewhere its rows say so. */
const TAP_HOST = '10.77.0.1';

async function netBench(h: HangarHarness, guest: Awaited<ReturnType<typeof ensureTestGuest>>): Promise<string[]> {
  const rows: string[] = [`network, guest -> host TCP, ${NET_MIB} MiB (ratio vs e1000 on the same back end):`];
  const root = process.getuid?.() === 0;
  for (const backend of ['user', 'passt', 'tap'] as const) {
    if (backend === 'tap' && !root) {
      rows.push('  tap: not measured (making a tap device needs root)');
      continue;
    }
    const tap = backend === 'tap' ? createTap('hgbench0', `${TAP_HOST}/24`) : null;
    try {
      const rates: Array<[string, number | null]> = [];
      for (const model of ['e1000', 'rtl8139', 'virtio-net'] as const) {
        const name = `net-${backend}-${model}`;
        const network = tap ? { type: 'tap', ifname: tap.name } : { type: backend };
        const id = await boot(h, guest, name, { machine: 'q35', nics: [{ id: 'net0', model, network }] });
        // user-mode: 10.0.2.2 is the host; passt maps the gateway address to the host; tap: a static address.
        await guestRun(h, id, name, tap ? 'ip addr add 10.77.0.2/24 dev eth0; ip link set eth0 up; sleep 1' : 'udhcpc -i eth0 -q -n -t 5 >/dev/null 2>&1; ip route');
        const { port, result } = await sink(tap ? TAP_HOST : '127.0.0.1');
        const host = backend === 'user' ? '10.0.2.2' : tap ? TAP_HOST : '$(ip route | awk \'/default/ {print $3}\')';
        await guestRun(h, id, name, `dd if=/dev/zero bs=64k count=${NET_MIB * 16} 2>/dev/null | nc -w 5 ${host} ${port}`);
        const rate = await Promise.race([result, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
        rates.push([model, rate]);
        await h.ok(['destroy', name]);
      }
      const base = rates[0]![1];
      for (const [model, r] of rates) rows.push(`  ${`${model} on ${backend}`.padEnd(22)} ${r === null ? 'n/a' : `${r.toFixed(1)} MB/s${base ? ` (${(r / base).toFixed(2)}x)` : ''}`}`);
    } finally {
      tap?.remove();
    }
  }
  rows.push('  vhost-net: not measured here (/dev/vhost-net is missing on this host)');
  return rows;
}

export async function benchIoModes(): Promise<void> {
  const guest = await ensureTestGuest();
  const h = new HangarHarness();
  try {
    const lines = [...await diskBench(h, guest), ...await netBench(h, guest)];
    console.log(`io-modes (TCG: software emulation; KVM gives far higher figures and larger virtio gains):\n${lines.join('\n')}`);
  } finally {
    await h.cleanup();
  }
}
