// A real libvirtd for the tests: started here when nothing runs one (this machine has no service
// manager: `virtlogd -d` then `libvirtd -d`, as root), and the test guest's files placed where
// libvirt's QEMU user can read them. Tests fail, never skip, when libvirt cannot run: the error
// says why and how to fix it.
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GUEST_CMDLINE } from '../guest/guest.ts';
import type { TestGuest } from '../guest/guest.ts';

const run = promisify(execFile);

export const LIBVIRT_URI = 'qemu:///system';
const env = { ...process.env, LC_ALL: 'C' };

/** virsh against qemu:///system; rejects with virsh's stderr. */
export async function virsh(args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    return (await run('virsh', ['-c', LIBVIRT_URI, ...args], { env, timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`virsh ${args.join(' ')} failed: ${(err.stderr ?? '').trim() || err.message}`, { cause: e });
  }
}

async function answers(): Promise<string | null> {
  try {
    await run('virsh', ['-c', LIBVIRT_URI, 'version'], { env, timeout: 10_000 });
    return null;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return (err.stderr ?? '').trim() || err.message;
  }
}

async function running(name: string): Promise<boolean> {
  try {
    await run('pgrep', ['-x', name]);
    return true;
  } catch {
    return false;
  }
}

let ensured: Promise<void> | null = null;

/** Makes sure qemu:///system answers, starting virtlogd and libvirtd when none runs. */
export function ensureLibvirtd(): Promise<void> {
  ensured ??= start().catch((e: unknown) => {
    ensured = null;
    throw e;
  });
  return ensured;
}

async function start(): Promise<void> {
  if ((await answers()) === null) {
    // libvirtd up but virtlogd gone (killed, crashed): every domain start would fail with
    // "Failed to connect socket to '/var/run/libvirt/virtlogd-sock'". Start it again.
    if (process.getuid?.() === 0 && existsSync('/usr/sbin/virtlogd') && !(await running('virtlogd'))) {
      await run('/usr/sbin/virtlogd', ['-d'], { env, timeout: 30_000 }).catch(() => {});
    }
    return;
  }
  for (const f of ['/usr/bin/virsh', '/usr/sbin/libvirtd', '/usr/sbin/virtlogd']) {
    if (!existsSync(f)) {
      throw new Error(`libvirt is not installed (${f} is missing): run scripts/setup.sh --test, or apt-get install libvirt-daemon-system libvirt-clients`);
    }
  }
  if (process.getuid?.() !== 0) {
    throw new Error('no libvirtd answers on qemu:///system, and the tests cannot start one without root: start it (systemctl start libvirtd) or run the tests as root');
  }
  // No systemd here to socket-activate them. virtlogd first: libvirtd hands QEMU's stdout/stderr
  // (and <log file=...> of serial ports) to it, and a start fails without it. Two test files
  // starting them at once is harmless: the second daemon finds the pidfile locked and exits.
  const notes: string[] = [];
  for (const daemon of ['virtlogd', 'libvirtd']) {
    if (await running(daemon)) continue;
    try {
      await run(`/usr/sbin/${daemon}`, ['-d'], { env, timeout: 30_000 });
    } catch (e) {
      notes.push(`${daemon} -d: ${((e as { stderr?: string }).stderr ?? (e as Error).message).trim()}`);
    }
  }
  let why = '';
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    const err = await answers();
    if (err === null) return;
    why = err;
    await new Promise((r) => setTimeout(r, 200));
  }
  const log = await readFile('/var/log/libvirt/libvirtd.log', 'utf8').then((t) => t.split('\n').slice(-15).join('\n'), () => '(no /var/log/libvirt/libvirtd.log)');
  throw new Error(`libvirtd did not answer on ${LIBVIRT_URI} within 30 s: ${why}\n${notes.join('\n')}\nlibvirtd log tail:\n${log}`);
}

/**
 * Copies the test guest's kernel and initrd into a fresh directory under /var/tmp (mode 0755):
 * libvirtd runs QEMU as libvirt-qemu (qemu.conf's default user on Debian), which cannot enter
 * root's home where the guest cache lives.
 */
export async function libvirtGuestFiles(guest: TestGuest): Promise<{ dir: string; kernel: string; initrd: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp('/var/tmp/hangar-libvirt-');
  await chmod(dir, 0o755);
  const kernel = join(dir, 'vmlinuz');
  const initrd = join(dir, 'initrd.img');
  await copyFile(guest.kernel, kernel);
  await copyFile(guest.initrd, initrd);
  await chmod(kernel, 0o644);
  await chmod(initrd, 0o644);
  return { dir, kernel, initrd, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');
}

/**
 * Domain XML for the test guest under TCG (no usable KVM here): kernel + initrd boot, 256 MiB,
 * ACPI (the guest's acpid powers off on the power button), the console on a pty, its output
 * also logged to `serialLog` (written by virtlogd) to see READY_MARKER.
 */
export function testDomainXml(o: { name: string; kernel: string; initrd: string; serialLog: string; memoryMiB?: number }): string {
  return `<domain type='qemu'>
  <name>${xmlEscape(o.name)}</name>
  <memory unit='MiB'>${o.memoryMiB ?? 256}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${xmlEscape(o.kernel)}</kernel>
    <initrd>${xmlEscape(o.initrd)}</initrd>
    <cmdline>${xmlEscape(GUEST_CMDLINE)}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='pty'>
      <log file='${xmlEscape(o.serialLog)}' append='on'/>
      <target port='0'/>
    </serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>
`;
}

/** Destroys and undefines every domain whose name starts with prefix (a test's after hook). */
export async function removeDomains(prefix: string): Promise<void> {
  const names = (await virsh(['list', '--all', '--name'])).split('\n').map((l) => l.trim()).filter((n) => n.startsWith(prefix));
  for (const n of names) {
    await virsh(['destroy', n]).catch(() => {});
    await virsh(['undefine', n, '--managed-save', '--snapshots-metadata', '--nvram']).catch(() => {});
  }
}

/** A name prefix no other test run uses (domains live in the shared system libvirtd). */
export function testPrefix(what: string): string {
  return `hangar-test-${what}-${process.pid}-`;
}
