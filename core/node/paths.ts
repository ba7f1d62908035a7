// Where Hangar keeps things: definitions and disks in the data dir, sockets and pidfiles in a
// private (0700) runtime dir. Unix socket paths are limited to 107 bytes, so a runtime dir that
// would make them too long is replaced by a short, deterministic one under /tmp.
import { createHash } from 'node:crypto';
import { closeSync, constants as fsConstants, fstatSync, lstatSync, mkdirSync, openSync } from 'node:fs';
import { homedir, tmpdir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { HangarError } from '../common/errors.ts';
import { ioError } from './io-error-reason.ts';

export const SOCKET_PATH_MAX = 107;
/**
 * Longest name we put under a VM runtime dir: "vms/<uuid>/serial0.sock". Every socket name in a
 * VM's runtime dir fits in these 12 bytes (passt sockets are numbered by NIC position for that:
 * "passt99.sock"), so the runtime dir choice does not depend on a VM's devices.
 */
const LONGEST_SOCKET_NAME = 'serial0.sock'.length;
const LONGEST_RUNTIME_SUFFIX = `vms/00000000-0000-0000-0000-000000000000/${'x'.repeat(LONGEST_SOCKET_NAME)}`.length + 1;
/** NIC positions whose passt socket name fits LONGEST_SOCKET_NAME. */
export const MAX_PASST_NICS = 100;

export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HANGAR_HOME) return resolve(env.HANGAR_HOME);
  const xdg = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(xdg, 'hangar');
}

function preferredRuntimeDir(env: NodeJS.ProcessEnv): string {
  if (env.HANGAR_RUNTIME_DIR) return resolve(env.HANGAR_RUNTIME_DIR);
  // A HANGAR_HOME gets its own runtime dir, so separate homes never share a daemon.
  if (env.HANGAR_HOME) return join(resolve(env.HANGAR_HOME), 'run');
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'hangar');
  return join(tmpdir(), `hangar-${userInfo().uid}`);
}

export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  const preferred = preferredRuntimeDir(env);
  if (Buffer.byteLength(preferred) + LONGEST_RUNTIME_SUFFIX <= SOCKET_PATH_MAX) return preferred;
  const hash = createHash('sha256').update(preferred).digest('hex').slice(0, 12);
  return join(tmpdir(), `hangar-${userInfo().uid}-${hash}`);
}

/**
 * Creates dir (its parents as needed) private to us, the way systemd and libvirt make their runtime
 * dirs: mkdir, and if it already exists accept it only as a real directory (never through a
 * symlink) owned by us with no access for others. Under a shared /tmp another local user can plant
 * a symlink or a directory of their own at our fallback path before we run; following it would
 * put our sockets (and a chmod) where they choose. Checked on an fd opened with O_NOFOLLOW, so
 * what is checked is what we use.
 */
