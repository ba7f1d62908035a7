// cloud-init NoCloud seed: user-data + meta-data on an ISO9660 volume labelled "cidata", made
// with the field's tool (xorriso in genisoimage mode) and attached as a read-only CD-ROM.
// https://cloudinit.readthedocs.io/en/latest/reference/datasources/nocloud.html
import { execFile } from 'node:child_process';
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { HangarError } from '../../common/errors.ts';
import { HOSTNAME_RE, SSH_PUBKEY_RE, USERNAME_RE } from '../../common/model.ts';
import type { CdromDefinition, CloudInitDefinition, VmDefinition } from '../../common/model.ts';
import { requireBinary } from '../host/binaries.ts';

export const SEED_DIR = 'cloud-init';
export const SEED_FILE = 'seed.iso';
export const SEED_CDROM_ID = 'cidata';
export const SEED_VOLUME_ID = 'cidata';

export function seedPath(vmDir: string): string {
  return join(vmDir, SEED_DIR, SEED_FILE);
}

/** The `#cloud-config` user-data for a request (YAML from the yaml package, never string pasting). */
export function userData(ci: CloudInitDefinition): string {
  const cfg: Record<string, unknown> = {};
  if (ci.hostname) {
    cfg.hostname = ci.hostname;
    cfg.preserve_hostname = false;
  }
  if (ci.user) {
    const user: Record<string, unknown> = {
      name: ci.user,
      sudo: 'ALL=(ALL) NOPASSWD:ALL',
      shell: '/bin/bash',
      lock_passwd: false,
    };
    if (ci.passwordHash) user.passwd = ci.passwordHash;
    if (ci.sshKeys.length) user.ssh_authorized_keys = [...ci.sshKeys];
    // 'default' keeps the distro's own default user too, as cloud images expect.
    cfg.users = ['default', user];
  } else if (ci.sshKeys.length) {
    cfg.ssh_authorized_keys = [...ci.sshKeys]; // for the image's default user
  }
  if (ci.passwordHash) cfg.ssh_pwauth = true;
  return `#cloud-config\n${stringify(cfg, { lineWidth: 0 })}`;
}

/** meta-data: the instance id (a new id makes cloud-init run again) and the host name. */
export function metaData(def: Pick<VmDefinition, 'id' | 'name' | 'cloudInit'>): string {
  const md: Record<string, string> = { 'instance-id': def.id };
  if (def.cloudInit?.hostname) md['local-hostname'] = def.cloudInit.hostname;
  return stringify(md);
}

/** The CD-ROM entry that carries the seed (q35 / pc: on the IDE-compatible bus every OS reads). */
export function seedCdrom(vmDir: string): CdromDefinition {
  return { id: SEED_CDROM_ID, file: seedPath(vmDir), bus: 'ide', role: 'cloud-init' };
}

/** Adds the seed CD-ROM to a raw (not yet parsed) definition when it asks for cloud-init. */
export function withSeedCdrom(input: Record<string, unknown>, vmDir: string): Record<string, unknown> {
  if (!input.cloudInit) return input;
  const cdroms = Array.isArray(input.cdroms) ? [...(input.cdroms as Record<string, unknown>[])] : [];
  if (cdroms.some((c) => c.role === 'cloud-init')) return input;
  let id = SEED_CDROM_ID;
  for (let n = 1; cdroms.some((c) => c.id === id); n++) id = `${SEED_CDROM_ID}${n}`;
  return { ...input, cdroms: [...cdroms, { ...seedCdrom(vmDir), id }] };
}

