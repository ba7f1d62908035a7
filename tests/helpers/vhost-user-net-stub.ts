// The smallest vhost-user-net back end QEMU will start with: it answers the control-plane
// messages QEMU sends while it sets a vhost-user netdev up (features, owner, vring call fds) and
// nothing else. No data path: it exists so a test can prove QEMU accepts a vhost-user NIC argv.
// Node drops the file descriptors QEMU passes (SCM_RIGHTS); the stub never needs them.
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';

const HEADER = 12;
const VERSION = 0x1;
const REPLY = 0x4;
const NEED_REPLY = 0x8;

const GET_FEATURES = 1;
const GET_VRING_BASE = 11;
const GET_PROTOCOL_FEATURES = 15;
const GET_QUEUE_NUM = 17;

/** VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC | VIRTIO_NET_F_MRG_RXBUF; no protocol features. */
const FEATURES = (1n << 32n) | (1n << 29n) | (1n << 28n) | (1n << 15n);

export interface VhostUserStub {
  /** Every request number QEMU sent, in order. */
  requests: number[];
  close(): Promise<void>;
}

function reply(sock: Socket, request: number, payload: Buffer): void {
  const h = Buffer.alloc(HEADER);
  h.writeUInt32LE(request, 0);
  h.writeUInt32LE(VERSION | REPLY, 4);
  h.writeUInt32LE(payload.length, 8);
  sock.write(Buffer.concat([h, payload]));
}

function u64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
}

function serve(sock: Socket, requests: number[]): void {
  let buf = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= HEADER) {
      const size = buf.readUInt32LE(8);
      if (buf.length < HEADER + size) break;
      const request = buf.readUInt32LE(0);
      const flags = buf.readUInt32LE(4);
      const payload = buf.subarray(HEADER, HEADER + size);
      buf = buf.subarray(HEADER + size);
      requests.push(request);
      if (request === GET_FEATURES) reply(sock, request, u64(FEATURES));
      else if (request === GET_PROTOCOL_FEATURES) reply(sock, request, u64(0n));
      else if (request === GET_QUEUE_NUM) reply(sock, request, u64(1n));
      else if (request === GET_VRING_BASE) reply(sock, request, Buffer.concat([payload.subarray(0, 4), Buffer.alloc(4)]));
      else if (flags & NEED_REPLY) reply(sock, request, u64(0n));
    }
  });
  sock.on('error', () => {});
}

/** Listens on `path` (for a NIC with server: false: QEMU connects). */
export function listenVhostUserStub(path: string): Promise<VhostUserStub> {
  const requests: number[] = [];
  const sockets: Socket[] = [];
  const server: Server = createServer((s) => { sockets.push(s); serve(s, requests); });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve({
      requests,
      close: () => new Promise((done) => { for (const s of sockets) s.destroy(); server.close(() => done()); }),
    }));
  });
}

/** Connects to QEMU's socket at `path` once it exists (for a NIC with server: true), retrying for timeoutMs. */
export async function connectVhostUserStub(path: string, timeoutMs = 20_000): Promise<VhostUserStub> {
  const requests: number[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const sock = await new Promise<Socket>((resolve, reject) => {
        const s = createConnection(path, () => resolve(s));
        s.once('error', reject);
      });
      serve(sock, requests);
      return { requests, close: async () => { sock.destroy(); } };
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`no vhost-user server at ${path} within ${timeoutMs / 1000} s: ${String(e)}`, { cause: e });
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
