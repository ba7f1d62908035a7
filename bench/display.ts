// Display pipeline: the real test guest (TCG) drawing full-screen changes at 1280x800 on its
// framebuffer -> QEMU's VNC server -> noVNC in Debian Chromium, (a) through Hangar: the in-process
// core (as `hangar serve` runs it) on the VM's VNC unix socket -> display channel with flow
// control -> WebSocket -> the renderer's transport and ChannelSocket adapter, or (b) straight on
// QEMU's own VNC websocket (-vnc ...,websocket=) of a second QEMU running the same argv
// (`hangar cmdline`). Both VMs run at once and both viewers sit in one page; the two paths are
// measured in alternating rounds with the other VM paused, so host noise falls on both alike.
// Prints updates/s and MB/s, key -> next update drawn p50/p99 (a key typed on tty1, the shell's
// echo), and the core's RSS while a viewer that never reads stalls (it must stay flat: the core
// stops reading from QEMU above its window and cuts the viewer off).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import type { Browser } from 'playwright-core';
import WebSocket from 'ws';
import { DISPLAY_HIGH_WATER, CONSOLE_STALL_MS } from '../core/common/transport.ts';
import { startCoreHost } from '../core/node/core-host.ts';
import { QmpClient } from '../core/node/qmp/client.ts';
import { startWebServer } from '../core/node/web/web-server.ts';
import { launchChromium } from '../tests/e2e/browser.ts';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER, SCREEN_MARKER } from '../tests/guest/guest.ts';
import { HangarHarness, sleep } from '../tests/helpers/hangar.ts';
import { WsConsole, wsCoreClient } from '../tests/helpers/ws-client.ts';

/** Seconds of drawing measured per path (split over the rounds). */
const DRAW_SECONDS = Number(process.env.BENCH_DISPLAY_SECONDS ?? 12);
/** Keys typed per path (split over the rounds). */
const KEY_SAMPLES = Number(process.env.BENCH_DISPLAY_KEYS ?? 60);
const ROUNDS = Math.max(1, Number(process.env.BENCH_DISPLAY_ROUNDS ?? 3));
const STALL_SECONDS = Number(process.env.BENCH_DISPLAY_STALL_SECONDS ?? 20);
const XK_A = 0x61;
const XK_BACKSPACE = 0xff08;
const MiB = 1024 * 1024;

type Path = 'hangar' | 'direct';
const PATHS: Path[] = ['hangar', 'direct'];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** A guest shell on a serial line: run a command, wait for its own end marker, return its output. */
interface GuestShell { run(cmd: string, timeoutMs?: number): Promise<string> }

function guestShell(write: (s: string) => void, output: () => string): GuestShell {
  let n = 0;
  return {
    async run(cmd, timeoutMs = 60_000) {
      const tag = `HBD${++n}Z`;
      const from = output().length;
      // The typed line holds "HBD$((n))Z"; only the shell's output holds "HBDnZ".
      write(`${cmd}; echo HBD$((${n}))Z\n`);
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const out = output().slice(from);
        const at = out.lastIndexOf(tag);
        if (at >= 0) return out.slice(0, at);
        if (Date.now() > deadline) throw new Error(`guest command "${cmd}" did not finish: ${out.slice(-400)}`);
        await sleep(50);
      }
    },
  };
}

/** The VM's argv as Hangar runs it, with its VNC on a loopback port + websocket instead of the unix socket. */
function directArgv(argv: string[], runDir: string, dir: string, vncDisplay: number, wsPort: number): string[] {
  return argv.slice(1).filter((a) => a !== '-S').map((a) => {
    if (a.startsWith('unix:') && a.includes('vnc.sock')) return `127.0.0.1:${vncDisplay},websocket=127.0.0.1:${wsPort},share=force-shared`;
    if (a.startsWith('guest=')) return a.replace(/^guest=[^,]*/, 'guest=bench-direct');
    return a.split(runDir).join(dir);
  });
}

interface DirectQemu { child: ChildProcess; serial: Socket; shell: GuestShell; qmp: () => Promise<QmpClient>; log: () => string }

