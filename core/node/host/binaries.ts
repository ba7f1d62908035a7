// Locating the host programs Hangar drives (QEMU and friends) and reading QEMU's version.
// Search order: $HANGAR_QEMU_DIR (explicit override), then $PATH, then the usual distro dirs
// (some helpers live outside PATH, e.g. in /usr/libexec).

import { execFile } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { HangarError } from '../../common/errors.ts';

/** Directories searched after $HANGAR_QEMU_DIR and $PATH. */
export const FALLBACK_BIN_DIRS: readonly string[] = ['/usr/libexec', '/usr/lib/qemu', '/usr/bin', '/usr/sbin'];

/** Debian package that provides each program Hangar needs. */
export const DEB_PACKAGES: Readonly<Record<string, string>> = {
  'qemu-system-x86_64': 'qemu-system-x86',
  'qemu-img': 'qemu-utils',
  'qemu-storage-daemon': 'qemu-system-common',
  swtpm: 'swtpm',
  passt: 'passt',
  xorriso: 'xorriso',
  openssl: 'openssl',
};

export interface FindBinaryOptions {
  /** Environment to read HANGAR_QEMU_DIR and PATH from (default: process.env). */
  env?: Record<string, string | undefined>;
  /** Directories searched after PATH (default: FALLBACK_BIN_DIRS). */
  fallbackDirs?: readonly string[];
}

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Every directory findBinary() looks in, in order, without duplicates. */
export function binarySearchDirs(opts: FindBinaryOptions = {}): string[] {
  const env = opts.env ?? process.env;
  const dirs: string[] = [];
  const override = env.HANGAR_QEMU_DIR?.trim();
  if (override) dirs.push(override);
  for (const d of (env.PATH ?? '').split(delimiter)) if (d && isAbsolute(d)) dirs.push(d);
  dirs.push(...(opts.fallbackDirs ?? FALLBACK_BIN_DIRS));
  return [...new Set(dirs)];
}

/**
 * Absolute path of an executable called `name`, or null when none is found.
 * A name containing '/' is taken as a path and only checked.
 */
export function findBinary(name: string, opts: FindBinaryOptions = {}): string | null {
  if (name.includes('/')) return isExecutableFile(name) ? name : null;
  for (const dir of binarySearchDirs(opts)) {
    const candidate = join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return null;
}

/** Like findBinary(), but a missing program is a 'host-missing' error naming the package to install. */
export function requireBinary(name: string, debPackage?: string, opts: FindBinaryOptions = {}): string {
  const found = findBinary(name, opts);
  if (found) return found;
  const pkg = debPackage ?? DEB_PACKAGES[name] ?? name;
  throw new HangarError('host-missing', `${name} not found`, `install it: apt-get install ${pkg}`, {
    searched: binarySearchDirs(opts),
  });
}

export interface QemuVersion {
  major: number;
  minor: number;
  micro: number;
}

export interface QemuInfo {
  /** Absolute path of qemu-system-x86_64. */
  path: string;
  version: QemuVersion;
  /** First line of `--version`, e.g. "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)". */
  versionText: string;
}

/** Parses the first line of `qemu-* --version`. Returns null when no version number is present. */
export function parseQemuVersion(text: string): { version: QemuVersion; versionText: string } | null {
  const firstLine = text.split('\n').find((l) => l.trim() !== '')?.trim() ?? '';
  const m = /version\s+(\d+)\.(\d+)(?:\.(\d+))?/i.exec(firstLine);
  if (!m) return null;
  return {
    version: { major: Number(m[1]), minor: Number(m[2]), micro: m[3] === undefined ? 0 : Number(m[3]) },
    versionText: firstLine,
  };
}

/** "7.2.22" */
export function formatQemuVersion(v: QemuVersion): string {
  return `${v.major}.${v.minor}.${v.micro}`;
}

function runVersion(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(path, ['--version'], { timeout: 15_000, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } },
      (err, stdout, stderr) => {
        if (err) {
          reject(new HangarError('qemu-failed', `${path} --version failed: ${(stderr || err.message).trim()}`,
            'check that the QEMU installation is intact: apt-get install --reinstall qemu-system-x86'));
          return;
        }
        resolve(stdout);
      });
  });
}

const qemuInfoCache = new Map<string, Promise<QemuInfo>>();

/**
 * Path and version of qemu-system-x86_64 (or of the given binary). Cached per path for the
 * life of the process; a failed lookup is not cached.
 */
export async function qemuInfo(qemuPath?: string): Promise<QemuInfo> {
  const path = qemuPath ?? requireBinary('qemu-system-x86_64');
  let pending = qemuInfoCache.get(path);
  if (!pending) {
    pending = (async () => {
      const out = await runVersion(path);
      const parsed = parseQemuVersion(out);
      if (!parsed) {
        throw new HangarError('qemu-failed', `could not read the QEMU version from ${path} --version: ${out.trim()}`,
          'check that the QEMU installation is intact: apt-get install --reinstall qemu-system-x86');
      }
      return { path, ...parsed };
    })();
    qemuInfoCache.set(path, pending);
    pending.catch(() => qemuInfoCache.delete(path));
  }
  return pending;
}
