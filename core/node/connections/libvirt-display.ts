// A libvirt domain's screen for the Display tab: the VNC address `virsh domdisplay` gives, reached
// directly on this computer, or through ssh (-W, stdio forwarding) on a qemu+ssh:// host where the
// VNC server listens on that host's loopback. The RFB bytes then travel like a Hangar display's.
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { spawn } from 'node:child_process';
import type { ConnectionTarget } from '../../common/connections.ts';
import { HangarError } from '../../common/errors.ts';
import { runVirsh } from '../libvirt/virsh.ts';
import type { StreamChannel } from './open-connection.ts';
import { PipePair, sshChannelArgs } from './ssh-stream.ts';
import type { SshOptions } from './ssh-stream.ts';

type LibvirtTarget = Extract<ConnectionTarget, { kind: 'libvirt' }>;

/** `vnc://127.0.0.1:0` (a display number) -> host and TCP port. */
export function parseDomdisplay(text: string): { host: string; port: number } | null {
  const m = /^vnc:\/\/(\[[^\]]+\]|[^:/]*):(\d+)/m.exec(text.trim());
  if (!m) return null;
  const n = Number(m[2]);
  const host = (m[1] ?? '').replace(/^\[|\]$/g, '');
  // A wildcard listen address means "every address": the loopback one is among them.
  const reachable = host === '' || host === '0.0.0.0' || host === '::' || host === 'localhost' ? '127.0.0.1' : host;
  return { host: reachable, port: n < 5900 ? 5900 + n : n };
}

function tcp(host: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    s.once('connect', () => { s.off('error', reject); resolve(s); });
    s.once('error', (e) => reject(new HangarError('daemon-unavailable', `cannot reach the domain's VNC server at ${host}:${port}: ${e.message}`)));
  });
}

/** ssh's argv for `-W host:port` on a qemu+ssh host: its VNC server as ssh's stdio. */
export function displayTunnelArgs(t: LibvirtTarget, host: string, port: number, ssh: SshOptions): string[] {
  return [...sshChannelArgs({ host: t.host!, ...(t.user ? { user: t.user } : {}), ...(t.port ? { port: t.port } : {}) }, ssh),
    '-W', `${host}:${port}`, '--', t.host!];
}

/** ssh -W host:port: the remote VNC server as this process's stream. */
function viaSsh(t: LibvirtTarget, host: string, port: number, ssh: SshOptions): Duplex {
  const child = spawn('ssh', displayTunnelArgs(t, host, port, ssh), { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stderr.resume();
  const stream = new PipePair(child.stdout, child.stdin);
  child.once('close', () => { if (!stream.destroyed) stream.destroy(); });
  stream.once('close', () => { if (child.exitCode === null) child.kill('SIGTERM'); });
  return stream;
}

export async function openLibvirtDisplay(t: LibvirtTarget, vm: string, ssh: SshOptions = {}): Promise<StreamChannel> {
  if (!vm) throw new HangarError('invalid-input', 'which domain\'s screen? The name is empty', 'give the domain\'s name or UUID');
  let out: string;
  try {
    out = await runVirsh(t.uri, ['domdisplay', '--type', 'vnc', '--domain', vm]);
  } catch (e) {
    // libvirt's words for "no VNC graphics"; any other failure (not running, not found) stands.
    if (!/No graphical display/i.test((e as Error).message)) throw e;
    out = '';
  }
  const addr = parseDomdisplay(out);
  if (!addr) {
    throw new HangarError('unsupported', `libvirt domain "${vm}" has no VNC display${out.trim() ? ` (${out.trim()})` : ''}: Hangar shows VNC screens`,
      `add one with virsh edit (<graphics type='vnc' listen='127.0.0.1'/>), or open it with virt-viewer -c ${t.uri} ${vm}`);
  }
  const socket = t.host ? viaSsh(t, addr.host, addr.port, ssh) : await tcp(addr.host, addr.port);
  return { socket, rest: Buffer.alloc(0), vmName: vm, replayBytes: 0 };
}
