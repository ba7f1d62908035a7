// noVNC on a bare page, two viewers side by side (stacked: the one being measured on top), one
// fed by Hangar's display channel (the renderer's own WebSocket transport and ChannelSocket
// adapter, as the Display tab runs it), the other directly by QEMU's own VNC websocket. Both are
// instrumented the same way, at the WebSocket-like object noVNC reads and writes:
// - bytes received;
// - updates: FramebufferUpdateRequests sent. noVNC sends the next one right after it has decoded
//   a whole FramebufferUpdate and flipped it onto its canvas, so each request is one update drawn;
// - key latency: from sendKey to the first bytes back, and to the next update drawn (the guest's
//   echo on tty1, drawn by QEMU, decoded by noVNC). The guest is idle (no cursor blink), so the
//   next update after a key is the key's own.
import RFB from '@novnc/novnc';
import { ChannelSocket } from '../../renderer/src/display/channel-socket.ts';
import { WebSocketTransport } from '../../renderer/src/transport/websocket-transport.ts';
import type { ConsoleLink } from '../../core/common/transport.ts';

interface Viewer {
  id: string;
  rfb: RFB | null;
  box: HTMLElement;
  bytes: number;
  updates: number;
  /** bytes and time when the last update was drawn (measuring between updates: no partial ones). */
  bytesAtUpdate: number;
  timeAtUpdate: number;
  /** Set while a key waits for its echo. */
  keyAt: number;
  firstByteAt: number;
  drawn: ((t: number) => void) | null;
}

const viewers = new Map<string, Viewer>();

function viewer(id: string): Viewer {
  const v = viewers.get(id);
  if (!v) throw new Error(`no viewer ${id}`);
  return v;
}

function onRx(v: Viewer, n: number): void {
  v.bytes += n;
  if (v.keyAt && !v.firstByteAt) v.firstByteAt = performance.now();
}

function onTx(v: Viewer, data: ArrayBuffer | ArrayBufferView): void {
  const b = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  // FramebufferUpdateRequest (type 3, 10 bytes): an update was drawn (or the first request).
  if (b[0] !== 3 || b.byteLength !== 10) return;
  v.updates++;
  v.bytesAtUpdate = v.bytes;
  v.timeAtUpdate = performance.now();
  if (v.drawn && v.firstByteAt) { const d = v.drawn; v.drawn = null; d(performance.now()); }
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
  constructor(url: string, private readonly v: Viewer) {
    this.ws = new WebSocket(url, ['binary']);
    this.ws.binaryType = 'arraybuffer';
    this.ws.onopen = (e) => { this.protocol = this.ws.protocol; this.onopen?.(e); };
    this.ws.onclose = (e) => this.onclose?.(e);
    this.ws.onerror = (e) => this.onerror?.(e);
    this.ws.onmessage = (e: MessageEvent<ArrayBuffer>) => { onRx(this.v, e.data.byteLength); this.onmessage?.({ data: e.data }); };
  }
  get readyState(): number { return this.ws.readyState; }
  send(d: ArrayBuffer | ArrayBufferView): void { onTx(this.v, d); this.ws.send(d as ArrayBuffer); }
  close(): void { this.ws.close(); }
}

function countingLink(link: ConsoleLink, v: Viewer): ConsoleLink {
  return {
    send: (m) => { if (typeof m !== 'string') onTx(v, m); link.send(m); },
    onMessage: (cb) => link.onMessage((m) => { if (typeof m !== 'string') onRx(v, m.byteLength); cb(m); }),
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

function newViewer(id: string): Viewer {
  const box = document.createElement('div');
  box.style.cssText = 'position:absolute;left:0;top:0;width:1280px;height:800px;background:#000';
  document.body.append(box);
  const v: Viewer = { id, rfb: null, box, bytes: 0, updates: 0, bytesAtUpdate: 0, timeAtUpdate: 0, keyAt: 0, firstByteAt: 0, drawn: null };
  viewers.set(id, v);
  return v;
}

Object.assign(window, {
  bench: {
    /** Through Hangar: the renderer's transport and adapter. */
    async viaHangar(id: string, vm: string): Promise<void> {
      const v = newViewer(id);
      const link = countingLink(await new WebSocketTransport().openDisplay(vm), v);
      v.rfb = new RFB(v.box, new ChannelSocket(link) as never, { shared: true });
      await connected(v.rfb);
    },
    /** Straight to QEMU's own VNC websocket. */
    async direct(id: string, url: string): Promise<void> {
      const v = newViewer(id);
      v.rfb = new RFB(v.box, new CountingSocket(url, v) as never, { shared: true });
      await connected(v.rfb);
    },
    /** Puts one viewer on top (the one being measured is the one on screen). */
    front(id: string): void {
      for (const v of viewers.values()) v.box.style.zIndex = v.id === id ? '1' : '0';
    },
    stats: (id: string) => {
      const v = viewer(id);
      return { bytes: v.bytesAtUpdate, updates: v.updates, at: v.timeAtUpdate };
    },
    /** A key (down+up); ms to the first bytes back and to the next update drawn (NaN: none in 3 s). */
    async keyLatency(id: string, keysym: number, code: string): Promise<{ firstByte: number; drawn: number }> {
      const v = viewer(id);
      await new Promise((r) => setTimeout(r, 50));
      v.firstByteAt = 0;
      const got = new Promise<number>((r) => { v.drawn = r; });
      v.keyAt = performance.now();
      v.rfb!.sendKey(keysym, code);
      const t = await Promise.race([got, new Promise<number>((r) => setTimeout(() => r(NaN), 3000))]);
      const out = { firstByte: v.firstByteAt ? v.firstByteAt - v.keyAt : NaN, drawn: t - v.keyAt };
      v.drawn = null;
      v.keyAt = 0;
      return out;
    },
    disconnect(id: string): void { viewer(id).rfb?.disconnect(); viewers.get(id)!.rfb = null; },
  },
});
