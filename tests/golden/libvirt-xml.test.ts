// Golden libvirt domain XML, like virt-install's test suite: each fixture definition must give
// exactly expected/<name>.xml (and the notCarried list in expected/not-carried.json), and every
// expected file must pass libvirt's own schema check (virt-xml-validate FILE domain). Regenerate
// with UPDATE_GOLDEN=1 and review the diff.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { writeDomainXml } from '../../core/node/libvirt/domain-xml-write.ts';
import { GOLDEN_OPTIONS, LIBVIRT_EXPECTED_DIR, NOT_CARRIED_FILE, expectedXmlPath, libvirtFixtures, loadFixture } from './libvirt/libvirt-golden.ts';

const run = promisify(execFile);
const update = process.env.UPDATE_GOLDEN === '1';

/** virt-xml-validate needs xmllint (libxml2-utils): say which is missing instead of skipping. */
async function validate(file: string): Promise<void> {
  try {
    await run('virt-xml-validate', [file, 'domain'], { timeout: 30_000 });
  } catch (e) {
    const err = e as { code?: string | number; stderr?: string; stdout?: string; message: string };
    if (err.code === 'ENOENT') throw new Error('virt-xml-validate is not installed: apt-get install libvirt-clients (scripts/setup.sh --test)', { cause: e });
    const out = `${err.stdout ?? ''}${err.stderr ?? ''}`.trim();
    if (/xmllint: not found/.test(out)) throw new Error('virt-xml-validate needs xmllint, which is not installed: apt-get install libxml2-utils', { cause: e });
    throw new Error(`${file} does not validate against libvirt's domain schema:\n${out || err.message}`, { cause: e });
  }
}

describe('golden libvirt domain XML', () => {
  const fixtures = libvirtFixtures();
  const notCarried: Record<string, string[]> = {};
  let expectedNotCarried: Record<string, string[]> = {};

  before(async () => {
    if (!update) {
      assert.ok(existsSync(NOT_CARRIED_FILE), `missing ${NOT_CARRIED_FILE}: run UPDATE_GOLDEN=1 node --import tsx --test tests/golden/libvirt-xml.test.ts and review it`);
      expectedNotCarried = JSON.parse(await readFile(NOT_CARRIED_FILE, 'utf8')) as Record<string, string[]>;
    }
  });

  after(async () => {
    if (update) await writeFile(NOT_CARRIED_FILE, `${JSON.stringify(notCarried, null, 2)}\n`);
  });

  it('has fixtures of each origin', () => {
    assert.ok(fixtures.filter((f) => f.name.startsWith('def-')).length >= 3, 'stored definitions');
    assert.ok(fixtures.filter((f) => f.name.startsWith('argv-')).length >= 20, 'argv golden fixtures');
    assert.ok(fixtures.filter((f) => !/^(def|argv)-/.test(f.name)).length >= 3, 'libvirt fixtures');
  });

  for (const f of fixtures) {
    it(f.name, async () => {
      const { xml, notCarried: nc } = writeDomainXml(await loadFixture(f), GOLDEN_OPTIONS);
      const file = expectedXmlPath(f.name);
      notCarried[f.name] = nc;
      if (update) {
        await mkdir(LIBVIRT_EXPECTED_DIR, { recursive: true });
        await writeFile(file, xml);
      } else {
        assert.ok(existsSync(file), `missing golden file ${file}: run UPDATE_GOLDEN=1 node --import tsx --test tests/golden/libvirt-xml.test.ts and review it`);
        assert.equal(xml, await readFile(file, 'utf8'), `domain XML for ${f.name} differs from ${file}; if the change is intended, rerun with UPDATE_GOLDEN=1 and review the diff`);
        assert.deepEqual(nc, expectedNotCarried[f.name] ?? [], `notCarried of ${f.name} differs from ${NOT_CARRIED_FILE}`);
      }
      await validate(file);
    });
  }
});
