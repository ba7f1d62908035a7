// Live migration's parts that need no QEMU: the devices that refuse a migration (named, with the
// fix), the files the destination must have, the migration channel's hello, and the tunnel
// itself (source listener -> destination core channel -> the incoming socket), which must carry
// every byte of a stream's tail before it closes, and end the source's stream when the
// destination's side goes away.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDefinition } from '../../core/common/definition.ts';
import { HangarError } from '../../core/common/errors.ts';
import { parseHello } from '../../core/node/rpc/wire-guard.ts';
import { readFirstLine } from '../../core/node/rpc/framing.ts';
import { checkMigratableDevices, filesTheDestinationNeeds } from '../../core/node/service/migration-blockers.ts';
import { serveMigrationStream, TunnelListener } from '../../core/node/service/migration-tunnel.ts';

const ID = '11111111-2222-4333-8444-555555555555';
const TOKEN = 'ab'.repeat(32);

function def(extra: Record<string, unknown> = {}): ReturnType<typeof parseDefinition> {
  return parseDefinition({ version: 1, id: ID, name: 'mv', ...extra });
}

function refused(fn: () => void, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof HangarError && e.code === 'unsupported' && re.test(e.message) && !!e.hint);
}

test('devices that cannot move are refused with the device named and a fix', () => {
  checkMigratableDevices(def());
  refused(() => checkMigratableDevices(def({ hostPci: [{ id: 'gpu0', address: '0000:03:00.0' }] })), /VFIO.*gpu0 \(0000:03:00\.0\)/);
  refused(() => checkMigratableDevices(def({ disks: [{ id: 'disk0', file: '/x.qcow2', format: 'qcow2', bus: 'vhost-user-blk' }] })), /disk0 .*vhost-user/);
  refused(() => checkMigratableDevices(def({ nics: [{ id: 'net0', mac: '52:54:00:00:00:01', network: { type: 'vhost-user', socket: '/run/sw.sock' } }] })), /NIC net0 .*vhost-user/);
  refused(() => checkMigratableDevices(def({ tpm: {} })), /TPM.*swtpm/);
});

test('files the destination must have: shared disks, CD-ROMs and the kernel; copy-storage leaves out writable disks', () => {
  const d = def({
    disks: [{ id: 'disk0', file: '/vm/a.qcow2', format: 'qcow2' }, { id: 'disk1', file: '/vm/ro.qcow2', format: 'qcow2', readOnly: true }],
    cdroms: [{ id: 'cd0', file: '/iso/x.iso' }],
    boot: { kernel: { kernel: '/k', initrd: '/i' } },
  });
  assert.deepEqual(filesTheDestinationNeeds(d, false).map((f) => f.file), ['/vm/a.qcow2', '/vm/ro.qcow2', '/iso/x.iso', '/k', '/i']);
  const copy = filesTheDestinationNeeds(d, true);
  assert.deepEqual(copy.map((f) => f.file), ['/vm/ro.qcow2', '/iso/x.iso', '/k', '/i']);
  assert.match(copy.find((f) => f.what === 'CD-ROM "cd0"')!.fix, /eject it first: hangar device edit mv cdrom cd0 file=/);
});

test('the migration hello: a VM id, a 64-hex token and ram|nbd, nothing else', () => {
  assert.deepEqual(parseHello(JSON.stringify({ channel: 'migration', vm: ID, token: TOKEN, stream: 'nbd' })), { channel: 'migration', vm: ID, token: TOKEN, stream: 'nbd' });
  for (const bad of [{ vm: 'web', token: TOKEN, stream: 'ram' }, { vm: ID, token: 'x', stream: 'ram' }, { vm: ID, token: TOKEN, stream: 'disk' }]) {
    assert.throws(() => parseHello(JSON.stringify({ channel: 'migration', ...bad })), /bad hello line/);
  }
});

function listen(server: Server, path: string): Promise<void> {
  return new Promise((r) => server.listen(path, r));
}

/** A destination core's socket that serves only migration channels to `incoming`. */
async function fakeDestination(dir: string, incoming: string): Promise<{ core: Server; path: string }> {
  const path = join(dir, 'core.sock');
  const core = createServer((sock) => {
    void readFirstLine(sock, 5000).then(({ line, rest }) => {
      const hello = parseHello(line);
      if (hello.channel !== 'migration') throw new Error('not a migration channel');
      return serveMigrationStream({ socketFor: (vm, token, stream) => {
        if (vm !== ID || token !== TOKEN) throw new HangarError('not-found', 'no such incoming migration');
        return `${incoming}.${stream}`;
      } }, sock, hello, rest);
    });
  });
  await listen(core, path);
  return { core, path };
}

const connect = (path: string): Promise<Socket> => new Promise((resolve, reject) => {
  const s = createConnection({ path }, () => resolve(s));
  s.once('error', reject);
});

test('the tunnel carries a whole stream, tail included, from the source QEMU to the incoming socket', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hgmig-'));
  try {
    const incoming = join(dir, 'in');
    let received = Buffer.alloc(0);
    const gotAll = new Promise<void>((resolve) => {
      const qemu = createServer((s) => {
        const parts: Buffer[] = [];
        s.on('data', (d: Buffer) => parts.push(d));
        s.on('end', () => { received = Buffer.concat(parts); s.end(); qemu.close(); resolve(); });
      });
      void listen(qemu, `${incoming}.ram`);
    });
    const { core, path } = await fakeDestination(dir, incoming);
    const tunnel = new TunnelListener(join(dir, 'migrate.sock'), () => connect(path), { vm: ID, token: TOKEN, stream: 'ram' });
    await tunnel.listen();
    const data = randomBytes(24 * 1024 * 1024);
    const q = await connect(tunnel.path);
    q.end(data); // the source QEMU sends everything, then closes at once
    await gotAll;
    assert.equal(received.length, data.length);
    assert.ok(received.equals(data), 'every byte arrived, in order');
    assert.equal(tunnel.failure, undefined);
    tunnel.close();
    core.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the destination side going away ends the source QEMU\'s stream; a wrong token is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hgmig-'));
  try {
    const incoming = join(dir, 'in');
    const qemu = createServer((s) => { s.once('data', () => s.destroy()); }); // the incoming QEMU dies on the first bytes
    await listen(qemu, `${incoming}.ram`);
    const { core, path } = await fakeDestination(dir, incoming);
    const tunnel = new TunnelListener(join(dir, 'migrate.sock'), () => connect(path), { vm: ID, token: TOKEN, stream: 'ram' });
    await tunnel.listen();
    const q = await connect(tunnel.path);
    q.on('error', () => {});
    const closed = new Promise<void>((r) => q.once('close', () => r()));
    const writer = setInterval(() => { if (!q.destroyed) q.write(randomBytes(64 * 1024)); }, 5);
    await closed;
    clearInterval(writer);
    tunnel.close();
    const wrong = new TunnelListener(join(dir, 'migrate2.sock'), () => connect(path), { vm: ID, token: 'cd'.repeat(32), stream: 'ram' });
    await wrong.listen();
    const q2 = await connect(wrong.path);
    await new Promise<void>((r) => q2.once('close', () => r()));
    assert.match(wrong.failure ?? '', /refused the memory stream: no such incoming migration/);
    wrong.close();
    qemu.close();
    core.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
