// The real test guest: a busybox initramfs around the host's Debian kernel, a bootable
// hybrid ISO and a qcow2 disk made from it. Built (and cached outside the repo) by
// tests/guest/build.sh; this module runs that script and hands back the paths.
//
// What a booted guest does (serial console on ttyS0, 115200):
//   - loads its kernel modules, starts acpid (ACPI power button -> clean power off, so
//     QMP `system_powerdown` makes QEMU exit within a second or so),
//   - with a virtio-serial port named org.qemu.guest_agent.0: runs qemu-ga on it (guest-shutdown
//     powers off at once; /etc/os-release names "Hangar Test Guest") and takes a DHCP lease on eth0,
//   - with a NIC (eth0): runs dropbear on port 22 (`dropbear -R -E -p 22`, host keys made on the
//     first connection, log in /var/log/dropbear.log); root logs in with a key written to
//     /root/.ssh/authorized_keys (through the serial console: nothing persists), never a password;
//     the address comes from the agent-time DHCP lease above (or `udhcpc` typed in the shell),
//   - brings hotplugged memory online by itself, movable (DIMMs, virtio-mem blocks; the
//     virtio_mem driver is loaded),
//   - prints the PCI device list between HANGAR-PCI-BEGIN / HANGAR-PCI-END (parsePciBlock),
//   - prints READY_MARKER on its own line right before the first shell prompt (GUEST_PROMPT);
//     input sent after the marker is read by that shell. The shell is respawned on exit.
// In the shell: `hangar-lspci` prints the PCI block again;
//   `udhcpc -i eth0 -s /etc/udhcpc.script -q -n` configures networking (QEMU user net:
//   host reachable as 10.0.2.2); `stty -echo` turns off input echo and line editing.
import { execFile } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const READY_MARKER = 'HANGAR-GUEST-READY';
export const PCI_BEGIN = 'HANGAR-PCI-BEGIN';
export const PCI_END = 'HANGAR-PCI-END';
/** The shell prompt on the guest's serial console. */
export const GUEST_PROMPT = 'guest# ';
/** Kernel command line to use with -kernel/-initrd (the ISO and disk use the same). */
export const GUEST_CMDLINE = 'console=ttyS0 quiet panic=-1';
/** Printed on ttyS0 once the banner is drawn on tty1 (only when the VM has a display adapter). */
export const SCREEN_MARKER = 'HANGAR-SCREEN-READY';
/** The prompt of the shell on the VM's screen (tty1). */
export const TTY1_PROMPT = 'tty1# ';
/** `pointer-watch &` (typed at either shell) prints "HANGAR-POINTER X Y" (0..32767) on ttyS0 per tablet report. */
export const POINTER_PREFIX = 'HANGAR-POINTER';
/** GRUB's menu entry: shown on screen and serial for 3 s (any key stops the countdown). */
export const GRUB_MENU_ENTRY = 'Hangar test guest';
/** Printed by GRUB (ISO/disk boots) before it powers the VM off when booting the kernel failed. */
export const GRUB_BOOT_FAILED_MARKER = 'HANGAR-GRUB-BOOT-FAILED';

export const BUILD_SCRIPT = fileURLToPath(new URL('./build.sh', import.meta.url));

export interface TestGuest {
  /** bzImage (copy of the host's /boot/vmlinuz-<version>). */
  kernel: string;
  /** gzip'd newc cpio initramfs. */
  initrd: string;
  /** Bootable hybrid ISO (BIOS, plus UEFI when grub-efi-amd64-bin is installed). Boot it read-only. */
  iso: string;
  /** qcow2 made from the ISO; boots as a hard disk. Shared by all tests: never open it
   *  writable — use snapshot=on or a qcow2 overlay with it as backing file. */
  disk: string;
  cacheDir: string;
}

export interface PciDevice {
  /** e.g. "0000:00:03.0" */
  addr: string;
  /** lowercase hex without 0x, e.g. "1af4" */
  vendor: string;
  /** lowercase hex without 0x, e.g. "1000" */
  device: string;
  /** 6 hex digits class/subclass/prog-if, e.g. "020000" */
  cls: string;
  /** bound driver (e.g. "virtio-pci", "e1000", "ahci", "ata_piix"), null when unbound */
  driver: string | null;
}

/** Earlier name of PciDevice. */
export type PciLine = PciDevice;

/** Cache dir used by build.sh: $HANGAR_GUEST_CACHE, else $XDG_CACHE_HOME/hangar-test-guest,
 *  else ~/.cache/hangar-test-guest. */
