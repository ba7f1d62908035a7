// A minimal RFB (VNC) client for tests: version, security (None or VNC authentication with a
// password), ClientInit, ServerInit, and one framebuffer update request. Enough to prove a
// server (QEMU's, or hangar display --listen's proxy) really speaks RFB to a viewer.
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { HandshakeReader } from '../../core/node/display/rfb-proxy.ts';
import { vncAuthResponse } from '../../core/node/display/vnc-auth.ts';

export interface RfbSession {
  socket: Socket;
  width: number;
  height: number;
  name: string;
  /** Asks for a full update and resolves with the bytes of the first FramebufferUpdate's header. */
  requestUpdate(): Promise<{ rects: number }>;
  close(): void;
}

export type RfbResult = { ok: true; session: RfbSession } | { ok: false; reason: string };

export async function rfbConnect(target: { host: string; port: number } | { path: string }, password?: string): Promise<RfbResult> {
  const socket = 'path' in target ? connect(target.path) : connect(target.port, target.host);
  await new Promise<void>((res, rej) => { socket.once('connect', () => res()); socket.once('error', rej); });
  return rfbHandshake(socket, password);
}

export async function rfbHandshake(socket: Socket, password?: string): Promise<RfbResult> {
  const r = new HandshakeReader(socket);
  const version = (await r.read(12)).toString('latin1');
  if (!version.startsWith('RFB 003.')) return { ok: false, reason: `not RFB: ${JSON.stringify(version)}` };
  socket.write('RFB 003.008\n');
  const [count] = await r.read(1);
  if (!count) return { ok: false, reason: 'server refused at once' };
  const types = [...(await r.read(count!))];
  if (types.includes(1) && password === undefined) {
    socket.write(Buffer.from([1]));
  } else if (types.includes(2) && password !== undefined) {
    socket.write(Buffer.from([2]));
    const challenge = await r.read(16);
    socket.write(vncAuthResponse(password, challenge));
  } else {
    socket.destroy();
    return { ok: false, reason: `security types offered: ${types.join(',')}` };
  }
  let result: number;
  try {
    result = (await r.read(4)).readUInt32BE();
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  if (result !== 0) {
    const len = (await r.read(4).catch(() => Buffer.alloc(4))).readUInt32BE();
    const reason = len ? (await r.read(len).catch(() => Buffer.from('?'))).toString() : 'failed';
    socket.destroy();
    return { ok: false, reason };
  }
  socket.write(Buffer.from([1])); // ClientInit: shared
  const init = await r.read(24);
  const width = init.readUInt16BE(0);
  const height = init.readUInt16BE(2);
  const nameLen = init.readUInt32BE(20);
  const name = (await r.read(nameLen)).toString();
  const session: RfbSession = {
    socket, width, height, name,
    async requestUpdate() {
      const req = Buffer.alloc(10);
      req.writeUInt8(3, 0); // FramebufferUpdateRequest
      req.writeUInt8(0, 1); // not incremental
      req.writeUInt16BE(width, 6);
      req.writeUInt16BE(height, 8);
      socket.write(req);
      const head = await r.read(4);
      if (head[0] !== 0) throw new Error(`expected a FramebufferUpdate, got message type ${head[0]}`);
      return { rects: head.readUInt16BE(2) };
    },
    close() { socket.destroy(); },
  };
  return { ok: true, session };
}
