// OS detection against the REAL osinfo-db (Debian package osinfo-db), with ISO images built here:
// 16 empty sectors, a Primary Volume Descriptor carrying a real distribution's labels, a
// terminator. The volume IDs are the ones the distributions really ship.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HangarError } from '../../core/common/errors.ts';
import { presetFor } from '../../core/common/os-presets.ts';
import { GENERIC_OSES } from '../../core/common/os-types.ts';
import { readIsoPvd, parsePvd } from '../../core/node/osinfo/iso9660.ts';
import { detectOs, listOses, loadOsinfoDb, osinfoDir } from '../../core/node/osinfo/osinfo-db.ts';
import type { OsinfoDb } from '../../core/node/osinfo/osinfo-db.ts';

const OSINFO = osinfoDir();
let dir: string;
let db: OsinfoDb;

interface IsoLabels { volumeId: string; systemId?: string; publisherId?: string; applicationId?: string; blocks?: number; fileBytes?: number }

function pad(buf: Buffer, at: number, len: number, s: string): void {
  buf.write(s.padEnd(len, ' ').slice(0, len), at, 'latin1');
}

/** A minimal ISO9660 image: PVD at sector 16, terminator at 17; sparse up to the volume size. */
export function makeIso(path: string, l: IsoLabels): string {
  const blocks = l.blocks ?? 18;
  const img = Buffer.alloc(18 * 2048);
  const pvd = img.subarray(16 * 2048, 17 * 2048);
  pvd[0] = 1;
  pvd.write('CD001', 1, 'latin1');
  pvd[6] = 1;
  pad(pvd, 8, 32, l.systemId ?? '');
  pad(pvd, 40, 32, l.volumeId);
  pvd.writeUInt32LE(blocks, 80);
  pvd.writeUInt32BE(blocks, 84);
  pvd.writeUInt16LE(2048, 128);
  pvd.writeUInt16BE(2048, 130);
  pad(pvd, 318, 128, l.publisherId ?? '');
  pad(pvd, 574, 128, l.applicationId ?? '');
  const term = img.subarray(17 * 2048, 18 * 2048);
  term[0] = 255;
  term.write('CD001', 1, 'latin1');
  term[6] = 1;
  writeFileSync(path, img);
  truncateSync(path, l.fileBytes ?? blocks * 2048);
  return path;
}

