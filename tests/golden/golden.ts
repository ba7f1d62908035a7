// Shared helpers of the golden argv tests: where fixtures and expected files live, and how an
// argv is stored (one argument per line).
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export const FIXTURE_DIR = join(here, 'fixtures');
export const EXPECTED_DIR = join(here, 'expected');
/** A fixed set of QEMU firmware descriptors (copies of Debian 12's ovmf ones) for UEFI fixtures. */
export const FIRMWARE_DIR = join(here, 'firmware');
/** The VM folder of every fixture VM (where a UEFI VM's own uefi-vars.fd lives). */
export const FIXTURE_VM_DIR = '/HANGAR_FIXTURE';

/** Placeholders: fixture file paths start with the first, runtime sockets with the second. */
export const FIXTURE_PREFIX = '/HANGAR_FIXTURE/';
export const RUN_PREFIX = '/HANGAR_RUN/';

/** Placeholders in bridge NIC netdevs: the bridge name (a fixture's) and qemu-bridge-helper's path. */
export const FIXTURE_BRIDGE = 'hgtbr-fixture';
export const BRIDGE_HELPER_PLACEHOLDER = '/HANGAR_HELPER/qemu-bridge-helper';

export const RUN_PATHS = {
  qmpSocket: `${RUN_PREFIX}qmp.sock`,
  serialSocket: `${RUN_PREFIX}serial0.sock`,
  pidfile: `${RUN_PREFIX}qemu.pid`,
  swtpmSocket: `${RUN_PREFIX}swtpm.sock`,
  passtSocket: (nicIndex: number) => `${RUN_PREFIX}passt${nicIndex}.sock`,
  qsdSocket: (diskIndex: number) => `${RUN_PREFIX}qsd${diskIndex}.sock`,
  channelSocket: (index: number) => `${RUN_PREFIX}chan${index}.sock`,
  serialPortSocket: (index: number) => `${RUN_PREFIX}ttyS${index + 1}.sock`,
  virtiofsdSocket: (shareIndex: number) => `${RUN_PREFIX}vfs${shareIndex}.sock`,
  vncSocket: `${RUN_PREFIX}vnc.sock`,
};

export function fixtureNames(): string[] {
  return readdirSync(FIXTURE_DIR).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length)).sort();
}

export function fixturePath(name: string): string {
  return join(FIXTURE_DIR, `${name}.json`);
}

export function expectedPath(name: string): string {
  return join(EXPECTED_DIR, `${name}.argv`);
}

export function formatArgv(argv: readonly string[]): string {
  for (const a of argv) if (a.includes('\n')) throw new Error(`argument ${JSON.stringify(a)} contains a newline`);
  return `${argv.join('\n')}\n`;
}

export function parseArgv(text: string): string[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}
