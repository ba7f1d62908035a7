// Managed save (libvirt's managedsave): a running VM's RAM and device state written to its folder
// by QEMU's own migration stream, and fed back to a new QEMU started with -incoming defer. The
// stream passes through a unix socket in the VM's private runtime dir (the core listens for a
// save, QEMU listens for a restore): no exec: migration (the QEMU sandbox forbids spawning) and no
// file descriptors over QMP. The state file appears under its final name only once QEMU reported
// the save complete and the data is on disk; it is deleted only after a restore succeeded.
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { clipboardBlocksRamState } from '../../common/display.ts';
import { HangarError } from '../../common/errors.ts';
import type { VmDefinition } from '../../common/model.ts';
import type { QmpClient } from '../qmp/client.ts';
import { writeFileAtomic } from '../store/atomic-write.ts';

export const SAVED_STATE_FILE = 'saved-state.bin';
export const SAVED_META_FILE = 'saved-state.json';
const PARTIAL_FILE = '.saved-state.partial';

export interface SavedMeta {
  savedAt: string;
  /** The guest was paused when saved: it is restored paused. */
  paused: boolean;
  bytes: number;
}

interface MigrateInfo {
  status?: string;
  'error-desc'?: string;
  ram?: { transferred: number; total: number; remaining: number };
}

const POLL_MS = 100;

export function hasSavedState(vmDir: string): boolean {
  return existsSync(join(vmDir, SAVED_STATE_FILE));
}

export async function readSavedMeta(vmDir: string): Promise<SavedMeta | null> {
  try {
    return JSON.parse(await readFile(join(vmDir, SAVED_META_FILE), 'utf8')) as SavedMeta;
  } catch {
    return null;
  }
}

export async function discardSavedState(vmDir: string): Promise<void> {
  for (const f of [SAVED_STATE_FILE, SAVED_META_FILE, PARTIAL_FILE]) await unlink(join(vmDir, f)).catch(() => {});
}

/** Why a VM's devices cannot be saved, or null; QEMU's own migration blockers are reported by the save itself. */
export function saveBlocker(def: VmDefinition, qemu?: { major: number; minor: number }): string | null {
  if (def.hostPci.length || def.mdevs.length) return 'it has passthrough devices (VFIO), whose state cannot be saved';
  const vfs = def.shares.filter((s) => s.driver === 'virtiofs');
  if (vfs.length) return `it shares folders over virtiofs (${vfs.map((s) => s.id).join(', ')}), which cannot be saved`;
  if (def.hostUsb.length) return 'it has host USB devices, whose state cannot be saved';
  return clipboardBlocksRamState(def, qemu);
}

async function waitMigration(qmp: QmpClient, what: string, onProgress?: (done: number, total: number) => void): Promise<void> {
  for (;;) {
    const m = await qmp.execute<MigrateInfo>('query-migrate');
    if (m.ram && m.status !== 'completed') onProgress?.(m.ram.transferred, m.ram.total);
    if (m.status === 'completed') return;
    if (m.status === 'failed' || m.status === 'cancelled') {
      throw new HangarError('qmp-error', `${what} failed: ${m['error-desc'] ?? m.status}`, 'see the VM log (hangar log and logs/qemu.log)');
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Writes the running QEMU's state into <vmDir>/saved-state.bin (QEMU ends paused, in postmigrate). */
export async function saveState(qmp: QmpClient, socketPath: string, vmDir: string, paused: boolean, onProgress?: (done: number, total: number) => void): Promise<SavedMeta> {
  const partial = join(vmDir, PARTIAL_FILE);
  await unlink(socketPath).catch(() => {});
  const server = createServer();
  let received: Promise<void> | null = null;
  server.once('connection', (sock: Socket) => {
    server.close(); // one stream only
    received = pipeline(sock, createWriteStream(partial, { mode: 0o600 }));
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(socketPath, resolve); });
  try {
    // The default bandwidth cap (128 MiB/s) is for networks; a local file takes what the disk gives.
    await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 1024 ** 3 });
    await qmp.execute('migrate', { uri: `unix:${socketPath}` }).catch((e: Error) => {
      // QEMU's own migration blockers (a device it cannot save): nothing was written, the VM runs on.
      if (!(e instanceof HangarError) || e.code !== 'qmp-error') throw e;
      throw new HangarError('invalid-state', `QEMU cannot save this VM's state: ${e.message.replace(/^QMP migrate failed: /, '')}`,
        'remove or turn off the device QEMU names (the VM keeps running), or shut the VM down instead');
    });
    await waitMigration(qmp, 'saving the VM state', onProgress);
    if (!received) throw new HangarError('internal', 'QEMU reported the save complete without sending it');
    await received;
    const fh = await open(partial, 'r');
    try { await fh.sync(); } finally { await fh.close(); }
    const meta: SavedMeta = { savedAt: new Date().toISOString(), paused, bytes: (await stat(partial)).size };
    await writeFileAtomic(join(vmDir, SAVED_META_FILE), JSON.stringify(meta) + '\n', 0o600);
    await rename(partial, join(vmDir, SAVED_STATE_FILE));
    return meta;
  } catch (e) {
    await unlink(partial).catch(() => {});
    throw e;
  } finally {
    server.close();
    await unlink(socketPath).catch(() => {});
  }
}

/** Feeds <vmDir>/saved-state.bin to a QEMU started with -incoming defer; it ends paused with the saved state. */
export async function restoreState(qmp: QmpClient, socketPath: string, vmDir: string, onProgress?: (done: number, total: number) => void): Promise<void> {
  const file = join(vmDir, SAVED_STATE_FILE);
  const size = (await stat(file)).size;
  await unlink(socketPath).catch(() => {});
  await qmp.execute('migrate-incoming', { uri: `unix:${socketPath}` });
  const sock = await new Promise<Socket>((resolve, reject) => {
    const deadline = Date.now() + 10_000;
    const attempt = (): void => {
      const s = createConnection({ path: socketPath });
      s.once('connect', () => resolve(s));
      s.once('error', (e) => { if (Date.now() > deadline) reject(e); else setTimeout(attempt, 50); });
    };
    attempt();
  });
  let sent = 0;
  const src = createReadStream(file);
  src.on('data', (c) => { sent += c.length; onProgress?.(sent, size); });
  // QEMU closes its end once the stream is complete; a damaged stream ends the migration with an error.
  const streamed = pipeline(src, sock).catch(() => {});
  try {
    await waitMigration(qmp, 'restoring the saved VM state');
  } finally {
    sock.destroy();
    await streamed;
    await unlink(socketPath).catch(() => {});
  }
}
