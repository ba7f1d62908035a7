// Connections: the places where VMs live, as the user names them (virt-manager's connection list).
// `local` is this machine's Hangar core; `ssh://` a Hangar core on another machine, reached
// through the user's own ssh; libvirt URIs a libvirtd, local or over ssh.
import { HangarError } from './errors.ts';
import type { CoreApi } from './api.ts';

export type ConnectionTarget =
  | { kind: 'local' }
  | {
    kind: 'hangar-ssh';
    host: string;
    user?: string;
    port?: number;
    /** The remote core's command (default `hangar`), from `?command=`. */
    command?: string;
    /** Environment for the remote core (e.g. HANGAR_DATA_DIR), from `?env.NAME=value`. */
    env?: Record<string, string>;
  }
  /** Another Hangar core on this machine (another data dir), by its socket: a second core for tests and migration. */
  | { kind: 'hangar-unix'; socket: string }
  | {
    kind: 'libvirt';
    /** The URI as virsh takes it (`virsh -c URI`). */
    uri: string;
    mode: 'system' | 'session';
    /** Set for qemu+ssh:// URIs. */
    host?: string;
    /** Set for qemu+unix:// URIs: a libvirtd listening on another socket of this computer. */
    socket?: string;
    user?: string;
    port?: number;
  };

export interface ConnectionEntry {
  name: string;
  uri: string;
}

/** A saved connection as the switcher shows it. */
export interface ConnectionInfo extends ConnectionEntry {
  label: string;
  kind: ConnectionTarget['kind'];
}

/** What a connection's driver can do; UI actions outside it are shown disabled with the reason. */
export interface DriverCapabilities {
  driver: 'hangar' | 'libvirt';
  /** The connection's name ('local' for this machine's core). */
  connection: string;
  /** A label for people: "Hangar on this computer", "libvirt qemu:///system", "Hangar on host". */
  label: string;
  /** CoreApi methods this driver cannot do, each with the reason in words. */
  unsupported: Partial<Record<keyof CoreApi, string>>;
}

export const LOCAL_CONNECTION = 'local';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Checks a connection name (a word: it is typed after --connect and shown in the switcher). */
export function checkConnectionName(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new HangarError('invalid-input', `"${name}" is not a usable connection name`,
      'use letters, digits, dot, dash or underscore (up to 64), starting with a letter or digit');
  }
  return name;
}

const HOST_RE = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[[0-9A-Fa-f:.]+\]$/;
const USER_RE = /^[A-Za-z0-9._][A-Za-z0-9._-]*$/;

function badUri(uri: string, why: string): HangarError {
  return new HangarError('invalid-input', `"${uri}" is not a connection URI: ${why}`,
    'use local, ssh://[user@]host[:port], qemu:///system, qemu:///session, qemu+ssh://[user@]host/system, qemu+unix:///system?socket=/path/libvirt-sock or hangar+unix:///path/hangar.sock');
}