before(async () => {
  if (!existsSync(join(OSINFO, 'os'))) {
    throw new Error(`osinfo-db is not installed (no ${OSINFO}/os): run \`bash scripts/setup.sh\` (it installs the Debian package osinfo-db)`);
  }
  dir = mkdtempSync(join(tmpdir(), 'hangar-osinfo-'));
  db = await loadOsinfoDb();
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function detect(name: string, l: IsoLabels) {
  return detectOs(makeIso(join(dir, name), l));
}

test('the real database loads, with inheritance resolved', () => {
  assert.ok(db.oses.length > 300, `only ${db.oses.length} OSes loaded from ${OSINFO}`);
  const deb11 = db.byId.get('debian11')!;
  assert.equal(deb11.name, 'Debian 11');
  assert.equal(deb11.family, 'linux');
  assert.equal(deb11.releaseDate, '2021-08-14');
  // debian11.xml lists only virtio-gpu/fs itself: virtio-blk/net come from debian10 and earlier.
  assert.equal(deb11.virtio.blk, true);
  assert.equal(deb11.virtio.net, true);
  assert.equal(db.byId.get('debianbullseye'), deb11, 'second short-id is an alias');
  const win11 = db.byId.get('win11')!;
  assert.equal(win11.needsTpm, true);
  assert.deepEqual(win11.firmware, { efi: true, bios: false, secureBoot: true });
  assert.equal(win11.virtio.blk, false);
  assert.equal(win11.minimum.memoryMiB, 4096);
  assert.ok((win11.recommended.memoryMiB ?? 0) >= 4096, 'recommended never below minimum');
});

test('Debian 11 netinst (volume id "Debian 11.7.0 amd64 n") → debian11, virtio, BIOS', async () => {
  const d = await detect('debian11.iso', { volumeId: 'Debian 11.7.0 amd64 n' });
  assert.equal(d.os?.id, 'debian11');
  assert.deepEqual(d.matchedBy, ['volume-id']);
  assert.equal(d.arch, 'x86_64');
  const p = presetFor(d.os!);
  assert.equal(p.diskBus, 'virtio-blk');
  assert.equal(p.nicModel, 'virtio-net');
  assert.equal(p.firmware, 'bios');
  assert.equal(p.tpm, false);
  assert.equal(p.diskBytes, 20 * 1024 ** 3);
});

test('Debian 12 netinst ("Debian 12.5.0 amd64 n") → debian12 if this osinfo-db knows it, else unknown', async () => {
  const d = await detect('debian12.iso', { volumeId: 'Debian 12.5.0 amd64 n' });
  if (db.byId.has('debian12')) assert.equal(d.os?.id, 'debian12');
  else assert.equal(d.os, null, `osinfo-db ${db.version} predates Debian 12; it must not be mistaken for another release`);
});

test('Ubuntu 22.04.3 desktop ("Ubuntu 22.04.3 LTS amd64") → ubuntu22.04; Ubuntu-Server form too', async () => {
  const d = await detect('ubuntu.iso', { volumeId: 'Ubuntu 22.04.3 LTS amd64' });
  assert.equal(d.os?.id, 'ubuntu22.04');
  const s = await detect('ubuntu-server.iso', { volumeId: 'Ubuntu-Server 22.04.1 LTS amd64' });
  assert.equal(s.os?.id, 'ubuntu22.04');
  assert.equal(presetFor(d.os!).memoryMiB, 4096);
});

test('Ubuntu 24.04 ("Ubuntu 24.04 LTS amd64") → ubuntu24.04 if known, else unknown', async () => {
  const d = await detect('ubuntu2404.iso', { volumeId: 'Ubuntu 24.04 LTS amd64' });
  if (db.byId.has('ubuntu24.04')) assert.equal(d.os?.id, 'ubuntu24.04');
  else assert.equal(d.os, null);
});

test('Fedora: WS live "Fedora-WS-Live-37-1-7" → fedora37; Server DVD + system id LINUX; "Fedora-WS-Live-40-1-14" → fedora40 or fedora-unknown', async () => {
  const ws = await detect('fedora-ws.iso', { volumeId: 'Fedora-WS-Live-37-1-7' });
  assert.equal(ws.os?.id, 'fedora37');
  const srv = await detect('fedora-srv.iso', { volumeId: 'Fedora-S-dvd-x86_64-37', systemId: 'LINUX' });
  assert.equal(srv.os?.id, 'fedora37');
  assert.deepEqual(srv.matchedBy, ['volume-id', 'system-id']);
  const f40 = await detect('fedora40.iso', { volumeId: 'Fedora-WS-Live-40-1-14' });
  // osinfo-db maps Fedora releases newer than itself to its "fedora-unknown" entry on purpose.
  assert.equal(f40.os?.id, db.byId.has('fedora40') ? 'fedora40' : 'fedora-unknown');
});

test('Windows 11 ("CCCOMA_X64FRE_EN-US_DV9", publisher MICROSOFT CORPORATION) → win11: UEFI + Secure Boot + TPM, SATA, e1000', async () => {
  const d = await detect('win11.iso', { volumeId: 'CCCOMA_X64FRE_EN-US_DV9', systemId: 'CD-ROM', publisherId: 'MICROSOFT CORPORATION', applicationId: 'CDIMAGE 2.56 (01/01/2005 TM)' });
  assert.equal(d.os?.id, 'win11');
  assert.deepEqual(d.matchedBy, ['volume-id', 'publisher-id']);
  assert.equal(d.media.volumeId, 'CCCOMA_X64FRE_EN-US_DV9');
  const p = presetFor(d.os!);
  assert.equal(p.firmware, 'uefi-secure');
  assert.equal(p.tpm, true);
  assert.equal(p.diskBus, 'sata');
  assert.equal(p.nicModel, 'e1000');
  assert.equal(p.memoryMiB, 4096);
  assert.equal(p.vcpus, 2);
  assert.equal(p.diskBytes, 64 * 1024 ** 3);
});

test('the Windows label without the Microsoft publisher is not Windows (every present field must match)', async () => {
  const d = await detect('fake-win.iso', { volumeId: 'CCCOMA_X64FRE_EN-US_DV9', publisherId: 'SOMEONE ELSE' });
  assert.notEqual(d.os?.id, 'win11');
});

test('matching is case-insensitive (libosinfo)', async () => {
  const d = await detect('lower.iso', { volumeId: 'debian 11.7.0 amd64 n' });
  assert.equal(d.os?.id, 'debian11');
});

test('a made-up label → null (caller shows unknown/generic)', async () => {
  const d = await detect('mine.iso', { volumeId: 'MY_HOMEMADE_DISC', systemId: 'LINUX' });
  assert.equal(d.os, null);
  assert.deepEqual(d.matchedBy, []);
  assert.equal(d.media.volumeId, 'MY_HOMEMADE_DISC');
});

test('not-an-ISO, too-short and truncated files give clear invalid-input errors', async () => {
  const notIso = join(dir, 'disk.img');
  writeFileSync(notIso, Buffer.alloc(64 * 1024, 0x41));
  await assert.rejects(readIsoPvd(notIso), (e: unknown) => e instanceof HangarError && e.code === 'invalid-input' && /not an ISO9660 image/.test(e.message) && !!e.hint);
  const short = join(dir, 'short.iso');
  writeFileSync(short, 'hello');
  await assert.rejects(readIsoPvd(short), (e: unknown) => e instanceof HangarError && e.code === 'invalid-input' && /too short/.test(e.message) && /download/.test(e.hint ?? ''));
  const truncated = makeIso(join(dir, 'truncated.iso'), { volumeId: 'Debian 11.7.0 amd64 n', blocks: 200000 });
  truncateSync(truncated, 18 * 2048);
  await assert.rejects(detectOs(truncated), (e: unknown) => e instanceof HangarError && e.code === 'invalid-input' && /truncated/.test(e.message) && !!e.hint);
  await assert.rejects(readIsoPvd(join(dir, 'missing.iso')), (e: unknown) => e instanceof HangarError && e.code === 'invalid-input' && /does not exist/.test(e.message));
  await assert.rejects(readIsoPvd(dir), (e: unknown) => e instanceof HangarError && e.code === 'invalid-input' && /directory/.test(e.message));
});

test('an ISO built by xorriso is read the same way', async () => {
  // Not skipped when missing: setup.sh --test installs xorriso, so its absence is a set-up fault.
  assert.ok(existsSync('/usr/bin/xorriso'), 'xorriso is missing: run `bash scripts/setup.sh --test` (installs the xorriso package)');
  const { execFileSync } = await import('node:child_process');
  const iso = join(dir, 'xorriso.iso');
  writeFileSync(join(dir, 'hello.txt'), 'hi\n');
  execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'Debian 11.6.0 amd64 n', '-sysid', 'LINUX', '-publisher', 'Debian', '-o', iso, join(dir, 'hello.txt')], { stdio: 'ignore' });
  const pvd = await readIsoPvd(iso);
  assert.equal(pvd.volumeId, 'Debian 11.6.0 amd64 n');
  assert.equal(pvd.systemId, 'LINUX');
  assert.equal(pvd.publisherId, 'DEBIAN'); // mkisofs upper-cases d-character fields
  assert.equal((await detectOs(iso)).os?.id, 'debian11');
});

