// `hangar screenshot`, `hangar send-key` and `hangar display` (virt-viewer's habits on a CLI).
import { createServer } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { CoreApi, VmInfo } from '../../common/api.ts';
import { displayCapabilities, parseKeyCombo } from '../../common/display.ts';
import { HangarError } from '../../common/errors.ts';
import { isActive } from '../../common/state.ts';
import { cliStreams } from './connection.ts';
import { isLoopbackAddress } from '../web/web-server.ts';
import { proxyViewer } from '../display/rfb-proxy.ts';
import { oneTimeVncPassword } from '../display/vnc-auth.ts';

type WithCore = <T>(fn: (api: CoreApi) => Promise<T>) => Promise<T>;

/** The running VM's screen, or (with `snapshot`) the screen a snapshot kept, into a PNG file. */
export async function screenshotCommand(name: string, file: string | undefined, withCore: WithCore, print: (s: string) => void, snapshot?: string): Promise<number> {
  const usage = snapshot === undefined ? `hangar screenshot ${name}` : `hangar snapshot screenshot ${name} ${snapshot}`;
  if (!file) throw new HangarError('invalid-input', 'screenshot needs a file to write', `${usage} FILE.png`);
  if (!/\.png$/i.test(file)) throw new HangarError('invalid-input', `"${file}" does not end in .png: screenshots are PNG images`, `${usage} ${file}.png`);
  const shot = await withCore((api) => (snapshot === undefined ? api.screenshot(name) : api.snapshotScreenshot(name, snapshot)));
  const path = resolve(file);
  await writeFile(path, Buffer.from(shot.pngBase64, 'base64'));
  print(`${path}: ${shot.width}x${shot.height} PNG of VM "${name}"${snapshot === undefined ? '' : ` at snapshot "${snapshot}" (${shot.takenAt})`}`);
  return 0;
}

export async function sendKeyCommand(name: string, combos: string[], withCore: WithCore, print: (s: string) => void): Promise<number> {
  if (!combos.length) throw new HangarError('invalid-input', 'send-key needs keys', 'e.g. hangar send-key NAME ctrl-alt-delete (QEMU key names joined by "-")');
  const parsed = combos.map((c) => {
    const keys = parseKeyCombo(c);
    if (!keys) throw new HangarError('invalid-input', `"${c}" is not a key combination`, 'join QEMU key names by "-", e.g. ctrl-alt-delete, ctrl-alt-f2, print, alt-sysrq');
    return keys;
  });
  await withCore(async (api) => { for (const keys of parsed) await api.sendKeys(name, keys); });
  print(`sent ${combos.join(' ')} to VM "${name}"`);
  return 0;
}

/** ADDR:PORT, [v6]:PORT or PORT (loopback). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port > 65535) {
    throw new HangarError('invalid-input', `--listen ${text} is not ADDR:PORT`, 'e.g. --listen 127.0.0.1:5901 (port 0 = any free port)');
  }
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

function displayReady(info: VmInfo): void {
  const def = info.definition;
  if (!def) throw new HangarError('broken-definition', `VM "${info.name}" is broken: ${info.reason ?? ''}`);
  const caps = displayCapabilities(def);
  if (!caps.vnc) throw new HangarError('invalid-state', `VM "${info.name}" has no display: ${caps.reason}`, caps.fix);
  if (!isActive(info.state)) throw new HangarError('invalid-state', `VM "${info.name}" is not running (${info.state})`, `start it with \`hangar start ${info.name}\``);
}

export async function displayCommand(name: string, values: Record<string, unknown>, withCore: WithCore, print: (s: string) => void, warn: (s: string) => void): Promise<number> {
  const info = await withCore((api) => api.get(name));
  const listen = values.listen as string | undefined;
  if (!listen) {
    const caps = info.definition ? displayCapabilities(info.definition) : null;
    if (!caps?.vnc) {
      print(`VM "${info.name}": no display (${caps?.reason ?? info.reason ?? 'broken definition'})`);
      if (caps?.fix) print(`Fix: ${caps.fix}`);
      return 0;
    }
    print(`VM "${info.name}": VNC display (${info.definition!.video.model}), ${isActive(info.state) ? 'live' : `not running (${info.state})`}`);
    print(`Clipboard: ${caps.clipboard ? 'shared (qemu-vdagent; the guest runs spice-vdagent)' : caps.clipboardReason}`);
    print('The app\'s Display tab shows it. For an external viewer: hangar display NAME --listen 127.0.0.1:5901');
    return 0;
  }
  displayReady(info);
  const { host, port } = parseListen(listen);
  if (!isLoopbackAddress(host)) {
    if (!values['allow-remote']) {
      throw new HangarError('invalid-input', `--listen ${listen} is not a loopback address: the VM's screen and keyboard would be reachable from the network`,
        'use 127.0.0.1 (and an SSH tunnel from elsewhere), or add --allow-remote if you mean it');
    }
    warn(`WARNING: serving VM "${info.name}"'s screen on ${host}, reachable from the network: VNC authentication is weak and the connection is not encrypted. Prefer 127.0.0.1 and an SSH tunnel.`);
  }
  const password = oneTimeVncPassword();
  const server = createServer((viewer) => {
    viewer.on('error', () => {});
    void proxyViewer(viewer, password, async () => {
      const s = await (await cliStreams()).openDisplay(info.name);
      return { socket: s.socket, rest: s.rest };
    }, {
      onViewer: (r) => warn(`viewer connected from ${r}`),
      onRefused: (r, why) => warn(`viewer from ${r} refused: ${why}`),
    });
  });
  await new Promise<void>((res, rej) => {
    server.once('error', (e: NodeJS.ErrnoException) => rej(e.code === 'EADDRINUSE'
      ? new HangarError('busy', `port ${port} on ${host} is already in use`, 'pick another port (0 = any free port)')
      : new HangarError('io-error', `cannot listen on ${host}:${port}: ${e.message}`)));
    server.listen(port, host, () => res());
  });
  const addr = server.address() as { port: number };
  const shown = host.includes(':') ? `[${host}]` : host;
  print(`VNC display of VM "${info.name}": vnc://${shown}:${addr.port}`);
  print(`Password: ${password}`);
  print('  (made for this run only and never stored; anyone with it sees and controls the VM)');
  print(`Connect with: remote-viewer vnc://${shown}:${addr.port}   or   vncviewer ${shown}::${addr.port}`);
  print('Ctrl+C stops serving.');
  const stop = (): void => { server.close(); process.exit(0); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return -1; // keep running
}