export function ensurePrivateDir(dir: string): string {
  try {
    mkdirSync(dirname(dir), { recursive: true, mode: 0o700 });
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError('create the runtime directory', join(dir, 'hangar.sock'), e);
  }
  const refuse = (problem: string): HangarError => new HangarError('io-error',
    `runtime directory ${dir} ${problem}; Hangar will not put its sockets there`,
    `remove it (rm -rf ${dir}) if it is not yours, or set HANGAR_RUNTIME_DIR (or XDG_RUNTIME_DIR) to a private directory of your own`,
    { path: dir });
  let fd: number;
  try {
    fd = openSync(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ELOOP' && code !== 'ENOTDIR') throw e;
    // O_DIRECTORY|O_NOFOLLOW on a symlink fails with ENOTDIR or ELOOP: lstat tells which it is.
    if (lstatSync(dir, { throwIfNoEntry: false })?.isSymbolicLink()) throw refuse('is a symbolic link (possibly planted by another user)');
    throw refuse('is not a directory');
  }
  try {
    const st = fstatSync(fd);
    const uid = process.getuid?.() ?? userInfo().uid;
    if (st.uid !== uid) throw refuse(`belongs to another user (uid ${st.uid})`);
    if ((st.mode & 0o077) !== 0) {
      throw new HangarError('io-error',
        `runtime directory ${dir} is open to other users (mode ${(st.mode & 0o777).toString(8)}); Hangar will not put its sockets there`,
        `make it private (chmod 700 ${dir}), or remove it and let Hangar create it`, { path: dir });
    }
  } finally {
    closeSync(fd);
  }
  return dir;
}

export interface VmRuntimePaths {
  dir: string;
  qmpSocket: string;
  serialSocket: string;
  pidfile: string;
  swtpmSocket: string;
  swtpmPidfile: string;
  /** The unix socket passt serves the NIC at position `nicIndex` (in definition.nics) on. */
  passtSocket(nicIndex: number): string;
  /** passt's pidfile for the NIC at position `nicIndex`. */
  passtPidfile(nicIndex: number): string;
  /** The vhost-user socket qemu-storage-daemon serves the disk at position `diskIndex` on. */
  qsdSocket(diskIndex: number): string;
  qsdPidfile(diskIndex: number): string;
  /** The unix socket of the virtio-serial channel at position `index` (QEMU serves it). */
  channelSocket(index: number): string;
  /** The unix socket of the extra serial port at position `index` in serialPorts (the guest's ttyS<index+1>). */
  serialPortSocket(index: number): string;
  /** The vhost-user socket virtiofsd serves the share at position `shareIndex` on, and its pidfile. */
  virtiofsdSocket(shareIndex: number): string;
  virtiofsdPidfile(shareIndex: number): string;
  /** QEMU's VNC server (a VM with a display); only the core connects to it. */
  vncSocket: string;
  /** Last known state of a VM whose QEMU is gone (e.g. crashed), kept across core restarts. */
  statusFile: string;
  /** Where QEMU's migration stream passes for a save or a restore (the core serves or connects to it). */
  stateSocket: string;
}

function passtIndex(i: number): number {
  if (!Number.isInteger(i) || i < 0 || i >= MAX_PASST_NICS) {
    throw new HangarError('invalid-input', `a VM can have at most ${MAX_PASST_NICS} passt NICs (NIC position ${i})`, 'remove NICs, or use user-mode networking for some');
  }
  return i;
}

export function vmRuntimePaths(runtime: string, vmId: string): VmRuntimePaths {
  const dir = join(runtime, 'vms', vmId);
  return {
    dir,
    qmpSocket: join(dir, 'qmp.sock'),
    serialSocket: join(dir, 'serial0.sock'),
    pidfile: join(dir, 'qemu.pid'),
    swtpmSocket: join(dir, 'swtpm.sock'),
    swtpmPidfile: join(dir, 'swtpm.pid'),
    passtSocket: (i) => join(dir, `passt${passtIndex(i)}.sock`),
    passtPidfile: (i) => join(dir, `passt${passtIndex(i)}.pid`),
    // "qsdNN.sock" is no longer than "serial0.sock", the longest name the runtime dir allows for.
    qsdSocket: (i) => join(dir, `qsd${passtIndex(i)}.sock`),
    qsdPidfile: (i) => join(dir, `qsd${passtIndex(i)}.pid`),
    // "chanNN.sock", "ttySNN.sock", "vfsNN.sock": within the 12 bytes of "serial0.sock" too.
    channelSocket: (i) => join(dir, `chan${passtIndex(i)}.sock`),
    serialPortSocket: (i) => join(dir, `ttyS${passtIndex(i) + 1}.sock`),
    virtiofsdSocket: (i) => join(dir, `vfs${passtIndex(i)}.sock`),
    virtiofsdPidfile: (i) => join(dir, `vfs${passtIndex(i)}.pid`),
    vncSocket: join(dir, 'vnc.sock'),
    statusFile: join(dir, 'status.json'),
    stateSocket: join(dir, 'state.sock'),
  };
}

/** Sockets QEMU itself serves in a VM's runtime dir for channels and extra serial ports (left behind when QEMU is killed). */
export const QEMU_SERVED_SOCKET_RE = /^(chan\d+|ttyS\d+|vnc)\.sock$/;

export function daemonSocketPath(runtime: string): string {
  return join(runtime, 'hangar.sock');
}