test('os list: generic fallbacks first, then the database; search filters', async () => {
  const all = await listOses();
  assert.deepEqual(all.slice(0, 4).map((o) => o.id), GENERIC_OSES.map((o) => o.id));
  assert.equal(all.length, db.oses.length + 4);
  const win = await listOses({ search: 'windows 11' });
  assert.ok(win.some((o) => o.id === 'win11'));
  assert.ok(win.every((o) => /windows/i.test(o.name)));
  const alias = await listOses({ search: 'bullseye' });
  assert.deepEqual(alias.map((o) => o.id), ['debian11']);
});

test('a missing database fails with the fix named; generic entries still list when tolerated', async () => {
  const empty = join(dir, 'no-osinfo');
  await assert.rejects(loadOsinfoDb(empty), (e: unknown) => e instanceof HangarError && e.code === 'host-missing' && /setup\.sh/.test(e.hint ?? ''));
  const list = await listOses({ root: empty, tolerateMissingDb: true });
  assert.deepEqual(list.map((o) => o.id), ['generic-linux', 'generic-windows', 'generic-bsd', 'other']);
});

test('parsePvd rejects a non-PVD descriptor', () => {
  const b = Buffer.alloc(2048);
  assert.equal(parsePvd(b), null);
  b[0] = 255;
  b.write('CD001', 1, 'latin1');
  assert.equal(parsePvd(b), null);
});
