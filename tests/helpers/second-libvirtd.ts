// A second libvirtd on this machine, for libvirt-to-libvirt live migration: libvirt refuses to
// migrate to a daemon with the same host UUID, and a privileged libvirtd keeps its state in fixed
// paths (/etc/libvirt, /run/libvirt, /var/lib/libvirt, ...). So this one runs in its own mount
// namespace with fresh directories over those paths, its own host_uuid, and its sockets in a
// directory both namespaces see: reached as qemu+unix:///system?socket=DIR/sock/libvirt-sock. The
// QEMUs it starts share this machine's network and /var/tmp, like two hosts on shared storage.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { exited, sleep } from './hangar.ts';

const run = promisify(execFile);
const env = { ...process.env, LC_ALL: 'C' };

export interface SecondLibvirtd {
  /** The URI Hangar and virsh use for it. */
  uri: string;
  hostUuid: string;
  /** virsh against it; rejects with virsh's stderr. */
  virsh(args: string[]): Promise<string>;
  /** Destroys its domains, stops the daemons, removes its directories. */
  stop(): Promise<void>;
}

function pidIn(file: string): number | null {
  if (!existsSync(file)) return null;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

export async function startSecondLibvirtd(): Promise<SecondLibvirtd> {
  if (process.getuid?.() !== 0) {
    throw new Error('a second libvirtd (for libvirt-to-libvirt migration) needs root: run the tests as root');
  }
  for (const f of ['/usr/bin/unshare', '/usr/sbin/libvirtd', '/usr/sbin/virtlogd']) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run scripts/setup.sh --test (util-linux, libvirt-daemon-system)`);
  }
  const dir = await mkdtemp('/tmp/hangar-lv2-');
  for (const d of ['run', 'lib', 'cache', 'log', 'sock', 'etc']) await mkdir(join(dir, d));
  const hostUuid = randomUUID();
  // Its own /etc/libvirt: the first daemon's settings (qemu.conf's user, security driver, ...) but
  // none of its persistent domains or networks, which live there too. Sharing them would let the
  // two daemons load, write and undefine the same definition files.
  for (const f of await readdir('/etc/libvirt')) {
    if (f.endsWith('.conf')) await copyFile(join('/etc/libvirt', f), join(dir, 'etc', f));
  }
  await writeFile(join(dir, 'etc', 'libvirtd.conf'), `unix_sock_dir = "${dir}/sock"\nhost_uuid = "${hostUuid}"\n`);
  const libvirtdPid = join(dir, 'libvirtd.pid');
  const virtlogdPid = join(dir, 'virtlogd.pid');
  // Inside the namespace: a private /run (pidfiles, virtlogd's socket, the QEMU driver's state),
  // its own /etc/libvirt, and empty /var/lib, /var/cache and /var/log of libvirt.
  const script = [
    'set -e',
    'mount -t tmpfs tmpfs /run',
    'mkdir -p /run/libvirt /run/lock',
    `mount --bind ${dir}/etc /etc/libvirt`,
    `mount --bind ${dir}/lib /var/lib/libvirt`,
    `mount --bind ${dir}/cache /var/cache/libvirt`,
    `mount --bind ${dir}/log /var/log/libvirt`,
    'mkdir -p /var/lib/libvirt/qemu /var/log/libvirt/qemu',
    `virtlogd -d -p ${virtlogdPid}`,
    `libvirtd -d -f /etc/libvirt/libvirtd.conf -p ${libvirtdPid}`,
  ].join('\n');
  const uri = `qemu+unix:///system?socket=${dir}/sock/libvirt-sock`;
  const virsh = async (args: string[]): Promise<string> => {
    try {
      return (await run('virsh', ['-c', uri, ...args], { env, timeout: 60_000 })).stdout;
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`virsh -c ${uri} ${args.join(' ')} failed: ${(err.stderr ?? '').trim() || err.message}`, { cause: e });
    }
  };
  const stop = async (): Promise<void> => {
    const names = await virsh(['list', '--all', '--name']).then((t) => t.split('\n').map((l) => l.trim()).filter(Boolean), () => []);
    for (const n of names) {
      await virsh(['destroy', n]).catch(() => {});
      await virsh(['undefine', n, '--nvram']).catch(() => {});
    }
    for (const file of [libvirtdPid, virtlogdPid]) {
      const pid = pidIn(file);
      if (pid === null || exited(pid)) continue;
      process.kill(pid, 'SIGTERM');
      for (const deadline = Date.now() + 10_000; !exited(pid) && Date.now() < deadline;) await sleep(100);
      if (!exited(pid)) process.kill(pid, 'SIGKILL');
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await run('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { env, timeout: 30_000 });
  } catch (e) {
    await stop().catch(() => {});
    throw new Error(`could not start a second libvirtd in its own mount namespace: ${((e as { stderr?: string }).stderr ?? (e as Error).message).trim()}`, { cause: e });
  }
  let why = '';
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    try {
      const caps = await virsh(['capabilities']);
      if (!caps.includes(`<uuid>${hostUuid}</uuid>`)) throw new Error(`the second libvirtd did not take its host UUID ${hostUuid}`);
      return { uri, hostUuid, virsh, stop };
    } catch (e) {
      why = (e as Error).message;
      if (why.includes('host UUID')) break;
      await sleep(200);
    }
  }
  await stop().catch(() => {});
  throw new Error(`the second libvirtd did not answer on ${uri} within 30 s: ${why}`);
}
