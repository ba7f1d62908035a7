// Display pipeline: the real test guest (TCG) drawing full-screen changes at 1280x800 on its
// framebuffer -> QEMU's VNC server -> (a) Hangar: the core's display channel with flow control ->
// WebSocket -> the renderer's transport and ChannelSocket -> noVNC in Debian Chromium, or
// (b) noVNC straight on QEMU's own VNC websocket (-vnc ...,websocket=on) of a second QEMU
// running the same guest the same way. Prints updates/s and MB/s, input-to-update latency
// p50/p99 (a key typed on tty1, the shell's echo drawn), and the core's memory while a viewer
// that never reads stalls (the core must stay flat: it stops reading from QEMU above its window).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { Server } from 'node:http';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import WebSocket from 'ws';
import { startCoreHost } from '../core/node/core-host.ts';
import { startWebServer } from '../core/node/web/web-server.ts';
import { launchChromium } from '../tests/e2e/browser.ts';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER, SCREEN_MARKER } from '../tests/guest/guest.ts';
import { HangarHarness, sleep } from '../tests/helpers/hangar.ts';

const DRAW_SECONDS = Number(process.env.BENCH_DISPLAY_SECONDS ?? 10);
const KEY_SAMPLES = Number(process.env.BENCH_DISPLAY_KEYS ?? 60);
const STALL_SECONDS = Number(process.env.BENCH_DISPLAY_STALL_SECONDS ?? 20);
const XK_A = 0x61;
const XK_BACKSPACE = 0xff08;

/** Makes two random 1280x800x32 frames in the guest and swaps them on /dev/fb0 forever. */
const DRAW_LOOP = 'dd if=/dev/urandom of=/tmp/f1 bs=4096 count=1000 2>/dev/null; dd if=/dev/urandom of=/tmp/f2 bs=4096 count=1000 2>/dev/null; '
  + '(while :; do cat /tmp/f1 > /dev/fb0; cat /tmp/f2 > /dev/fb0; done) & echo DRAWING-$((40+2))';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const freePort = (): Promise<number> => new Promise((res) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as AddressInfo).port; s.close(() => res(p)); });
});

interface Figures { updatesPerSec: number; mbPerSec: number; p50: number; p99: number }

type Call = <T>(fn: string, arg?: unknown) => Promise<T>;