/** Parses what the user typed (a URI, or `local`) into a connection target; errors say how to write it. */
export function parseConnectionUri(uri: string): ConnectionTarget {
  const text = uri.trim();
  if (text === '' || text === LOCAL_CONNECTION || text === 'hangar:///' || text === 'hangar:///local') return { kind: 'local' };
  const m = /^([a-z][a-z0-9+]*):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(text);
  if (!m) throw badUri(text, 'expected scheme://host/path');
  const [, scheme, authority = '', path = '', query = ''] = m;
  const at = authority.lastIndexOf('@');
  const user = at >= 0 ? decodeURIComponent(authority.slice(0, at)) : undefined;
  const hostPort = at >= 0 ? authority.slice(at + 1) : authority;
  const hp = /^(\[[^\]]+\]|[^:]*)(?::(\d+))?$/.exec(hostPort);
  if (!hp) throw badUri(text, `cannot read the host in "${hostPort}"`);
  const host = hp[1] ?? '';
  const port = hp[2] !== undefined ? Number(hp[2]) : undefined;
  if (user !== undefined && !USER_RE.test(user)) throw badUri(text, `"${user}" is not a user name`);
  if (host !== '' && !HOST_RE.test(host)) throw badUri(text, `"${host}" is not a host name`);
  if (port !== undefined && !(port >= 1 && port <= 65535)) throw badUri(text, `port ${hp[2]} is outside 1-65535`);
  const params = new URLSearchParams(query.slice(1));

  if (scheme === 'hangar+unix') {
    if (host || !path.endsWith('.sock') || query) throw badUri(text, 'hangar+unix:// takes the absolute path of a core socket: hangar+unix:///path/to/hangar.sock');
    return { kind: 'hangar-unix', socket: decodeURIComponent(path) };
  }
  if (scheme === 'ssh' || scheme === 'hangar+ssh') {
    if (!host) throw badUri(text, 'ssh:// needs a host');
    if (path !== '' && path !== '/') throw badUri(text, 'a Hangar ssh:// URI has no path');
    const t: Extract<ConnectionTarget, { kind: 'hangar-ssh' }> = { kind: 'hangar-ssh', host };
    if (user !== undefined) t.user = user;
    if (port !== undefined) t.port = port;
    const command = params.get('command');
    if (command !== null) {
      if (!command.startsWith('/') && !/^[A-Za-z0-9._-]+$/.test(command)) throw badUri(text, 'command= must be a program name or an absolute path');
      t.command = command;
    }
    for (const [k, v] of params) {
      if (!k.startsWith('env.')) {
        if (k !== 'command') throw badUri(text, `unknown parameter "${k}" (known: command, env.NAME)`);
        continue;
      }
      const name = k.slice(4);
      if (!/^HANGAR_[A-Z0-9_]+$/.test(name)) throw badUri(text, `only HANGAR_* variables can be passed (${name})`);
      (t.env ??= {})[name] = v;
    }
    return t;
  }
  if (scheme === 'qemu' || scheme === 'qemu+ssh' || scheme === 'qemu+unix') {
    const mode = path === '/system' ? 'system' : path === '/session' ? 'session' : null;
    if (!mode) throw badUri(text, 'a libvirt QEMU URI ends in /system or /session');
    if (scheme === 'qemu+unix') {
      // libvirt's own form for a daemon on a non-default socket (a second libvirtd, a container's).
      const socket = params.get('socket');
      if (host || !socket || !socket.startsWith('/') || [...params.keys()].some((k) => k !== 'socket')) {
        throw badUri(text, 'qemu+unix:// takes no host and one parameter, the absolute path of libvirtd\'s socket: qemu+unix:///system?socket=/path/libvirt-sock');
      }
      return { kind: 'libvirt', uri: text, mode, socket };
    }
    if (scheme === 'qemu') {
      if (host) throw badUri(text, 'qemu:// with a host needs a transport: qemu+ssh://host/system');
      return { kind: 'libvirt', uri: text, mode };
    }
    if (!host) throw badUri(text, 'qemu+ssh:// needs a host');
    const t: Extract<ConnectionTarget, { kind: 'libvirt' }> = { kind: 'libvirt', uri: text, mode, host };
    if (user !== undefined) t.user = user;
    if (port !== undefined) t.port = port;
    return t;
  }
  throw badUri(text, `unknown scheme "${scheme}"`);
}

/** The words a switcher shows for a target. */
export function connectionLabel(t: ConnectionTarget): string {
  if (t.kind === 'local') return 'Hangar on this computer';
  if (t.kind === 'hangar-unix') return `Hangar at ${t.socket}`;
  if (t.kind === 'hangar-ssh') return `Hangar on ${t.user ? `${t.user}@` : ''}${t.host}`;
  if (t.socket) return `libvirt ${t.mode} at ${t.socket}`;
  return t.host ? `libvirt ${t.mode} on ${t.user ? `${t.user}@` : ''}${t.host}` : `libvirt ${t.mode} (this computer)`;
}
