// The byte path of a live migration between two Hangar cores, tunnelled through the cores as
// libvirt's tunnelled migration is: the source QEMU's `migrate` (and, with copy-storage, its NBD
// client) connect to a unix socket the source core serves in the VM's private runtime dir; each
// connection is relayed over a new channel to the destination core ({"channel":"migration"} on
// its socket, or the same through `ssh host hangar daemon stdio`), which pipes it into its own
// QEMU's incoming or NBD socket. Nothing listens on the network; the channel is authorized by
// the token prepareIncomingMigration handed out.
import { timingSafeEqual } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { HangarError, isHangarError } from '../../common/errors.ts';
import type { ErrorPayload } from '../../common/errors.ts';
import type { Hello } from '../rpc/framing.ts';
import { readFirstLine } from '../rpc/framing.ts';
import type { OpenCoreStream } from '../rpc/client.ts';

export type MigrationStreamKind = 'ram' | 'nbd';

/** Where a destination core sends a migration channel: its incoming QEMU's socket for the stream. */
export interface MigrationStreamTargets {
  /** The unix socket for the stream; throws HangarError when the VM, token or stream is not expected. */
  socketFor(vmId: string, token: string, stream: MigrationStreamKind): string;
}

export function tokensEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function payload(e: unknown): ErrorPayload {
  return isHangarError(e) ? e.toPayload() : { code: 'io-error', message: e instanceof Error ? e.message : String(e) };
}

/** Connects to a unix socket QEMU serves, retrying briefly (QEMU creates it a moment before it listens). */
export function connectUnix(path: string, timeoutMs = 10_000): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      const s = createConnection({ path });
      s.once('connect', () => { s.removeAllListeners('error'); resolve(s); });
      s.once('error', (e) => { if (Date.now() > deadline) reject(e); else setTimeout(attempt, 50); });
    };
    attempt();
  });
}

/**
 * Pipes two streams into each other, `from` being the side the migration data comes from (the
 * source QEMU at the source core, the source core's channel at the destination core). `from`
 * closing (done, or gone) ends `to` gracefully: what is still buffered is written first, as the
 * tail of a migration stream is the device state; `to` is destroyed only once it has flushed
 * and the far side has not closed it within a grace period. `to` closing (the destination gone)
 * destroys `from` at once: nothing more can arrive, and QEMU must see its migration fail.
 */
function splice(from: Duplex, to: Duplex, onBytes?: (n: number) => void): void {
  if (onBytes) from.on('data', (d: Buffer) => onBytes(d.length));
  from.pipe(to);
  to.pipe(from);
  from.on('error', () => {});
  to.on('error', () => {});
  to.once('close', () => from.destroy());
  from.once('close', () => {
    if (to.destroyed) return;
    if (!to.writableEnded) to.end();
    const grace = (): void => { setTimeout(() => to.destroy(), 10_000).unref(); };
    if (to.writableFinished) grace(); else to.once('finish', grace);
  });
}

/** Destination core: serves one {"channel":"migration"} connection (a reply line, then raw bytes both ways). */
export async function serveMigrationStream(targets: MigrationStreamTargets, sock: Socket, hello: Extract<Hello, { channel: 'migration' }>, rest: Buffer): Promise<void> {
  let qemu: Socket;
  try {
    const path = targets.socketFor(hello.vm, hello.token, hello.stream);
    qemu = await connectUnix(path);
  } catch (e) {
    if (!sock.destroyed) sock.end(JSON.stringify({ error: payload(e) }) + '\n');
    return;
  }
  sock.write(JSON.stringify({ ok: true }) + '\n');
  if (rest.length) qemu.write(rest);
  splice(sock, qemu);
  sock.resume();
}

/**
 * Source core: a unix socket the source QEMU connects to; each connection becomes one channel to
 * the destination core. The first relay failure is kept (and named in the migration's error).
 */
export class TunnelListener {
  private server: Server | null = null;
  private readonly sockets = new Set<Duplex>();
  /** Why a relay could not be set up or broke, in words. */
  failure: string | undefined;
  bytes = 0;

  constructor(
    readonly path: string,
    private readonly open: OpenCoreStream,
    private readonly hello: { vm: string; token: string; stream: MigrationStreamKind },
  ) {}

  async listen(): Promise<void> {
    await unlink(this.path).catch(() => {});
    const server = createServer((qemuSock) => { void this.relay(qemuSock); });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => { server.off('error', reject); resolve(); });
    });
  }

  private async relay(qemuSock: Socket): Promise<void> {
    qemuSock.pause();
    qemuSock.on('error', () => {});
    this.sockets.add(qemuSock);
    qemuSock.once('close', () => this.sockets.delete(qemuSock));
    let remote: Duplex;
    try {
      remote = await this.open();
      this.sockets.add(remote);
      remote.once('close', () => this.sockets.delete(remote));
      remote.on('error', () => {});
      remote.write(JSON.stringify({ channel: 'migration', ...this.hello }) + '\n');
      const { line, rest } = await readFirstLine(remote, 15_000);
      const reply = JSON.parse(line) as { ok?: boolean; error?: ErrorPayload };
      if (reply.error) throw HangarError.fromPayload(reply.error);
      if (rest.length) qemuSock.write(rest);
    } catch (e) {
      this.failure ??= `the destination core refused the ${this.hello.stream === 'ram' ? 'memory' : 'disk'} stream: ${e instanceof Error ? e.message : String(e)}`;
      qemuSock.destroy();
      return;
    }
    remote.once('close', () => { if (!qemuSock.destroyed && !this.closed) this.failure ??= 'the channel to the destination core closed'; });
    splice(qemuSock, remote, (n) => { this.bytes += n; });
    qemuSock.resume();
    remote.resume();
  }

  private closed = false;

  close(): void {
    this.closed = true;
    this.server?.close();
    this.server = null;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    void unlink(this.path).catch(() => {});
  }
}
