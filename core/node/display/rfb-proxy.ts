// `hangar display --listen`: external VNC viewers (remote-viewer, vncviewer) reach a VM's screen
// on a TCP port. The proxy speaks RFB's security handshake itself on both sides: to the viewer
// as a server asking for VNC authentication with a one-time password, to QEMU (through the
// core's display stream, never a TCP port of QEMU's) as a client choosing "None". After both
// handshakes it only copies bytes (ClientInit, ServerInit and everything after), with pipe()'s
// backpressure both ways.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { checkVncAuthResponse } from './vnc-auth.ts';

const RFB_38 = Buffer.from('RFB 003.008\n', 'latin1');
const SEC_NONE = 1;
const SEC_VNC_AUTH = 2;
const HANDSHAKE_TIMEOUT_MS = 30_000;

/** Reads exact byte counts from a socket during a handshake; hands back what is left after it. */
export class HandshakeReader {
  private buf = Buffer.alloc(0);
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;
  private readonly onData = (d: Buffer): void => {
    this.buf = Buffer.concat([this.buf, d]);
    if (this.buf.length > 64 * 1024) this.fail(new Error('too much data during the RFB handshake'));
    this.settle();
  };
  private readonly onEnd = (): void => this.fail(new Error('the connection closed during the RFB handshake'));

  constructor(private readonly sock: Duplex) {
    sock.on('data', this.onData);
    sock.on('close', this.onEnd);
    sock.on('error', this.onEnd);
  }

  read(n: number): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.settle();
    });
  }

  private settle(): void {
    const w = this.waiter;
    if (!w || this.buf.length < w.n) return;
    this.waiter = null;
    const out = this.buf.subarray(0, w.n);
    this.buf = this.buf.subarray(w.n);
    w.resolve(out);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(this.failure);
  }

  /** Stops reading; returns bytes that arrived past the handshake (they belong to the stream). */
  release(): Buffer {
    this.sock.off('data', this.onData);
    this.sock.off('close', this.onEnd);
    this.sock.off('error', this.onEnd);
    this.sock.pause();
    return this.buf;
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function failure(reason: string, minor: number): Buffer {
  // RFB 3.8 explains a failed SecurityResult; 3.3 and 3.7 only say "failed".
  return minor >= 8 ? Buffer.concat([u32(1), u32(Buffer.byteLength(reason)), Buffer.from(reason)]) : u32(1);
}

/**
 * The server half towards an external viewer: version, VNC authentication with the password.
 * Resolves true when the viewer authenticated (the ClientInit is next); false after a refusal.
 */
export async function authenticateViewer(sock: Socket, reader: HandshakeReader, password: string): Promise<boolean> {
  sock.write(RFB_38);
  const version = (await reader.read(12)).toString('latin1');
  const m = /^RFB 003\.(\d{3})\n$/.exec(version);
  if (!m) throw new Error(`not an RFB viewer (it sent ${JSON.stringify(version)})`);
  const minor = Math.min(Number(m[1]), 8) >= 7 ? Math.min(Number(m[1]), 8) : 3;
  if (minor >= 7) {
    sock.write(Buffer.from([1, SEC_VNC_AUTH]));
    const [choice] = await reader.read(1);
    if (choice !== SEC_VNC_AUTH) {
      sock.end(failure('this server only offers VNC authentication', minor));
      return false;
    }
  } else {
    sock.write(u32(SEC_VNC_AUTH));
  }
  const challenge = randomBytes(16);
  sock.write(challenge);
  const response = await reader.read(16);
  if (!checkVncAuthResponse(password, challenge, response)) {
    // Slow down guessing: a wrong password costs the viewer a second.
    await new Promise((r) => setTimeout(r, 1000));
    sock.end(failure('wrong password', minor));
    return false;
  }
  sock.write(u32(0));
  return true;
}

/** The client half towards QEMU's VNC server (no authentication on the private socket). */
export async function handshakeWithServer(sock: Duplex, reader: HandshakeReader): Promise<void> {
  const version = (await reader.read(12)).toString('latin1');
  if (!/^RFB 003\.00[78]\n$/.test(version)) throw new Error(`the VM's VNC server answered ${JSON.stringify(version)}`);
  sock.write(RFB_38);
  const [count] = await reader.read(1);
  if (!count) {
    const len = (await reader.read(4)).readUInt32BE();
    throw new Error(`the VM's VNC server refused: ${(await reader.read(Math.min(len, 4096))).toString()}`);
  }
  const types = [...(await reader.read(count!))];
  if (!types.includes(SEC_NONE)) throw new Error(`the VM's VNC server wants authentication (types ${types.join(', ')})`);
  sock.write(Buffer.from([SEC_NONE]));
  const result = (await reader.read(4)).readUInt32BE();
  if (result !== 0) throw new Error('the VM\'s VNC server refused the connection');
}

export interface ProxyEvents {
  /** A viewer connected and authenticated. */
  onViewer?(remote: string): void;
  /** A viewer was refused or a connection failed, in words. */
  onRefused?(remote: string, why: string): void;
}

/**
 * Serves one external viewer: authenticates it, opens a display stream for it (openServer), does
 * the handshake with QEMU, then copies bytes both ways until either side closes.
 */
export async function proxyViewer(viewer: Socket, password: string, openServer: () => Promise<{ socket: Duplex; rest: Buffer }>, events: ProxyEvents = {}): Promise<void> {
  const remote = `${viewer.remoteAddress}:${viewer.remotePort}`;
  viewer.setNoDelay(true);
  const timer = setTimeout(() => viewer.destroy(), HANDSHAKE_TIMEOUT_MS);
  const vr = new HandshakeReader(viewer);
  let server: Duplex | undefined;
  try {
    if (!(await authenticateViewer(viewer, vr, password))) {
      events.onRefused?.(remote, 'wrong password');
      return;
    }
    const opened = await openServer();
    server = opened.socket;
    (server as Partial<Socket>).setNoDelay?.(true); // a local socket; an ssh channel has no such knob
    if (opened.rest.length) server.unshift(opened.rest);
    const sr = new HandshakeReader(server);
    server.resume();
    await handshakeWithServer(server, sr);
    const fromServer = sr.release();
    const fromViewer = vr.release();
    clearTimeout(timer);
    if (fromServer.length) viewer.write(fromServer);
    if (fromViewer.length) server.write(fromViewer);
    server.pipe(viewer);
    viewer.pipe(server);
    const s = server;
    s.on('error', () => viewer.destroy());
    viewer.on('error', () => s.destroy());
    s.on('close', () => viewer.end());
    viewer.on('close', () => s.destroy());
    viewer.resume();
    s.resume();
    events.onViewer?.(remote);
  } catch (e) {
    events.onRefused?.(remote, (e as Error).message);
    server?.destroy();
    viewer.destroy();
  } finally {
    clearTimeout(timer);
  }
}
