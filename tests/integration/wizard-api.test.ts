// The core API the New VM wizard stands on, against the real daemon, qemu-img, osinfo-db and
// xorriso: hostInfo, osList, inspectPath, previewCreate (writes nothing, same command line as the
// VM create makes), create with cloud-init fields typed in (the password reaches disk only hashed).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { HangarError } from '../../core/common/errors.ts';
import { buildCreateRequest, defaultChoices } from '../../core/common/new-vm.ts';
import { connectCore } from '../../core/node/rpc/client.ts';
import type { CoreConnection } from '../../core/node/rpc/client.ts';
import { ensureTestGuest } from '../guest/guest.ts';
import { HangarHarness } from '../helpers/hangar.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
let conn: CoreConnection;

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
  process.env.HANGAR_HOME = h.home;
  await h.ok(['list']);
  conn = await connectCore({ autostart: false });
});

after(async () => {
  conn?.close();
  await h?.cleanup();
});

async function refused(p: Promise<unknown>, code: string, pattern: RegExp): Promise<HangarError> {
  const e = await p.then(() => null, (x: unknown) => x);
  assert.ok(e instanceof HangarError, `expected a HangarError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  assert.match(e.message, pattern);
  return e;
}

const vmFolders = (): string[] => (existsSync(join(h.home, 'vms')) ? readdirSync(join(h.home, 'vms')) : []);

describe('wizard API', () => {
  test('hostInfo: limits and what can run here', async () => {
    const hi = await conn.api.hostInfo();
    assert.equal(hi.memoryBytes, totalmem());
    assert.ok(hi.cpus >= 1);
    assert.ok(hi.freeBytes > 0);
    assert.equal(hi.dataDir, h.home);
    assert.equal(hi.firmware.bios.available, true);
    assert.equal(hi.firmware.uefi.available, true, JSON.stringify(hi.firmware.uefi));
    assert.equal(hi.firmware['uefi-secure'].available, true);
    assert.equal(hi.tpm.available, true, 'swtpm is installed by setup');
    assert.equal(hi.network.user.available, true);
    assert.equal(hi.network.passt.available, true, 'passt is installed by setup');
    assert.equal(hi.pxe.available, true, 'ipxe-qemu is installed by setup');
    assert.equal(hi.cloudInit.available, true);
    if (!hi.network.bridge.available) assert.ok(hi.network.bridge.reason && hi.network.bridge.fix, 'an unavailable bridge says why and how');
  });

  test('osList: generic entries first, the osinfo-db after, without media', async () => {
    const oses = await conn.api.osList();
    assert.deepEqual(oses.slice(0, 4).map((o) => o.id), ['generic-linux', 'generic-windows', 'generic-bsd', 'other']);
    assert.ok(oses.length > 100, `osinfo-db entries: ${oses.length}`);
    assert.ok(oses.some((o) => o.id === 'win11' && o.needsTpm));
    assert.ok(oses.every((o) => !('media' in o)));
  });

  test('inspectPath: ISO detection, disk images, files, folders, and every refusal', async () => {
    const iso = await conn.api.inspectPath(guest.iso, 'iso');
    assert.equal(iso.iso!.detection.os, null, 'the test ISO is unknown to osinfo-db');
    assert.equal(iso.iso!.detection.media.volumeId, 'HANGAR_GUEST');
    assert.equal(iso.iso!.preset.osId, 'other');
    const disk = await conn.api.inspectPath(guest.disk, 'disk');
    assert.equal(disk.disk!.format, 'qcow2');
    assert.ok(disk.disk!.virtualSizeBytes > 0);
    assert.equal((await conn.api.inspectPath(guest.kernel, 'file')).sizeBytes > 0, true);
    assert.equal((await conn.api.inspectPath(h.home, 'directory')).path, h.home);
    const home = process.env.HOME!;
    assert.equal((await conn.api.inspectPath('~', 'directory')).path, home, '~ is the home folder');

    const text = join(h.home, 'notes.txt');
    writeFileSync(text, 'not an image\n'.repeat(4000));
    await refused(conn.api.inspectPath(join(h.home, 'missing.iso'), 'iso'), 'invalid-input', /does not exist/);
    await refused(conn.api.inspectPath(text, 'iso'), 'invalid-input', /not an ISO/);
    await refused(conn.api.inspectPath(h.home, 'iso'), 'invalid-input', /is a folder, not an ISO image/);
    await refused(conn.api.inspectPath(text, 'disk'), 'invalid-input', /does not look like a disk image/);
    await refused(conn.api.inspectPath(text, 'directory'), 'invalid-input', /is not a folder/);
    await refused(conn.api.inspectPath('relative/x.iso', 'iso'), 'invalid-input', /not an absolute path/);
    const empty = join(h.home, 'empty');
    writeFileSync(empty, '');
    await refused(conn.api.inspectPath(empty, 'file'), 'invalid-input', /is empty/);
  });

  test('listDir: folders first, hidden entries left out, refusals named', async () => {
    const dir = join(h.home, 'browse');
    mkdirSync(join(dir, 'b-folder'), { recursive: true });
    writeFileSync(join(dir, 'a.iso'), 'x');
    writeFileSync(join(dir, '.hidden'), 'x');
    const l = await conn.api.listDir(dir);
    assert.equal(l.parent, h.home);
    assert.deepEqual(l.entries, [{ name: 'b-folder', kind: 'dir', sizeBytes: 0 }, { name: 'a.iso', kind: 'file', sizeBytes: 1 }]);
    assert.ok((await conn.api.listDir(dir, { showHidden: true })).entries.some((e) => e.name === '.hidden'));
    assert.equal((await conn.api.listDir('/')).parent, null);
    await refused(conn.api.listDir(join(dir, 'a.iso')), 'invalid-input', /is not a folder/);
    await refused(conn.api.listDir('nope'), 'invalid-input', /not an absolute path/);
  });

  test('previewCreate validates like create, shows the command line, writes nothing; create then makes that VM', async () => {
    const c = { ...defaultChoices(), name: 'pv', isoPath: guest.iso, memoryMiB: 256, diskGiB: 1, firmware: 'uefi' as const, tpm: true, portForwards: 'tcp::20022-:22' };
    const req = buildCreateRequest(c);
    const before = vmFolders();
    const p = await conn.api.previewCreate(req);
    assert.deepEqual(vmFolders(), before, 'preview wrote nothing');
    assert.equal(p.definition.name, 'pv');
    const argv = p.commandLine.join('\n');
    assert.match(argv, /tpm-crb/);
    assert.match(argv, /uefi-vars\.fd/);
    assert.match(argv, /"driver":"ide-cd"/);
    assert.match(argv, /hostfwd/);
    assert.ok((await conn.api.list()).every((v) => v.name !== 'pv'));

    const info = await conn.api.create({ ...req, definition: { ...req.definition, id: p.definition.id } });
    const real = await conn.api.commandLine('pv');
    // Same VM, same command line (MACs are random per create: compare without them).
    const noMac = (a: string[]): string => a.join('\n').replace(/"mac":"[^"]+"/g, '"mac":"X"');
    assert.equal(noMac(real), noMac(p.commandLine));
    assert.equal(info.definition!.disks[0]!.file, join(info.dir, 'disk0.qcow2'));

    // No CPU model in the request: the core picks for the OS and the accelerator (TCG here).
    assert.equal(p.definition.cpu.model, 'max');
    assert.match(argv, /^-cpu\nmax$/m);
    const xp = await conn.api.previewCreate(buildCreateRequest({ ...c, name: 'pv-xp', osId: 'winxp', tpm: false }));
    assert.equal(xp.definition.cpu.model, 'qemu64', 'Windows XP (2001) gets a plain CPU model');
    const chosen = await conn.api.previewCreate(buildCreateRequest({ ...c, name: 'pv-xp', osId: 'winxp', tpm: false, cpuModel: 'Nehalem' }));
    assert.equal(chosen.definition.cpu.model, 'Nehalem', 'a model given is kept');

    const passt = await conn.api.previewCreate(buildCreateRequest({ ...c, name: 'pv-passt', network: 'passt' }));
    assert.match(passt.commandLine.join('\n'), /"type":"stream".*"addr":\{"type":"unix","path":"[^"]+passt0\.sock"\}/);
    assert.doesNotMatch(passt.commandLine.join('\n'), /hostfwd/, 'passt binds the forwards itself');

    await refused(conn.api.previewCreate(buildCreateRequest({ ...c, name: 'PV' })), 'already-exists', /"PV" already exists/);
    const hostMiB = Math.floor(totalmem() / 1024 / 1024);
    const big = await refused(conn.api.previewCreate(buildCreateRequest({ ...c, name: 'huge', memoryMiB: hostMiB + 1024 })), 'invalid-input', /more than this host has/);
    assert.match(big.hint!, /at most/);
    await refused(conn.api.create(buildCreateRequest({ ...c, name: 'huge', memoryMiB: hostMiB + 1024 })), 'invalid-input', /more than this host has/);
    assert.ok((await conn.api.list()).every((v) => v.name !== 'huge'), 'nothing created');
  });

  test('cloud-init typed in the wizard: the core hashes the password; the seed CD-ROM is made', async () => {
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZ1bGx5LWZha2Uta2V5LWZvci10ZXN0aW5nLW9ubHk wizard@test';
    const c = { ...defaultChoices(), name: 'ci', source: 'empty' as const, storage: 'none' as const, memoryMiB: 256,
      cloudInit: { enabled: true, user: 'alice', password: 's3cret-Pass', hostname: 'web-1', sshKey: key } };
    const info = await conn.api.create(buildCreateRequest(c));
    const ci = info.definition!.cloudInit!;
    assert.equal(ci.user, 'alice');
    assert.equal(ci.hostname, 'web-1');
    assert.deepEqual(ci.sshKeys, [key]);
    assert.match(ci.passwordHash!, /^\$6\$/);
    const stored = readFileSync(join(info.dir, 'vm.json'), 'utf8');
    assert.doesNotMatch(stored, /s3cret-Pass/, 'the password itself is never stored');
    const seed = info.definition!.cdroms.find((d) => d.role === 'cloud-init')!;
    assert.ok(existsSync(seed.file!), 'seed ISO made');
    const listing = execFileSync('xorriso', ['-indev', seed.file!, '-ls', '/'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.match(listing, /user-data/);

    await refused(conn.api.create(buildCreateRequest({ ...c, name: 'ci2', cloudInit: { ...c.cloudInit, sshKey: '-----BEGIN OPENSSH PRIVATE KEY-----' } })), 'invalid-input', /PRIVATE key/);
    await refused(conn.api.create(buildCreateRequest({ ...c, name: 'ci3', cloudInit: { ...c.cloudInit, user: '', password: 'x' } })), 'invalid-input', /password needs the user/);
    assert.ok((await conn.api.list()).every((v) => v.name !== 'ci2' && v.name !== 'ci3'));
  });
});
