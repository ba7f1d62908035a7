// Shared by the golden and integration libvirt XML tests: which fixture definitions are written
// as domain XML, and where their expected XML lives.
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDefinition } from '../../../core/common/definition.ts';
import type { VmDefinition } from '../../../core/common/model.ts';
import { FIXTURE_DIR as ARGV_FIXTURE_DIR } from '../golden.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const LIBVIRT_FIXTURE_DIR = join(here, 'fixtures');
export const LIBVIRT_EXPECTED_DIR = join(here, 'expected');
/** name -> notCarried of every fixture, one reviewed file. */
export const NOT_CARRIED_FILE = join(LIBVIRT_EXPECTED_DIR, 'not-carried.json');
const DEFINITIONS_DIR = join(here, '..', '..', 'fixtures', 'definitions');

export interface LibvirtFixture { name: string; path: string }

function jsonIn(dir: string, prefix: string, skip: (name: string) => boolean = () => false): LibvirtFixture[] {
  return readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).filter((n) => !skip(n)).sort()
    .map((n) => ({ name: `${prefix}${n}`, path: join(dir, `${n}.json`) }));
}

/**
 * Our own fixtures, the stored definitions of older Hangar versions (def-*), and the argv golden
 * fixtures (argv-*) but the microvm ones: libvirt cannot define a microvm (writeDomainXml refuses).
 */
export function libvirtFixtures(): LibvirtFixture[] {
  return [
    ...jsonIn(LIBVIRT_FIXTURE_DIR, ''),
    ...jsonIn(DEFINITIONS_DIR, 'def-'),
    ...jsonIn(ARGV_FIXTURE_DIR, 'argv-', (n) => n.startsWith('microvm')),
  ];
}

export async function loadFixture(f: LibvirtFixture): Promise<VmDefinition> {
  return parseDefinition(JSON.parse(await readFile(f.path, 'utf8')));
}

export function expectedXmlPath(name: string): string {
  return join(LIBVIRT_EXPECTED_DIR, `${name}.xml`);
}

/** The writer options of every golden file: fixed, never read from this host. */
export const GOLDEN_OPTIONS = { emulator: '/usr/bin/qemu-system-x86_64' } as const;