async function spawnDirect(qemu: string, args: string[], dir: string): Promise<DirectQemu> {
  const child = spawn(qemu, args, { stdio: ['ignore', openSync(join(dir, 'qemu.log'), 'a'), openSync(join(dir, 'qemu.log'), 'a')] });
  const serialPath = args.find((a) => a.startsWith('socket,id=ch_serial0,'))!.replace(/^.*path=([^,]+).*$/, '$1');
  const qmpPath = args.find((a) => a.startsWith('socket,id=ch_qmp,'))!.replace(/^.*path=([^,]+).*$/, '$1');
  let serial: Socket | null = null;
  for (let i = 0; i < 200 && !serial; i++) {
    if (child.exitCode !== null) break;
    await sleep(50);
    serial = await new Promise<Socket | null>((res) => { const s = connect(serialPath); s.once('connect', () => res(s)); s.once('error', () => res(null)); });
  }
  if (!serial) throw new Error(`the direct QEMU did not open its serial socket: ${readFileSync(join(dir, 'qemu.log'), 'utf8')}`);
  let out = '';
  serial.on('data', (d: Buffer) => { out += d.toString('latin1'); });
  const s = serial;
  let q: Promise<QmpClient> | null = null;
  return { child, serial, shell: guestShell((t) => s.write(t), () => out), qmp: () => (q ??= QmpClient.connect(qmpPath)), log: () => out };
}

async function until(pred: () => boolean, what: string, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

/**
 * A viewer that completes the RFB handshake, asks for raw updates (the largest) every 20 ms as a
 * client whose writer works but whose reader hangs, and never reads or acks again.
 */
async function stalledViewer(url: string): Promise<{ ws: WebSocket; stop(): void; resume(): Promise<{ bytes: number; ended: string | null; closed: boolean }> }> {
  const ws = new WebSocket(url, { origin: new URL(url.replace(/^ws/, 'http')).origin });
  let buf = Buffer.alloc(0);
  let total = 0;
  let waiter: (() => void) | null = null;
  let ended: string | null = null;
  let closed = false;
  ws.on('message', (d: Buffer, bin: boolean) => {
    if (bin) { buf = Buffer.concat([buf, d]); total += d.length; waiter?.(); return; }
    const m = /"type":"end","reason":"([^"]+)"/.exec(d.toString());
    if (m) ended = m[1]!;
  });
  ws.on('close', () => { closed = true; });
  ws.on('error', () => {});
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
  ws.send(Buffer.from([1])); // security: none
  await need(4);
  ws.send(Buffer.from([1])); // shared
  const init = await need(24);
  await need(init.readUInt32BE(20));
  const enc = Buffer.alloc(8);
  enc[0] = 2; enc.writeUInt16BE(1, 2); enc.writeInt32BE(0, 4); // raw only
  ws.send(enc);
  const fbur = (incremental: number): Buffer => { const r = Buffer.alloc(10); r[0] = 3; r[1] = incremental; r.writeUInt16BE(1280, 6); r.writeUInt16BE(800, 8); return r; };
  ws.send(fbur(0));
  (ws as unknown as { _socket: Socket })._socket.pause(); // the reader hangs from here on
  const timer = setInterval(() => { if (ws.readyState === WebSocket.OPEN) ws.send(fbur(1)); }, 20);
  const stop = (): void => clearInterval(timer);
  return {
    ws, stop,
    async resume() {
      stop();
      const before = total;
      (ws as unknown as { _socket: Socket })._socket.resume();
      const deadline = Date.now() + 10_000;
      while (!closed && !ended && Date.now() < deadline) await sleep(100);
      return { bytes: total - before, ended, closed };
    },
  };
}

/** Counters at the last update drawn (page time in ms): windows hold whole updates only. */
interface Stats { bytes: number; updates: number; at: number }

interface Figures { updatesPerSec: number; mbPerSec: number; drawn: number[]; firstByte: number[] }

