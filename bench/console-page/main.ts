// The renderer's own console (ConsoleSession: xterm.js + the WebSocket transport + acks) on a
// bare page, so the benchmark measures exactly what the app runs.
import '@xterm/xterm/css/xterm.css';
import { ConsoleSession } from '../../renderer/src/console/console-session.ts';
import { WebSocketTransport } from '../../renderer/src/transport/websocket-transport.ts';

const session = new ConsoleSession({ vm: 'bench', transport: new WebSocketTransport(), openLink: () => {} });
session.mount(document.getElementById('term')!);
session.setVmLive(true);
const term = session.terminal;
let parsedListeners: Array<() => void> = [];
term.onWriteParsed(() => { for (const l of parsedListeners.slice()) l(); });

function lastLines(n: number): string {
  const b = term.buffer.active;
  let s = '';
  for (let y = Math.max(0, b.length - n); y < b.length; y++) s += (b.getLine(y)?.translateToString(true) ?? '') + '\n';
  return s;
}

function waitFor(pred: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (!pred()) return;
      parsedListeners = parsedListeners.filter((l) => l !== check);
      resolve();
    };
    parsedListeners.push(check);
    check();
  });
}

const nextFrame = (): Promise<void> => new Promise((r) => requestAnimationFrame(() => r()));

Object.assign(window, {
  bench: {
    ready: () => session.status === 'live',
    /** Asks the source for `bytes` of output; resolves with ms until the end marker was parsed and painted. */
    async flood(bytes: number): Promise<number> {
      const t0 = performance.now();
      term.input(`F${bytes}\r`);
      await waitFor(() => lastLines(3).includes(`FLOOD-END-${bytes}`));
      await nextFrame();
      return performance.now() - t0;
    },
    /** One keystroke through xterm -> WebSocket -> core -> source echo -> core -> WebSocket -> xterm. */
    async echo(ch: string): Promise<number> {
      const b = term.buffer.active;
      const before = b.cursorX + b.cursorY * 1000 + b.baseY * 1000;
      const t0 = performance.now();
      term.input(ch);
      await waitFor(() => b.cursorX + b.cursorY * 1000 + b.baseY * 1000 !== before);
      return performance.now() - t0;
    },
    heapBytes: () => (performance as unknown as { memory?: { usedJSHeapSize: number } }).memory?.usedJSHeapSize ?? 0,
  },
});
