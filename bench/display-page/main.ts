// noVNC on a bare page, fed either by Hangar's display channel (the renderer's own WebSocket
// transport and ChannelSocket adapter, as the Display tab runs it) or directly by QEMU's VNC
// websocket. Both are instrumented the same way: bytes received, framebuffer update requests
// sent (noVNC asks for the next update after each one it has drawn), and the time from a key
// sent to the next bytes that arrive (the guest's echo drawn by QEMU).
import RFB from '@novnc/novnc';
import { ChannelSocket } from '../../renderer/src/display/channel-socket.ts';
import { WebSocketTransport } from '../../renderer/src/transport/websocket-transport.ts';
import type { ConsoleLink } from '../../core/common/transport.ts';

const stats = { bytes: 0, updates: 0, lastRx: 0 };
let rfb: RFB | null = null;
let rxWaiter: ((t: number) => void) | null = null;

function onRx(n: number): void {
  stats.bytes += n;
  stats.lastRx = performance.now();
  if (rxWaiter) { const w = rxWaiter; rxWaiter = null; w(stats.lastRx); }
}

function onTx(data: ArrayBuffer | Uint8Array): void {
  const b = data instanceof Uint8Array ? data : new Uint8Array(data);
  // FramebufferUpdateRequest (type 3, 10 bytes): noVNC asks for the next update after drawing one.
  if (b[0] === 3 && b.length >= 10) stats.updates++;
}

/** A real WebSocket with the fields noVNC looks for, counting both directions. */
class CountingSocket {
  binaryType = 'arraybuffer';
  protocol = '';
  onopen: ((e: unknown) => void) | null = null;
  onclose: ((e: unknown) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  onmessage: ((e: { data: ArrayBuffer }) => void) | null = null;
  private readonly ws: WebSocket;
  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.binaryType = 'arraybuffer';
    this.ws.onopen = (e) => { this.protocol = this.ws.protocol; this.onopen?.(e); };
    this.ws.onclose = (e) => this.onclose?.(e);
    this.ws.onerror = (e) => this.onerror?.(e);
    this.ws.onmessage = (e: MessageEvent<ArrayBuffer>) => { onRx(e.data.byteLength); this.onmessage?.({ data: e.data }); };
  }
  get readyState(): number { return this.ws.readyState; }
  send(d: ArrayBuffer | Uint8Array): void { onTx(d); this.ws.send(d as ArrayBuffer); }
  close(): void { this.ws.close(); }
}

function countingLink(link: ConsoleLink): ConsoleLink {
  return {
    send: (m) => { if (typeof m !== 'string') onTx(m); link.send(m); },
    onMessage: (cb) => link.onMessage((m) => { if (typeof m !== 'string') onRx(m.byteLength); cb(m); }),
    onClose: (cb) => link.onClose(cb),
    close: () => link.close(),
  };
}

function connected(r: RFB): Promise<void> {
  return new Promise((resolve, reject) => {
    r.addEventListener('connect', () => resolve());
    r.addEventListener('disconnect', () => reject(new Error('disconnected')));
  });
}

Object.assign(window, {
  bench: {
    /** Through Hangar: the renderer's transport and adapter. */
    async viaHangar(vm: string): Promise<void> {
      const link = countingLink(await new WebSocketTransport().openDisplay(vm));
      rfb = new RFB(document.getElementById('screen')!, new ChannelSocket(link) as never, { shared: true });
      await connected(rfb);
    },
    /** Straight to QEMU's own VNC websocket. */
    async direct(url: string): Promise<void> {
      rfb = new RFB(document.getElementById('screen')!, new CountingSocket(url) as never, { shared: true });
      await connected(rfb);
    },
    stats: () => ({ ...stats }),
    /** A key (down+up) and the ms until the next bytes arrive from the server. */
    async keyLatency(keysym: number, code: string): Promise<number> {
      await new Promise((r) => setTimeout(r, 60));
      const t0 = performance.now();
      const got = new Promise<number>((r) => { rxWaiter = r; });
      rfb!.sendKey(keysym, code);
      const t1 = await Promise.race([got, new Promise<number>((r) => setTimeout(() => r(NaN), 3000))]);
      rxWaiter = null;
      return t1 - t0;
    },
    disconnect(): void { rfb?.disconnect(); rfb = null; },
  },
});