/** Latency with the guest idle at its tty1 prompt, then throughput while it draws. */
async function measure(call: Call, startDrawing: () => Promise<void>): Promise<Figures> {
  const lat: number[] = [];
  for (let i = 0; i < KEY_SAMPLES; i++) {
    const ms = await call<number>('keyLatency', [XK_A, 'KeyA']);
    await call('keyLatency', [XK_BACKSPACE, 'Backspace']);
    if (Number.isFinite(ms)) lat.push(ms);
  }
  lat.sort((a, b) => a - b);
  await startDrawing();
  await sleep(3000); // the frames are made and the loop runs
  const a = await call<{ bytes: number; updates: number }>('stats');
  const t0 = Date.now();
  await sleep(DRAW_SECONDS * 1000);
  const b = await call<{ bytes: number; updates: number }>('stats');
  const secs = (Date.now() - t0) / 1000;
  return { updatesPerSec: (b.updates - a.updates) / secs, mbPerSec: (b.bytes - a.bytes) / secs / 1e6, p50: percentile(lat, 50), p99: percentile(lat, 99) };
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** A viewer that completes the RFB handshake, asks for many updates, then never reads or acks again. */
async function stalledViewer(url: string): Promise<{ ws: WebSocket; controls: string[] }> {
  const ws = new WebSocket(url, { origin: new URL(url.replace(/^ws/, 'http')).origin });
  let buf = Buffer.alloc(0);
  let waiter: (() => void) | null = null;
  const controls: string[] = [];
  ws.on('message', (d: Buffer, bin: boolean) => { if (bin) { buf = Buffer.concat([buf, d]); waiter?.(); } else controls.push(d.toString()); });
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  const need = async (n: number): Promise<Buffer> => {
    while (buf.length < n) await new Promise<void>((r) => { waiter = r; });
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    return out;
  };
  await need(12);
  ws.send(Buffer.from('RFB 003.008\n'));
  const [count] = await need(1);
  await need(count!);
  ws.send(Buffer.from([1]));
  await need(4);
  ws.send(Buffer.from([1]));
  const init = await need(24);
  await need(init.readUInt32BE(20));
  const enc = Buffer.alloc(8);
  enc[0] = 2; enc.writeUInt16BE(1, 2); enc.writeInt32BE(0, 4); // raw only: the largest updates
  ws.send(enc);
  for (let i = 0; i < 200; i++) {
    const r = Buffer.alloc(10);
    r[0] = 3; r[1] = i ? 1 : 0; r.writeUInt16BE(1280, 6); r.writeUInt16BE(800, 8);
    ws.send(r);
  }
  // Stop reading: the TCP socket fills, nothing is acknowledged.
  (ws as unknown as { _socket: Socket })._socket.pause();
  return { ws, controls };
}

async function bootDirectQemu(guest: Awaited<ReturnType<typeof ensureTestGuest>>, dir: string, vncPort: number, wsPort: number): Promise<{ child: ChildProcess; serial: Socket; log: () => string }> {
  const serialPath = join(dir, 'direct-serial.sock');
  const child = spawn('qemu-system-x86_64', ['-machine', 'q35', '-accel', 'tcg', '-cpu', 'max', '-m', '256', '-nodefaults', '-no-user-config',
    '-display', 'none', '-vnc', `127.0.0.1:${vncPort - 5900},websocket=${wsPort},share=force-shared`,
    '-device', 'qemu-xhci', '-device', 'usb-tablet', '-device', 'VGA',
    '-chardev', `socket,id=s0,path=${serialPath},server=on,wait=off`, '-serial', 'chardev:s0',
    '-kernel', guest.kernel, '-initrd', guest.initrd, '-append', GUEST_CMDLINE], { stdio: 'ignore' });
  let serial: Socket | null = null;
  for (let i = 0; i < 100 && !serial; i++) {
    await sleep(100);
    serial = await new Promise<Socket | null>((res) => { const s = connect(serialPath); s.once('connect', () => res(s)); s.once('error', () => res(null)); });
  }
  if (!serial) throw new Error('the direct QEMU did not open its serial socket');
  let out = '';
  serial.on('data', (d: Buffer) => { out += d.toString('latin1'); });
  const deadline = Date.now() + 120_000;
  while (!out.includes(READY_MARKER) || !out.includes(SCREEN_MARKER)) {
    if (Date.now() > deadline) throw new Error(`the direct QEMU's guest did not boot: ${out.slice(-500)}`);
    await sleep(100);
  }
  return { child, serial, log: () => out };
}

/** The same page without the web server's CSP (connect-src 'self'), so it may reach QEMU's own websocket. */
function plainStatic(dir: string): Promise<{ server: Server; url: string }> {
  const server = createHttpServer((req, res) => {
    const file = req.url?.startsWith('/main.js') ? 'main.js' : 'index.html';
    res.writeHead(200, { 'Content-Type': file.endsWith('.js') ? 'text/javascript' : 'text/html' });
    res.end(readFileSync(join(dir, file)));
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/index.html` })));
}

export async function benchDisplay(): Promise<void> {
  const guest = await ensureTestGuest();
  const dir = mkdtempSync(join(tmpdir(), 'hangar-bench-display-'));
  const h = new HangarHarness();
  const savedHome = process.env.HANGAR_HOME;
  process.env.HANGAR_HOME = h.home;
  const core = await startCoreHost();
  const browser = await launchChromium();
  let direct: Awaited<ReturnType<typeof bootDirectQemu>> | null = null;
  try {
    const page = join(dir, 'page');
    await build({
      entryPoints: [join(import.meta.dirname, 'display-page', 'main.ts')], bundle: true, format: 'esm',
      outdir: page, logLevel: 'warning', minify: true, target: 'chrome120',
    });
    writeFileSync(join(page, 'index.html'), readFileSync(join(import.meta.dirname, 'display-page', 'index.html')));
    const web = await startWebServer({ staticDir: page, port: 0, endpoint: core.endpoint });
    const { id } = await h.json<{ id: string }>(['create', '--name', 'bench', '--memory', '256', '--accel', 'tcg',
      '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE, '--video', 'vga']);
    await h.ok(['start', 'bench']);
    await h.waitForSerial(id, SCREEN_MARKER);
    await h.waitForSerial(id, READY_MARKER);

    const tab = await browser.newPage({ viewport: { width: 1300, height: 820 } });
    const plain = await plainStatic(page);
    const open = async (url: string): Promise<Call> => {
      await tab.goto(url);
      await tab.waitForFunction(() => 'bench' in window);
      return <T>(fn: string, arg?: unknown) => tab.evaluate(([f, a]) => {
        const b = (window as unknown as { bench: Record<string, (...x: unknown[]) => Promise<unknown>> }).bench;
        return b[f as string]!(...((a as unknown[] | undefined) ?? []));
      }, [fn, arg] as const) as Promise<T>;
    };

    // (a) Hangar's channel.
    let call = await open(web.url.replace('/?', '/index.html?'));
    await call('viaHangar', ['bench']);
    await tab.click('#screen canvas');
    const viaHangar = await measure(call, async () => {
      const out = await h.consoleCommand('bench', DRAW_LOOP, 15);
      if (!out.includes('DRAWING-42')) throw new Error(`the draw loop did not start: ${out}`);
    });
    await call('disconnect');

    // The core's memory with a stalled viewer while the guest keeps drawing.
    const { ws, controls } = await stalledViewer(`${web.url.replace(/^http/, 'ws').replace('/?', '/api/display?vm=bench&')}`);
    const samples: number[] = [];
    for (let i = 0; i < STALL_SECONDS * 2; i++) { samples.push(rssMiB(process.pid)); await sleep(500); }
    // Read again: what did the core say meanwhile?
    (ws as unknown as { _socket: Socket })._socket.resume();
    await Promise.race([new Promise((r) => ws.once('close', r)), sleep(5000)]);
    const closedBy = controls.some((c) => c.includes('too-slow')) ? 'cut off by the core as too slow (reconnects in the app)' : `not cut off (${ws.readyState === WebSocket.OPEN ? 'still open' : 'closed'})`;
    ws.terminate();
    await h.ok(['destroy', 'bench']);

    // (b) noVNC straight on QEMU's websocket.
    const vncPort = 5900 + 50 + Math.floor(Math.random() * 40);
    const wsPort = await freePort();
    direct = await bootDirectQemu(guest, dir, vncPort, wsPort);
    call = await open(plain.url);
    await call('direct', [`ws://127.0.0.1:${wsPort}`]);
    plain.server.close();
    await tab.click('#screen canvas');
    const d = direct;
    const straight = await measure(call, async () => {
      d.serial.write(`${DRAW_LOOP}\n`);
      const deadline = Date.now() + 20_000;
      while (!d.log().includes('DRAWING-42')) { if (Date.now() > deadline) throw new Error('direct draw loop did not start'); await sleep(100); }
    });
    await call('disconnect');

    const row = (name: string, f: Figures): string => `  ${name.padEnd(26)} ${f.updatesPerSec.toFixed(1).padStart(6)} updates/s ${f.mbPerSec.toFixed(1).padStart(6)} MB/s   key->update p50 ${f.p50.toFixed(1)} ms, p99 ${f.p99.toFixed(1)} ms`;
    console.log(`display: 1280x800 full-screen changes (two random frames swapped on /dev/fb0, TCG), ${DRAW_SECONDS} s; latency over ${KEY_SAMPLES} keys on an idle tty1`);
    console.log(row('Hangar display channel', viaHangar));
    console.log(row('noVNC direct to QEMU ws', straight));
    console.log(`  throughput ratio (bytes/s, Hangar / direct): ${(viaHangar.mbPerSec / straight.mbPerSec).toFixed(2)} (target >= 0.9); updates/s ratio ${(viaHangar.updatesPerSec / straight.updatesPerSec).toFixed(2)}`);
    console.log(`  added p99 latency: ${(viaHangar.p99 - straight.p99).toFixed(1)} ms (target < 5 ms); added p50 ${(viaHangar.p50 - straight.p50).toFixed(1)} ms`);
    const first = samples.slice(0, 4).reduce((a, b) => a + b, 0) / 4;
    console.log(`  core RSS with a stalled viewer over ${STALL_SECONDS} s: start ${first.toFixed(0)} MiB, peak ${Math.max(...samples).toFixed(0)} MiB, end ${samples.at(-1)!.toFixed(0)} MiB (target: flat; the window is 4 MiB); viewer ${closedBy}`);
  } finally {
    await browser.close().catch(() => {});
    if (direct) { direct.serial.destroy(); direct.child.kill('SIGKILL'); }
    await h.run(['destroy', 'bench']).catch(() => {});
    await core.stop().catch(() => {});
    if (savedHome === undefined) delete process.env.HANGAR_HOME; else process.env.HANGAR_HOME = savedHome;
    await h.cleanup().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}
