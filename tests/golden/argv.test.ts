// Golden command lines, like libvirt's qemuxml2argv: each fixture definition must produce exactly
// the argv stored in expected/<name>.argv (one argument per line). Regenerate with UPDATE_GOLDEN=1
// and review the diff.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { parseDefinition } from '../../core/common/definition.ts';
import { resolveFirmware } from '../../core/node/host/firmware.ts';
import { buildArgv } from '../../core/node/qemu/vm-argv.ts';
import { sandboxFor } from '../../core/node/sandbox/qemu-hardening.ts';
import { BRIDGE_HELPER_PLACEHOLDER, EXPECTED_DIR, FIRMWARE_DIR, FIXTURE_VM_DIR, RUN_PATHS, expectedPath, fixtureNames, fixturePath, formatArgv } from './golden.ts';

const update = process.env.UPDATE_GOLDEN === '1';

describe('golden argv', () => {
  const names = fixtureNames();

  it('has fixtures', () => {
    assert.ok(names.length >= 8, `found ${names.length} fixtures`);
  });

  for (const name of names) {
    it(name, async () => {
      const def = parseDefinition(JSON.parse(await readFile(fixturePath(name), 'utf8')));
      const firmware = resolveFirmware(def, FIXTURE_VM_DIR, { dirs: [FIRMWARE_DIR], checkFiles: false });
      const actual = formatArgv(buildArgv(def, { accel: 'tcg', paths: RUN_PATHS, vmDir: FIXTURE_VM_DIR, firmware, swtpmSocket: RUN_PATHS.swtpmSocket, bridgeHelper: BRIDGE_HELPER_PLACEHOLDER,
        // The sandbox every VM gets where QEMU has seccomp (fixed here: never read from this host or the environment).
        hardening: { sandbox: sandboxFor(def, undefined) } }));
      const file = expectedPath(name);
      if (update) {
        await mkdir(EXPECTED_DIR, { recursive: true });
        await writeFile(file, actual);
        return;
      }
      assert.ok(existsSync(file), `missing golden file ${file}: run UPDATE_GOLDEN=1 node --import tsx --test tests/golden/argv.test.ts and review it`);
      const expected = await readFile(file, 'utf8');
      assert.equal(actual, expected,
        `argv for ${name} differs from ${file}; if the change is intended, rerun with UPDATE_GOLDEN=1 and review the diff`);
    });
  }
});
