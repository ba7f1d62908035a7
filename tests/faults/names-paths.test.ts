// Case 9: names and paths with "," ";" "$()" spaces, newlines, "..", non-ASCII, and a data dir
// whose socket paths would pass 108 bytes: escaped or refused clearly; no shell is ever involved.
// One real QEMU boot: a VM with a hostile name, its disk at a hostile path, under a very long
// HANGAR_HOME; the guest sees the disk, QMP and the console sockets work, nothing ran the "$()".
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness } from '../helpers/hangar.ts';

// The payload names a file by $HOME (a path with "/" would only make sub-folders).
const PWNED = `${process.env.HOME ?? '/root'}.pwned`;
const root = join(import.meta.dirname, '..', '..');

let h: HangarHarness;
let longHome: string;
let base: string;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

before(async () => {
  guest = await ensureTestGuest();
  rmSync(PWNED, { force: true });
  // A data dir path long enough that <home>/run/vms/<uuid>/serial0.sock would pass 108 bytes.
  base = mkdtempSync(join(tmpdir(), 'hgn-'));
  longHome = join(base, 'a-very-long-data-directory-name-'.repeat(4), 'hangar home');
  mkdirSync(longHome, { recursive: true });
  h = new HangarHarness();
  rmSync(h.home, { recursive: true, force: true });
  Object.defineProperty(h, 'home', { value: longHome });
});

after(async () => {
  await h?.cleanup();
  if (base) rmSync(base, { recursive: true, force: true });
  rmSync(PWNED, { force: true });
});

describe('case 9: hostile names and paths', () => {
  test('names with newlines, "/" and ".." are refused with the allowed pattern; the same rules in CLI and API', async () => {
    for (const bad of ['a\nb', 'a/b', '..', ' lead']) {
      const r = await h.run(['create', '--name', bad, '--memory', '128']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /VM name/);
      assert.match(r.stderr, /fix: .*(printable|name)/);
    }
    assert.equal(readdirSync(join(longHome, 'vms')).length, 0, 'nothing made');
  });

  test('a disk at a path with "," ";" "$()" spaces and non-ASCII boots under a long data dir; the guest sees it, no shell ran', async () => {
    const dir = join(longHome, 'imgs, with; $(touch $HOME.pwned) and `touch $HOME.pwned` ünï');
    mkdirSync(dir, { recursive: true });
    const disk = join(dir, 'd,1;$(touch $HOME.pwned).qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '24M']);
    const name = 'vm, ;$(touch $HOME.pwned) ünï 名前';
    // --disk takes QEMU-style specs: a literal comma is doubled.
    const info = await h.json<{ id: string; definition: { disks: Array<{ file: string }> } }>(['create', '--name', name, '--memory', '128', '--accel', 'tcg',
      '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE, '--disk', disk.replace(/,/g, ',,')]);
    assert.equal(info.definition.disks[0]!.file, disk, 'the path is kept exactly');
    const cmd = await h.json<string[]>(['cmdline', name]);
    // Key=value options double the comma; JSON options (-blockdev {...}) carry it JSON-escaped.
    assert.ok(cmd.some((a) => a.includes('d,,1;$(touch $HOME.pwned).qcow2') || a.includes(JSON.stringify(disk).slice(1, -1))), `the path is passed whole: ${cmd.join(' ')}`);
    await h.ok(['start', name], { timeoutMs: 120_000 });
    await h.waitForSerial(info.id, READY_MARKER, 1, 180_000);
    const out = await h.consoleCommand(name, 'echo size=$(cat /sys/block/vda/size)', 5);
    assert.match(out, /size=49152/, `the guest sees the 24 MiB disk: ${out}`);
    const shown = await h.json<{ state: string; qemuStatus?: string }>(['show', name]);
    assert.equal(shown.state, 'running');
    await h.ok(['destroy', name]);
    assert.equal(existsSync(PWNED), false, 'no shell ever ran the $() in a name or path');
  });

  test('no spawn in the core goes through a shell', () => {
    let out = '';
    try {
      out = execFileSync('grep', ['-rnE', 'shell: *true|execSync\\(|child_process.*\\bexec\\b', join(root, 'core')], { encoding: 'utf8' }).trim();
    } catch (e) {
      assert.equal((e as { status?: number }).status, 1, 'grep found nothing');
    }
    assert.equal(out, '');
  });
});