export function guestCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HANGAR_GUEST_CACHE) return path.resolve(env.HANGAR_GUEST_CACHE);
  const base = env.XDG_CACHE_HOME || path.join(env.HOME || homedir(), '.cache');
  return path.resolve(base, 'hangar-test-guest');
}

const BUILD_TIMEOUT_MS = 15 * 60_000;
const pending = new Map<string, Promise<TestGuest>>();

/**
 * Builds the test guest if needed (fast no-op when the cache is up to date) and returns
 * absolute paths. Throws with build.sh's stderr when it fails, e.g. with the
 * `apt-get install ...` line for missing packages. Never skips.
 */
export function ensureTestGuest(): Promise<TestGuest> {
  const cacheDir = guestCacheDir();
  let p = pending.get(cacheDir);
  if (!p) {
    p = build(cacheDir);
    pending.set(cacheDir, p);
    p.catch(() => pending.delete(cacheDir));
  }
  return p;
}

function runBuildScript(cacheDir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [BUILD_SCRIPT],
      {
        env: { ...process.env, HANGAR_GUEST_CACHE: cacheDir },
        encoding: 'utf8',
        timeout: BUILD_TIMEOUT_MS,
        maxBuffer: 16 * 1024 * 1024,
        windowsHide: true,
      },
      (err, stdout, stderr) => {
        if (err) {
          const how = err.killed ? `killed (${err.signal ?? 'timeout'})` : `exit code ${String(err.code)}`;
          reject(new Error(`test guest build failed: ${BUILD_SCRIPT} ${how}\n${stderr.trim() || err.message}`));
          return;
        }
        resolve(stdout);
      },
    );
  });
}

async function build(cacheDir: string): Promise<TestGuest> {
  const stdout = await runBuildScript(cacheDir);
  const manifestPath = stdout.trim().split('\n').pop() ?? '';
  if (!manifestPath.endsWith('manifest.json')) {
    throw new Error(`test guest build: unexpected output from ${BUILD_SCRIPT}: ${JSON.stringify(stdout)}`);
  }
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Record<string, unknown>;
  const str = (key: string): string => {
    const v = manifest[key];
    if (typeof v !== 'string' || v === '') throw new Error(`test guest manifest ${manifestPath}: missing "${key}"`);
    return v;
  };
  const guest: TestGuest = {
    kernel: str('kernel'),
    initrd: str('initrd'),
    iso: str('iso'),
    disk: str('disk'),
    cacheDir: str('cacheDir'),
  };
  await Promise.all([guest.kernel, guest.initrd, guest.iso, guest.disk].map((f) => access(f)));
  return guest;
}

// eslint-disable-next-line no-control-regex
const ANSI_RE = /\x1b\[[0-9;?]*[A-Za-z]/g;
// The driver is the rest of the line: some have spaces ("i6300ESB timer").
const PCI_LINE_RE = /^([0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) ([0-9a-f]{4}):([0-9a-f]{4}) ([0-9a-f]{6}) (\S(?:.*\S)?)$/i;

/**
 * Parses the PCI block printed at boot and by `hangar-lspci`:
 *   HANGAR-PCI-BEGIN
 *   0000:00:03.0 1af4:1000 020000 virtio-pci
 *   HANGAR-PCI-END
 * Accepts raw serial output (CRLF, terminal escape sequences, other lines around it).
 * When several complete blocks are present the LAST one is returned (the most recent
 * state). Throws when there is no complete block or a line inside it is malformed.
 */
export function parsePciBlock(text: string): PciDevice[] {
  const lines = text.replace(ANSI_RE, '').split(/\r?\n|\r/).map((l) => l.trim());
  const end = lines.lastIndexOf(PCI_END);
  const begin = end < 0 ? -1 : lines.lastIndexOf(PCI_BEGIN, end);
  if (begin < 0) throw new Error(`no complete ${PCI_BEGIN} ... ${PCI_END} block in guest output`);
  const devices: PciDevice[] = [];
  for (const line of lines.slice(begin + 1, end)) {
    if (line === '') continue;
    const m = PCI_LINE_RE.exec(line);
    if (!m) throw new Error(`malformed line in guest PCI block: ${JSON.stringify(line)}`);
    const [, addr, vendor, device, cls, driver] = m as unknown as [string, string, string, string, string, string];
    devices.push({
      addr: addr.toLowerCase(),
      vendor: vendor.toLowerCase(),
      device: device.toLowerCase(),
      cls: cls.toLowerCase(),
      driver: driver === 'none' ? null : driver,
    });
  }
  return devices;
}
