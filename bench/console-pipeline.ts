// Console pipeline: a synthetic serial source (a unix socket standing in for QEMU's chardev,
// as fast as its reader takes bytes) -> the core's SerialConsole (ring, log, viewers) -> the
// console channel with flow control -> WebSocket -> the renderer's xterm.js in Debian Chromium.
// Prints sustained bytes/s to a painted terminal, memory on both sides, and keystroke-to-echo
// latency through core + WebSocket (the source echoes at once, so this is Hangar's overhead).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { SerialConsole } from '../core/node/console/serial-console.ts';
import { serveConsoleOn } from '../core/node/rpc/endpoint.ts';
import { startWebServer } from '../core/node/web/web-server.ts';
import { launchChromium } from '../tests/e2e/browser.ts';

const FLOOD_BYTES = 48 * 1024 * 1024;
const ECHO_SAMPLES = 300;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Printable lines, like a busy guest's log output. */
function floodChunk(): Buffer {
  let s = '';
  for (let i = 0; s.length < 64 * 1024; i++) s += `[${String(i).padStart(6, '0')}] console benchmark line: the quick brown fox jumps over the lazy dog 0123456789\r\n`;
  return Buffer.from(s);
}

async function writeAll(sock: Socket, total: number): Promise<void> {
  const chunk = floodChunk();
  let sent = 0;
  while (sent < total) {
    const part = chunk.subarray(0, Math.min(chunk.length, total - sent));
    sent += part.length;
    if (!sock.write(part)) await new Promise((r) => sock.once('drain', r));
  }
  sock.write(`\r\nFLOOD-END-${total}\r\n`);
}

/** The stand-in for QEMU: F<n>\r floods n bytes; any other byte is echoed at once. */
function startSource(path: string): Promise<void> {
  const server = createServer((sock) => {
    let line = '';
    let inCommand = false;
    sock.on('data', (d: Buffer) => {
      for (const ch of d.toString('latin1')) {
        if (ch === 'F' && !inCommand) { inCommand = true; line = ''; continue; }
        if (inCommand) {
          if (ch === '\r') { inCommand = false; void writeAll(sock, Number(line)); } else line += ch;
          continue;
        }
        sock.write(ch);
      }
    });
    sock.on('error', () => {});
  });
  return new Promise((r) => server.listen(path, () => { server.unref(); r(); }));
}

export async function benchConsolePipeline(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-bench-console-'));
  try {
    const page = join(dir, 'page');
    await build({
      entryPoints: [join(import.meta.dirname, 'console-page', 'main.ts')], bundle: true, format: 'esm',
      outdir: page, logLevel: 'warning', minify: true, target: 'chrome120',
    });
    writeFileSync(join(page, 'index.html'), (await import('node:fs')).readFileSync(join(import.meta.dirname, 'console-page', 'index.html')));
    const sockPath = join(dir, 'serial.sock');
    await startSource(sockPath);
    const con = new SerialConsole({ socketPath: sockPath, vmDir: join(dir, 'vm') });
    await con.attach();
    const web = await startWebServer({
      staticDir: page, port: 0,
      endpoint: { serveRpc: (l) => l.close(), serveConsole: (link, _vm, opts) => serveConsoleOn(link, con, 'bench', opts), serveDisplay: (l) => l.close() },
    });
    const browser = await launchChromium();
    try {
      const tab = await browser.newPage();
      await tab.goto(web.url.replace('/?', '/index.html?'));
      await tab.waitForFunction(() => (window as unknown as { bench?: { ready(): boolean } }).bench?.ready());
      const call = <T>(fn: string, arg: unknown): Promise<T> =>
        tab.evaluate(([f, a]) => (window as unknown as { bench: Record<string, (x: unknown) => Promise<unknown>> }).bench[f as string]!(a), [fn, arg] as const) as Promise<T>;

      await call<number>('flood', 1024 * 1024); // warm-up (JIT, fonts, first paint)
      const baseRss = process.memoryUsage().rss;
      let peakRss = 0;
      const rssTimer = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage().rss); }, 50);
      const ms = await call<number>('flood', FLOOD_BYTES);
      clearInterval(rssTimer);
      const heap = await call<number>('heapBytes', null);
      const mbps = FLOOD_BYTES / 1e6 / (ms / 1000);

      const echo: number[] = [];
      for (let i = 0; i < ECHO_SAMPLES; i++) {
        echo.push(await call<number>('echo', String.fromCharCode(97 + (i % 26))));
        if (i % 60 === 59) await call<number>('echo', '\r');
      }
      echo.sort((a, b) => a - b);
      console.log('console pipeline (synthetic source -> core -> WebSocket -> xterm.js in Chromium):');
      console.log(`  throughput: ${(FLOOD_BYTES / 1048576).toFixed(0)} MiB in ${(ms / 1000).toFixed(2)} s = ${mbps.toFixed(1)} MB/s (target >= 5 MB/s)`);
      console.log(`  memory: core-side process RSS ${(baseRss / 1048576).toFixed(0)} MiB before, peak ${(peakRss / 1048576).toFixed(0)} MiB during; page JS heap after ${(heap / 1048576).toFixed(0)} MiB (bounded by the ${512} KiB unacked window + xterm scrollback)`);
      console.log(`  keystroke-to-echo: p50 ${percentile(echo, 50).toFixed(2)} ms, p99 ${percentile(echo, 99).toFixed(2)} ms, max ${echo.at(-1)!.toFixed(2)} ms over ${ECHO_SAMPLES} keys (target p99 < 10 ms)`);
    } finally {
      await browser.close();
      await web.close();
      await con.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchConsolePipeline();
