// cloud-init NoCloud seed: user-data/meta-data content and the validation of --cloud-init.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { HangarError } from '../../core/common/errors.ts';
import { parseDefinition } from '../../core/common/definition.ts';
import { metaData, resolveCloudInit, userData, withSeedCdrom } from '../../core/node/cloud-init/seed.ts';
import { parseCloudInit } from '../../core/node/cli/create-args.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMpElLhPGQiEyS6SbJAXrmZdi6UF1NQaT9FXpQWi5Hqm alice@laptop';
const HASH = '$6$Qc0FyvW.tNRsaZ0h$z0r830t/YAnQh2/5RC1kz04qe8rCzwaqQ7IiI8aEIJ/mIwsQVCtL90B8ue7uqNJVUBsze9nGhR.PUcxFJOcsY1';
const ID = '6f1c2a7e-3b2d-4c1e-9a8b-1234567890ab';

function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'hci-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

async function rejectsWith(p: Promise<unknown>, message: RegExp, hint: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof HangarError, String(e));
    assert.match(e.message, message);
    assert.match(e.hint ?? '', hint);
    return true;
  });
}

test('user-data: #cloud-config with hostname, the user, sudo, shell, hash, keys and ssh_pwauth', () => {
  const text = userData({ user: 'alice', passwordHash: HASH, sshKeys: [KEY], hostname: 'web-1' });
  assert.ok(text.startsWith('#cloud-config\n'));
  const cfg = parseYaml(text) as Record<string, unknown>;
  assert.equal(cfg.hostname, 'web-1');
  assert.equal(cfg.ssh_pwauth, true);
  const users = cfg.users as unknown[];
  assert.equal(users[0], 'default');
  assert.deepEqual(users[1], {
    name: 'alice', sudo: 'ALL=(ALL) NOPASSWD:ALL', shell: '/bin/bash', lock_passwd: false, passwd: HASH, ssh_authorized_keys: [KEY],
  });
});

test('user-data: keys without a user go to the image default user; no password means no ssh_pwauth', () => {
  const cfg = parseYaml(userData({ sshKeys: [KEY] })) as Record<string, unknown>;
  assert.deepEqual(cfg.ssh_authorized_keys, [KEY]);
  assert.equal(cfg.users, undefined);
  assert.equal(cfg.ssh_pwauth, undefined);
});

test('user-data: YAML-special text is quoted by the yaml library, not pasted', () => {
  const cfg = parseYaml(userData({ sshKeys: ['ssh-ed25519 AAAA #not: a comment'], hostname: 'h' })) as Record<string, unknown>;
  assert.deepEqual(cfg.ssh_authorized_keys, ['ssh-ed25519 AAAA #not: a comment']);
});

test('meta-data: instance-id is the VM id, local-hostname the host name', () => {
  assert.deepEqual(parseYaml(metaData({ id: ID, name: 'x', cloudInit: { sshKeys: [], hostname: 'web-1' } })), { 'instance-id': ID, 'local-hostname': 'web-1' });
});

test('resolveCloudInit hashes the password with SHA-512 crypt and never keeps it', async () => {
  await withTmp(async (dir) => {
    writeFileSync(join(dir, 'k.pub'), `# my key\n${KEY}\n`);
    const ci = await resolveCloudInit({ user: 'alice', password: 'secret', sshKeyFiles: [join(dir, 'k.pub')], hostname: 'seedtest' });
    assert.match(ci.passwordHash!, /^\$6\$[^$]+\$[./A-Za-z0-9]{86}$/);
    assert.deepEqual(ci.sshKeys, [KEY]);
    assert.ok(!JSON.stringify(ci).includes('secret'));
  });
});

test('--cloud-init parses user,password,ssh-key,hostname (keys repeat)', async () => {
  await withTmp(async (dir) => {
    writeFileSync(join(dir, 'a.pub'), KEY + '\n');
    writeFileSync(join(dir, 'b.pub'), KEY.replace('alice@laptop', 'bob') + '\n');
    const ci = await parseCloudInit(`user=alice,hostname=h1,ssh-key=${dir}/a.pub,ssh-key=${dir}/b.pub`);
    assert.equal(ci.user, 'alice');
    assert.equal(ci.hostname, 'h1');
    assert.equal((ci.sshKeys as string[]).length, 2);
  });
});

test('validation errors name the problem and the fix', async () => {
  await rejectsWith(parseCloudInit(''), /at least one setting/, /user=alice/);
  await rejectsWith(parseCloudInit('user=alice,pasword=x'), /unknown option "pasword"/, /password/);
  await rejectsWith(parseCloudInit('hostname=-bad-'), /not a valid host name/, /RFC 1123/);
  await rejectsWith(parseCloudInit('hostname=a.b'), /not a valid host name/, /RFC 1123/);
  await rejectsWith(parseCloudInit('user=Alice'), /not a valid user name/, /lower-case/);
  await rejectsWith(parseCloudInit('password=x'), /needs the user/, /user=NAME/);
  await rejectsWith(parseCloudInit('user=alice,password='), /password is empty/, /ssh-key/);
  await rejectsWith(parseCloudInit('ssh-key=/nonexistent/k.pub'), /cannot read the ssh key file/, /public key/);
  await withTmp(async (dir) => {
    writeFileSync(join(dir, 'id'), '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n');
    await rejectsWith(parseCloudInit(`ssh-key=${dir}/id`), /PRIVATE key/, /id\.pub/);
    writeFileSync(join(dir, 'junk.pub'), 'hello world\n');
    await rejectsWith(parseCloudInit(`ssh-key=${dir}/junk.pub`), /does not look like an OpenSSH public key/, /ssh-keygen/);
  });
});

test('the definition keeps only the hash and gets a read-only seed CD-ROM marked cloud-init', () => {
  const input = withSeedCdrom({ name: 'ci', cloudInit: { user: 'alice', passwordHash: HASH, sshKeys: [KEY] }, cdroms: [{ id: 'cidata', file: '/x.iso' }] }, '/vms/' + ID);
  const def = parseDefinition({ ...input, version: 1, id: ID });
  const seed = def.cdroms.find((c) => c.role === 'cloud-init');
  assert.equal(seed?.file, `/vms/${ID}/cloud-init/seed.iso`);
  assert.equal(seed?.id, 'cidata1', 'a free id next to the user\'s own CD-ROM');
  assert.throws(() => parseDefinition({ name: 'x', version: 1, id: ID, cloudInit: { passwordHash: 'secret' } }), /SHA-512 crypt hash/);
  assert.throws(() => parseDefinition({ name: 'x', version: 1, id: ID, cloudInit: {} }), /cloudInit is empty/);
});
