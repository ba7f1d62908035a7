// The real test guest (built by build.sh into a cache outside the repo) for tests and benchmarks.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const READY_MARKER = 'HANGAR-GUEST-READY';

export interface TestGuest {
  kernel: string;
  initrd: string;
  iso: string;
  disk: string;
  cacheDir: string;
}

export function guestCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.HANGAR_GUEST_CACHE || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'hangar-test-guest');
}

let building: Promise<TestGuest> | null = null;

/** Builds the guest when needed (fast when up to date); fails loudly, never skips. */
export function ensureTestGuest(): Promise<TestGuest> {
  building ??= new Promise<string>((resolve, reject) => {
    execFile('bash', [join(import.meta.dirname, 'build.sh')], { maxBuffer: 16 * 1024 * 1024, timeout: 15 * 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`building the test guest failed (tests/guest/build.sh): ${stderr || err.message}`));
      else resolve(stdout.trim().split('\n').pop() ?? '');
    });
  }).then(async () => {
    const dir = guestCacheDir();
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as TestGuest;
    return { kernel: m.kernel, initrd: m.initrd, iso: m.iso, disk: m.disk, cacheDir: dir };
  });
  return building;
}

export interface PciLine {
  addr: string;
  vendor: string;
  device: string;
  cls: string;
  driver: string | null;
}

/** Parses the guest's HANGAR-PCI-BEGIN/END block. */
export function parsePciBlock(text: string): PciLine[] {
  const begin = text.lastIndexOf('HANGAR-PCI-BEGIN');
  if (begin < 0) return [];
  const end = text.indexOf('HANGAR-PCI-END', begin);
  const body = text.slice(begin, end < 0 ? undefined : end).split(/\r?\n/).slice(1);
  const out: PciLine[] = [];
  for (const line of body) {
    const m = /^(\S+)\s+([0-9a-f]{4}):([0-9a-f]{4})\s+(\S+)\s+(\S+)/.exec(line.trim());
    if (m) out.push({ addr: m[1]!, vendor: m[2]!, device: m[3]!, cls: m[4]!, driver: m[5] === 'none' ? null : m[5]! });
  }
  return out;
}