function run(bin: string, args: string[], cwd?: string, input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(bin, args, { cwd, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new HangarError('io-error', `${bin} ${args[0] ?? ''} failed: ${(stderr || err.message).trim()}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Writes <vmdir>/cloud-init/{user-data,meta-data} and builds seed.iso from them (replacing an old one). */
export async function buildSeedIso(def: VmDefinition, vmDir: string): Promise<string> {
  if (!def.cloudInit) throw new HangarError('internal', `VM "${def.name}" has no cloud-init request`);
  const xorriso = requireBinary('xorriso');
  const dir = join(vmDir, SEED_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // The files hold a password hash: readable by the owner only.
  await writeFile(join(dir, 'user-data'), userData(def.cloudInit), { mode: 0o600 });
  await writeFile(join(dir, 'meta-data'), metaData(def), { mode: 0o600 });
  const iso = join(dir, SEED_FILE);
  await rm(iso, { force: true });
  await run(xorriso, ['-as', 'genisoimage', '-output', iso, '-volid', SEED_VOLUME_ID, '-joliet', '-rock', 'user-data', 'meta-data'], dir);
  return iso;
}

/** At start: the seed must exist; a missing one is rebuilt from the definition. Returns a note when it was. */
export async function ensureSeedIso(def: VmDefinition, vmDir: string): Promise<string | undefined> {
  if (!def.cloudInit) return undefined;
  const seed = def.cdroms.find((c) => c.role === 'cloud-init');
  if (!seed?.file) return undefined;
  try {
    await access(seed.file);
    return undefined;
  } catch {
    await buildSeedIso(def, vmDir);
    return `the cloud-init seed ${seed.file} was missing; rebuilt from the VM definition`;
  }
}

// ---- the request as a user types it ----------------------------------------------------

export interface CloudInitInput {
  user?: string;
  password?: string;
  /** Paths of OpenSSH public key files. */
  sshKeyFiles?: string[];
  hostname?: string;
}

/** SHA-512 crypt ($6$) of a password, by openssl (`openssl passwd -6 -stdin`): the password goes through stdin, never argv. */
export async function hashPassword(password: string): Promise<string> {
  if (password === '') throw new HangarError('invalid-input', 'cloud-init: the password is empty', 'give password=SOMETHING, or leave password= out and use ssh-key=FILE');
  if (/[\r\n]/.test(password)) throw new HangarError('invalid-input', 'cloud-init: the password contains a line break', 'choose a password on one line');
  let openssl: string;
  try {
    openssl = requireBinary('openssl');
  } catch {
    throw new HangarError('host-missing', 'cloud-init: hashing the password needs openssl, which is not installed', 'sudo apt-get install -y openssl');
  }
  const out = (await run(openssl, ['passwd', '-6', '-stdin'], undefined, password + '\n')).trim();
  if (!out.startsWith('$6$')) throw new HangarError('internal', `openssl passwd -6 printed no SHA-512 hash: ${out.slice(0, 20)}`);
  return out;
}

/** Reads and checks one public key file: one OpenSSH key line (the first non-comment line). */
export async function readSshPublicKey(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new HangarError('invalid-input', `cloud-init: cannot read the ssh key file ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'give the path of a public key, e.g. ssh-key=~/.ssh/id_ed25519.pub');
  }
  if (text.includes('PRIVATE KEY')) {
    throw new HangarError('invalid-input', `cloud-init: ${path} is a PRIVATE key; it must never leave this machine`, `give the public key instead: ssh-key=${path.endsWith('.pub') ? path : path + '.pub'}`);
  }
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (lines.length === 0) throw new HangarError('invalid-input', `cloud-init: the ssh key file ${path} is empty`, 'make a key with ssh-keygen -t ed25519 and give the .pub file');
  const bad = lines.find((l) => !SSH_PUBKEY_RE.test(l));
  if (bad !== undefined) {
    throw new HangarError('invalid-input', `cloud-init: ${path} does not look like an OpenSSH public key (expected "ssh-ed25519 AAAA... comment", got "${bad.slice(0, 40)}")`,
      'give a .pub file made by ssh-keygen; convert other formats with ssh-keygen -i -f FILE');
  }
  return lines[0]!;
}

export function checkHostname(h: string): string {
  if (!HOSTNAME_RE.test(h)) {
    throw new HangarError('invalid-input', `cloud-init: "${h}" is not a valid host name`, 'use 1-63 letters, digits and "-", not starting or ending with "-" (RFC 1123), e.g. hostname=web-1');
  }
  return h;
}

export function checkUser(u: string): string {
  if (!USERNAME_RE.test(u)) {
    throw new HangarError('invalid-input', `cloud-init: "${u}" is not a valid user name`, 'use lower-case letters, digits, "_" and "-", starting with a letter (at most 32), e.g. user=alice');
  }
  return u;
}

/** Turns what the user typed into the stored request: the password hashed, key files read. */
export async function resolveCloudInit(input: CloudInitInput): Promise<CloudInitDefinition> {
  if (input.user === undefined && input.password === undefined && !input.sshKeyFiles?.length && input.hostname === undefined) {
    throw new HangarError('invalid-input', '--cloud-init needs at least one setting', 'e.g. --cloud-init user=alice,ssh-key=~/.ssh/id_ed25519.pub,hostname=web-1');
  }
  if (input.password !== undefined && input.user === undefined) {
    throw new HangarError('invalid-input', 'cloud-init: a password needs the user it is for', 'add user=NAME, e.g. --cloud-init user=alice,password=...');
  }
  const ci: CloudInitDefinition = { sshKeys: [] };
  if (input.user !== undefined) ci.user = checkUser(input.user);
  if (input.hostname !== undefined) ci.hostname = checkHostname(input.hostname);
  for (const f of input.sshKeyFiles ?? []) ci.sshKeys.push(await readSshPublicKey(f));
  if (input.password !== undefined) ci.passwordHash = await hashPassword(input.password);
  return ci;
}