export async function benchDisplay(): Promise<void> {
  const started = Date.now();
  const guest = await ensureTestGuest();
  const dir = mkdtempSync(join(tmpdir(), 'hbd-')); // short: QEMU's unix socket paths live here
  const h = new HangarHarness();
  const savedHome = process.env.HANGAR_HOME;
  process.env.HANGAR_HOME = h.home;
  const core = await startCoreHost(); // becomes the daemon: the CLI below talks to this process
  let browser: Browser | null = null;
  let direct: DirectQemu | null = null;
  let web: Awaited<ReturnType<typeof startWebServer>> | null = null;
  const closers: Array<() => unknown> = [];
  try {
    const page = join(dir, 'page');
    await build({
      entryPoints: [join(import.meta.dirname, 'display-page', 'main.ts')], bundle: true, format: 'esm',
      outdir: page, logLevel: 'warning', minify: true, target: 'chrome120',
    });
    writeFileSync(join(page, 'index.html'), readFileSync(join(import.meta.dirname, 'display-page', 'index.html')));
    web = await startWebServer({ staticDir: page, port: 0, endpoint: core.endpoint });
    const target = { origin: new URL(web.url).origin, token: web.token };
    const rpc = await wsCoreClient(target);
    closers.push(() => rpc.close());

    const { id } = await h.json<{ id: string }>(['create', '--name', 'bench', '--memory', '256', '--accel', 'tcg',
      '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE, '--video', 'vga']);
    const argv = await h.json<string[]>(['cmdline', 'bench']);
    const runDir = argv[argv.indexOf('-pidfile') + 1]!.replace(/\/qemu\.pid$/, '');
    let vncDisplay = 60;
    while (!(await canListen(5900 + vncDisplay))) vncDisplay++;
    const wsPort = await freePort();
    const dArgs = directArgv(argv, runDir, join(dir, 'd'), vncDisplay, wsPort);
    mkdirSync(join(dir, 'd'), { recursive: true, mode: 0o700 });

    // Both boot at once (TCG: the slow part of the run).
    await h.ok(['start', 'bench']);
    direct = await spawnDirect(argv[0]!, dArgs, join(dir, 'd'));
    const d = direct;
    await h.waitForSerial(id, READY_MARKER, 1, 180_000);
    await until(() => d.log().includes(READY_MARKER), 'the direct QEMU guest boot');
    const hangarCon = await WsConsole.open(target, 'bench', { replay: false });
    closers.push(() => hangarCon.ws.terminate());
    const shells: Record<Path, GuestShell> = { hangar: guestShell((t) => hangarCon.type(t), () => hangarCon.text), direct: d.shell };
    const dq = await d.qmp();
    closers.push(() => dq.close());
    const running: Record<Path, boolean> = { hangar: true, direct: true };
    const setRunning: Record<Path, (on: boolean) => Promise<unknown>> = {
      hangar: (on) => (on ? rpc.api.resume('bench') : rpc.api.pause('bench')),
      direct: (on) => (on ? dq.cont() : dq.stop()),
    };
    const run = async (p: Path, on: boolean): Promise<void> => {
      if (running[p] === on) return;
      await setRunning[p](on);
      running[p] = on;
    };
    /** Only `p` runs (the other VM is paused), and its viewer is on top. */
    const only = async (p: Path): Promise<void> => { await run(p, true); await run(p === 'hangar' ? 'direct' : 'hangar', false); };

    // The same setup in both guests: no cursor blink (an idle screen sends nothing), two random frames.
    const mode: Record<Path, string> = { hangar: '', direct: '' };
    for (const p of PATHS) {
      // A prompt that answers: the shell reads input (busybox's first prompt may eat early input).
      for (let i = 0; ; i++) {
        try { await shells[p].run('true', 5000); break; } catch (e) { if (i === 5) throw e; }
      }
      mode[p] = (await shells[p].run('echo 0 > /sys/class/graphics/fbcon/cursor_blink; echo M=$(cat /sys/class/graphics/fb0/virtual_size),$(cat /sys/class/graphics/fb0/bits_per_pixel)')).replace(/[\s\S]*M=/, '').trim();
    }
    const [w, hgt, bpp] = mode.hangar.split(',').map(Number);
    const frameBytes = w! * hgt! * (bpp! / 8);
    for (const p of PATHS) {
      await shells[p].run(`dd if=/dev/urandom of=/tmp/f1 bs=${frameBytes} count=1 2>/dev/null; dd if=/dev/urandom of=/tmp/f2 bs=${frameBytes} count=1 2>/dev/null`);
    }
    await h.waitForSerial(id, SCREEN_MARKER, 1, 10_000);
    if (!d.log().includes(SCREEN_MARKER)) throw new Error('the direct QEMU guest has no screen');

    browser = await launchChromium();
    // CSP off for this page only: its second viewer talks to QEMU's websocket, not to the page's origin.
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
    const tab = await ctx.newPage();
    await tab.goto(web.url.replace('/?', '/index.html?'));
    await tab.waitForFunction(() => 'bench' in window);
    const call = <T>(fn: string, ...args: unknown[]): Promise<T> => tab.evaluate(([f, a]) => {
      const b = (window as unknown as { bench: Record<string, (...x: unknown[]) => Promise<unknown>> }).bench;
      return b[f as string]!(...(a as unknown[]));
    }, [fn, args] as const) as Promise<T>;
    await call('viaHangar', 'hangar', 'bench');
    await call('direct', 'direct', `ws://127.0.0.1:${wsPort}`);

    const fig: Record<Path, Figures> = { hangar: { updatesPerSec: 0, mbPerSec: 0, drawn: [], firstByte: [] }, direct: { updatesPerSec: 0, mbPerSec: 0, drawn: [], firstByte: [] } };
    const order = (r: number): Path[] => (r % 2 ? ['direct', 'hangar'] : ['hangar', 'direct']);

    // Latency: guests idle at their tty1 prompt; 'a' then Backspace, each echo one update.
    let missed = 0;
    for (let r = 0; r < ROUNDS; r++) {
      for (const p of order(r)) {
        await only(p);
        await call('front', p);
        await sleep(300);
        for (let i = 0; i < Math.ceil(KEY_SAMPLES / ROUNDS); i++) {
          const k = await call<{ firstByte: number; drawn: number }>('keyLatency', p, i % 2 ? XK_BACKSPACE : XK_A, i % 2 ? 'Backspace' : 'KeyA');
          if (Number.isFinite(k.drawn)) { fig[p].drawn.push(k.drawn); fig[p].firstByte.push(k.firstByte); } else missed++;
        }
      }
    }

    // Throughput: both guests swap the two frames on /dev/fb0 forever; measured in alternating rounds.
    const drawLoop = '(while :; do cat /tmp/f1 > /dev/fb0; cat /tmp/f2 > /dev/fb0; done) & echo started';
    for (const p of PATHS) { await only(p); await shells[p].run(drawLoop); }
    const totals: Record<Path, { bytes: number; updates: number; secs: number }> = { hangar: { bytes: 0, updates: 0, secs: 0 }, direct: { bytes: 0, updates: 0, secs: 0 } };
    for (let r = 0; r < ROUNDS; r++) {
      for (const p of order(r)) {
        await only(p);
        await call('front', p);
        await sleep(1500); // the draw loop and the update stream get going again
        const a = await call<Stats>('stats', p);
        await sleep((DRAW_SECONDS / ROUNDS) * 1000);
        const b = await call<Stats>('stats', p);
        totals[p].secs += (b.at - a.at) / 1000;
        totals[p].bytes += b.bytes - a.bytes;
        totals[p].updates += b.updates - a.updates;
      }
    }
    for (const p of PATHS) {
      fig[p].updatesPerSec = totals[p].updates / totals[p].secs;
      fig[p].mbPerSec = totals[p].bytes / totals[p].secs / 1e6;
    }

    // The core's memory while a viewer stalls and the guest keeps drawing: the page's viewers leave,
    // so the stalled one is the core's only display traffic.
    await only('hangar');
    await call('disconnect', 'hangar');
    await call('disconnect', 'direct');
    const mem = (): { rss: number; buffers: number } => ({ rss: rssMiB(process.pid), buffers: process.memoryUsage().arrayBuffers / MiB });
    const base: Array<{ rss: number; buffers: number }> = [];
    for (let i = 0; i < 16; i++) { base.push(mem()); await sleep(250); }
    const stalled = await stalledViewer(web.url.replace(/^http/, 'ws').replace('/?', '/api/display?vm=bench&'));
    closers.push(() => { stalled.stop(); stalled.ws.terminate(); });
    const samples: Array<{ rss: number; buffers: number }> = [];
    const t0 = performance.now();
    while (performance.now() - t0 < STALL_SECONDS * 1000) { samples.push(mem()); await sleep(250); }
    const stallSecs = (performance.now() - t0) / 1000;
    const after = await stalled.resume();

    const ms = (x: number): string => x.toFixed(1);
    const row = (name: string, f: Figures): string => {
      const dr = [...f.drawn].sort((a, b) => a - b);
      const fb = [...f.firstByte].sort((a, b) => a - b);
      return `  ${name.padEnd(24)} ${f.updatesPerSec.toFixed(1).padStart(5)} updates/s ${f.mbPerSec.toFixed(1).padStart(5)} MB/s   key -> update drawn p50 ${ms(percentile(dr, 50))} ms, p99 ${ms(percentile(dr, 99))} ms (first byte p50 ${ms(percentile(fb, 50))}, p99 ${ms(percentile(fb, 99))})`;
    };
    const p99 = (p: Path): number => percentile([...fig[p].drawn].sort((a, b) => a - b), 99);
    const p50 = (p: Path): number => percentile([...fig[p].drawn].sort((a, b) => a - b), 50);
        console.log(`display: guest framebuffer ${w}x${hgt}x${bpp} (Hangar VM) / ${mode.direct.replace(/,/g, 'x')} (direct QEMU), TCG; two random full-screen frames swapped on /dev/fb0;`);
    console.log(`  ${ROUNDS} alternating rounds, the other VM paused; ${DRAW_SECONDS} s of drawing and ${fig.hangar.drawn.length}/${fig.direct.drawn.length} keys (idle tty1, cursor blink off) per path${missed ? `, ${missed} keys without an update in 3 s` : ''}`);
    console.log(row('Hangar display channel', fig.hangar));
    console.log(row('noVNC direct to QEMU ws', fig.direct));
    console.log(`  throughput Hangar / direct: bytes/s ${(fig.hangar.mbPerSec / fig.direct.mbPerSec).toFixed(2)}, updates/s ${(fig.hangar.updatesPerSec / fig.direct.updatesPerSec).toFixed(2)} (target >= 0.9)`);
    console.log(`  added latency: p99 ${ms(p99('hangar') - p99('direct'))} ms (target < 5 ms), p50 ${ms(p50('hangar') - p50('direct'))} ms`);
    const rss = samples.map((x) => x.rss);
    const baseRss = base.map((x) => x.rss);
    const ended = after.ended === 'too-slow' ? 'cut off as too-slow' : after.ended ? `ended (${after.ended})` : after.closed ? 'closed without an end reason' : 'NOT cut off';
    console.log(`  core RSS (this process) with a stalled viewer for ${stallSecs.toFixed(0)} s while the guest draws: start ${rss[0]!.toFixed(0)} MiB, peak ${Math.max(...rss).toFixed(0)} MiB, end ${rss.at(-1)!.toFixed(0)} MiB`
      + ` (before it, no viewer: ${Math.min(...baseRss).toFixed(0)}-${Math.max(...baseRss).toFixed(0)} MiB); ArrayBuffers peak ${Math.max(...samples.map((x) => x.buffers)).toFixed(1)} MiB (before ${Math.max(...base.map((x) => x.buffers)).toFixed(1)})`);
    console.log(`    target: flat, bounded by the ${DISPLAY_HIGH_WATER / MiB} MiB display window; the viewer was ${ended} (after ${CONSOLE_STALL_MS / 1000} s above the window) and ${(after.bytes / MiB).toFixed(1)} MiB were waiting for it when it read again`);
    console.log(`  (run took ${((Date.now() - started) / 1000).toFixed(0)} s)`);
  } finally {
    if (direct) { direct.serial.destroy(); direct.child.kill('SIGKILL'); }
    for (const c of closers) { try { c(); } catch { /* already gone */ } }
    if (browser) await Promise.race([browser.close().catch(() => {}), sleep(10_000)]);
    await h.run(['destroy', 'bench']).catch(() => {});
    await web?.close().catch(() => {});
    await core.stop().catch(() => {});
    await h.cleanup().catch(() => {});
    if (savedHome === undefined) delete process.env.HANGAR_HOME; else process.env.HANGAR_HOME = savedHome;
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchDisplay();
