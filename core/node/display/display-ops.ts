// The running VM's screen, keyboard and VNC socket, for the API (screenshot, send keys) and the
// display channels. QEMU writes screendumps itself: into the VM's private runtime dir, read
// back and removed at once.
import { randomBytes } from 'node:crypto';
import { readFile, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Screenshot } from '../../common/api.ts';
import { displayCapabilities } from '../../common/display.ts';
import { HangarError, isHangarError } from '../../common/errors.ts';
import type { VmInstance } from '../service/vm-instance.ts';

/** The width and height of a PNG, from its IHDR chunk. */
export function pngSize(png: Buffer): { width: number; height: number } {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (png.length < 24 || !png.subarray(0, 8).equals(sig) || png.toString('latin1', 12, 16) !== 'IHDR') {
    throw new HangarError('internal', 'QEMU\'s screendump is not a PNG file');
  }
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

/** A screenshot or a key press is answered at once by a live QEMU: longer means it is stopped or hung. */
const INTERACTIVE_QMP_TIMEOUT_MS = 10_000;

function notResponding(vm: VmInstance, what: string, e: HangarError): HangarError {
  return new HangarError('timeout', `VM "${vm.name}" is not responding: ${what} timed out (${e.message})`,
    `QEMU may be stopped (SIGSTOP) or hung: wait, or force it off with \`hangar destroy ${vm.name}\``);
}

function requireVideo(vm: VmInstance, what: string): void {
  const def = vm.definition;
  if (def.video.model === 'none') {
    throw new HangarError('invalid-state', `VM "${vm.name}" has no display: ${what} needs a video device`,
      `add one (\`hangar device add ${vm.name} video model=vga\`, or "Add a display" in the Display tab) and restart the VM; use \`hangar console ${vm.name}\` for its serial console`);
  }
}

export async function takeScreenshot(vm: VmInstance): Promise<Screenshot> {
  const qmp = vm.liveQmp('a screenshot');
  requireVideo(vm, 'a screenshot');
  const file = join(vm.paths.dir, `screen-${randomBytes(6).toString('hex')}.png`);
  try {
    try {
      await qmp.execute('screendump', { filename: file, format: 'png' }, { timeoutMs: INTERACTIVE_QMP_TIMEOUT_MS });
    } catch (e) {
      if (isHangarError(e) && e.code === 'timeout') throw notResponding(vm, 'a screenshot', e);
      throw new HangarError('qmp-error', `QEMU could not take a screenshot of VM "${vm.name}": ${(e as Error).message}`,
        'the running VM may have been started without its video device: restart it to apply the definition');
    }
    const png = await readFile(file);
    return { pngBase64: png.toString('base64'), ...pngSize(png), takenAt: new Date().toISOString() };
  } finally {
    await unlink(file).catch(() => {});
  }
}

export async function sendKeys(vm: VmInstance, keys: string[]): Promise<void> {
  const qmp = vm.liveQmp('sending keys');
  try {
    await qmp.execute('send-key', { keys: keys.map((k) => ({ type: 'qcode', data: k })) }, { timeoutMs: INTERACTIVE_QMP_TIMEOUT_MS });
  } catch (e) {
    if (isHangarError(e) && e.code === 'timeout') throw notResponding(vm, `sending ${keys.join('-')}`, e);
    const msg = (e as Error).message;
    if (/does not accept value|Invalid parameter/i.test(msg)) {
      throw new HangarError('invalid-input', `QEMU does not know a key in "${keys.join('-')}": ${msg}`,
        'use QEMU key names (qcodes) joined by "-", e.g. ctrl-alt-delete, ctrl-alt-f2, print, alt-sysrq, shift-a');
    }
    throw new HangarError('qmp-error', `QEMU could not send ${keys.join('-')} to VM "${vm.name}": ${msg}`);
  }
}

/** Connects to the running VM's VNC server (one connection per viewer: QEMU shares the session). */
export async function connectVnc(vm: VmInstance): Promise<Socket> {
  vm.liveQmp('the display');
  const caps = displayCapabilities(vm.definition);
  if (!caps.vnc) throw new HangarError('invalid-state', `VM "${vm.name}" has no display: ${caps.reason}`, caps.fix);
  return new Promise((resolve, reject) => {
    const sock = connect(vm.paths.vncSocket);
    sock.once('connect', () => { sock.off('error', reject); resolve(sock); });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
        ? new HangarError('invalid-state', `VM "${vm.name}" runs without a VNC server: it was started before its display was added`, `restart it (\`hangar reboot ${vm.name}\` applies pending changes) to get its screen`)
        : new HangarError('io-error', `cannot connect to the VNC server of VM "${vm.name}": ${e.message}`));
    });
  });
}
