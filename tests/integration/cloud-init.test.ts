// cloud-init NoCloud seed end to end: `hangar create --cloud-init ...` builds a cidata ISO in the
// VM folder, attaches it as a CD-ROM, and the real test guest mounts it and reads user-data.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readIsoPvd } from '../../core/node/osinfo/iso9660.ts';
import { ensureTestGuest, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness } from '../helpers/hangar.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
});

after(async () => {
  await h?.cleanup();
});

test('--cloud-init: seed ISO labelled cidata, mounted and read by the guest, no plain password anywhere', async () => {
  const keyFile = join(h.home, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'alice@hangar-test', '-f', keyFile]);
  const pub = readFileSync(`${keyFile}.pub`, 'utf8').trim();
  const info = await h.json<{ id: string; dir: string }>(['create', '--name', 'seeded', '--memory', '256', '--accel', 'tcg',
    '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', 'console=ttyS0 quiet panic=-1',
    '--cloud-init', `user=alice,password=secret,hostname=seedtest,ssh-key=${keyFile}.pub`]);
  const seed = join(info.dir, 'cloud-init', 'seed.iso');
  assert.equal((await readIsoPvd(seed)).volumeId, 'cidata');
  const def = readFileSync(join(info.dir, 'vm.json'), 'utf8');
  assert.ok(!def.includes('secret'), 'the definition holds no plain password');
  assert.match(def, /"passwordHash": "\$6\$/);
  const shown = await h.json<{ definition: { cdroms: Array<{ id: string; role?: string; file?: string }> } }>(['show', 'seeded']);
  assert.deepEqual(shown.definition.cdroms.map((c) => [c.id, c.role, c.file]), [['cidata', 'cloud-init', seed]]);
  assert.match((await h.ok(['cmdline', 'seeded'])), /"driver":"ide-cd"[^\n]*"id":"cidata"|"id":"cidata"[^\n]*ide-cd/);

  await h.ok(['start', 'seeded']);
  await h.waitForSerial(info.id, READY_MARKER);
  // q35: the seed drive sits on the AHCI controller (the guest loads ahci + sr_mod + isofs).
  const out = await h.consoleCommand('seeded', 'mkdir -p /mnt; mount -t iso9660 -o ro /dev/sr0 /mnt && cat /mnt/user-data /mnt/meta-data; echo END-OF-SEED', 4);
  assert.match(out, /END-OF-SEED/);
  assert.match(out, /^#cloud-config/m);
  assert.match(out, /hostname: seedtest/);
  assert.match(out, /name: alice/);
  assert.match(out, /passwd: \$6\$/);
  assert.ok(out.includes(pub), 'the generated ssh key is in user-data');
  assert.match(out, /ssh_pwauth: true/);
  assert.match(out, new RegExp(`instance-id: ${info.id}`));
  assert.match(out, /local-hostname: seedtest/);
  assert.ok(!/\bsecret\b/.test(out), 'the plain password is not on the seed');
  await h.ok(['destroy', 'seeded']);

  // A missing seed is rebuilt at start.
  rmSync(seed);
  await h.ok(['start', 'seeded']);
  assert.ok(statSync(seed).size > 0);
  await h.ok(['destroy', 'seeded']);
  await h.ok(['delete', 'seeded']);
  assert.ok(!existsSync(join(info.dir, 'cloud-init')), 'delete removes the seed');
});

test('a failed create leaves no seed behind', async (t) => {
  // Rejected before anything is written: a microvm has no CD-ROM for the seed.
  const r = await h.run(['create', '--name', 'bad-seed', '--machine', 'microvm', '--accel', 'tcg',
    '--kernel', guest.kernel, '--cloud-init', 'hostname=ok']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /microvm has none/);
  // Fails after the seed was built: qemu-img cannot make an 8000 TiB raw file on ext4 (16 TiB files at most).
  // --allow-overcommit gets it past the free-space check, which would refuse it before anything is written.
  const r2 = await h.run(['create', '--name', 'bad-seed', '--accel', 'tcg', '--new-disk', '8000T,format=raw', '--cloud-init', 'hostname=ok', '--allow-overcommit']);
  if (r2.code === 0) { t.skip('this file system holds 8000 TiB sparse files: no late failure to provoke'); return; }
  assert.match(r2.stderr, /too large/i);
  const vms = await h.json<Array<{ name: string }>>(['list']);
  assert.equal(vms.filter((v) => v.name === 'bad-seed').length, 0);
  const left = execFileSync('find', [join(h.home, 'vms'), '-path', '*cloud-init*']).toString().trim();
  assert.equal(left, '', 'no cloud-init files are left');
});
