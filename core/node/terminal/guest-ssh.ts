// Where a running guest's sshd is, and the `ssh` command line that logs in to it: for the Terminal
// tab (ssh in a pty in the UI host's process) and `hangar ssh NAME` (ssh with the user's terminal).
// It is the user's own ssh: their keys, agent, known_hosts and ~/.ssh/config; host-key and
// password prompts appear in the terminal.
//
// The way in, in this order:
//   1. a TCP port forward to guest port 22 on a user-mode NIC (QEMU's slirp or passt): the
//      forward's host address (0.0.0.0/:: or empty mean loopback) and host port;
//   2. the first IPv4 address the guest agent reports, when the VM has a NIC on which the host can
//      reach the guest (bridge, tap, vhost-user; any NIC on a libvirt connection, whose NAT network
//      the host is on). A user-mode NIC's own address (10.0.2.15, or passt's copy of the host's) is
//      not reachable from the host, so a VM with only those needs a forward.
// A VM on another machine (an ssh:// Hangar connection, a qemu+ssh:// libvirt) is reached through
// that machine (`ssh -J`): the forwarded port is on its loopback, the bridged address on its LAN.
import type { VmInfo } from '../../common/api.ts';
import type { ConnectionTarget } from '../../common/connections.ts';
import { HangarError } from '../../common/errors.ts';
import { agentInstallHint } from '../../common/guest-agent.ts';
import type { NetworkDefinition } from '../../common/model.ts';
import { portForwardsOf } from '../../common/model-values.ts';
import { sshDestination } from '../connections/ssh-stream.ts';

/** The guest port sshd listens on. */
export const GUEST_SSH_PORT = 22;

export interface GuestSshPlace {
  /** How it was found. */
  via: 'port-forward' | 'guest-agent';
  /** Where ssh connects (seen from the VM's host: with `jump`, from that machine). */
  host: string;
  /** Absent = ssh's default (22). */
  port?: number;
  /** The VM's host when it is another machine: `ssh -J` through it. */
  jump?: string;
  /** The NIC with the forward (port-forward only). */
  nic?: string;
  /**
   * The name ssh files the guest's host key under (HostKeyAlias): a forwarded loopback port is
   * reused by other VMs over time, so the key is kept per VM, not per 127.0.0.1:PORT.
   */
  hostKeyAlias?: string;
}

/** NIC back ends on which the host (or the remote host) can reach the guest's own address. */
const REACHABLE_NETWORKS: ReadonlySet<NetworkDefinition['type']> = new Set(['bridge', 'tap', 'vhost-user']);

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** A unicast IPv4 address a host could connect to (not loopback, link-local, or slirp's own net when asked). */
function usableIpv4(a: string, skipSlirp: boolean): boolean {
  const m = IPV4_RE.exec(a);
  if (!m) return false;
  const [b0, b1, b2] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (b0 === 127 || b0 === 0 || b0 >= 224 || (b0 === 169 && b1 === 254)) return false;
  return !(skipSlirp && b0 === 10 && b1 === 0 && b2 === 2);
}

/** The `ssh -J` argument for a connection's host, or undefined for this machine. */
export function jumpHostOf(target: ConnectionTarget): string | undefined {
  // -J takes [user@]host[:port], an IPv6 literal in brackets.
  const bracketed = (h: string): string => (h.includes(':') && !h.startsWith('[') ? `[${h}]` : h);
  if (target.kind === 'hangar-ssh') return sshDestination({ ...target, host: bracketed(target.host) });
  if (target.kind === 'libvirt' && target.host) return sshDestination({ host: bracketed(target.host), ...(target.user ? { user: target.user } : {}) });
  return undefined;
}

/** `hangar [--connect C] ` for hints, so a command shown for a remote VM goes to the right place. */
function cliPrefix(connection: string | undefined): string {
  return connection && connection !== 'local' ? `hangar --connect ${connection} ` : 'hangar ';
}

/** A forward's host address as a connect address: wildcard and empty mean this machine's loopback. */
function connectAddress(hostAddress: string): string {
  if (hostAddress === '' || hostAddress === '0.0.0.0') return '127.0.0.1';
  if (hostAddress === '::' || hostAddress === '[::]') return '::1';
  return hostAddress;
}

/**
 * Where to reach the guest's sshd (see the header for the order), or a HangarError naming the
 * problem and the fix: the VM does not run, or it has no way in.
 */
export function guestSshPlace(vm: VmInfo, target: ConnectionTarget = { kind: 'local' }, connection?: string): GuestSshPlace {
  const cli = cliPrefix(connection);
  if (vm.state !== 'running') {
    const fix = vm.state === 'paused' ? `resume it with \`${cli}resume ${vm.name}\``
      : vm.state === 'saved' || vm.state === 'stopped' || vm.state === 'crashed' ? `start it with \`${cli}start ${vm.name}\` and wait until it has booted`
        : `wait until it runs (see \`${cli}show ${vm.name}\`)`;
    throw new HangarError('invalid-state', `VM "${vm.name}" is not running (${vm.state}${vm.reason ? `: ${vm.reason}` : ''}): there is no guest to log in to`, fix);
  }
  const jump = jumpHostOf(target);
  const nics = vm.definition?.nics ?? [];
  for (const nic of nics) {
    const fwd = portForwardsOf(nic.network).find((f) => f.protocol === 'tcp' && f.guestPort === GUEST_SSH_PORT);
    if (fwd) {
      return {
        via: 'port-forward', host: connectAddress(fwd.hostAddress), port: fwd.hostPort, nic: nic.id,
        hostKeyAlias: `hangar-vm-${vm.id}`, ...(jump ? { jump } : {}),
      };
    }
  }
  const reachableNic = target.kind === 'libvirt' || nics.some((n) => REACHABLE_NETWORKS.has(n.network.type));
  const hasSlirp = target.kind !== 'libvirt' && nics.some((n) => n.network.type === 'user');
  const address = reachableNic ? vm.guest?.addresses.find((a) => usableIpv4(a, hasSlirp)) : undefined;
  if (address) return { via: 'guest-agent', host: address, ...(jump ? { jump } : {}) };
  throw noWayIn(vm, cli, reachableNic);
}

function noWayIn(vm: VmInfo, cli: string, reachableNic: boolean): HangarError {
  const nics = vm.definition?.nics ?? [];
  const userNic = nics.find((n) => n.network.type === 'user' || n.network.type === 'passt');
  let forward: string;
  if (userNic) {
    // `device edit` with a back end replaces it whole: keep the forwards it has.
    const kept = portForwardsOf(userNic.network).map((f) => `,hostfwd=${f.protocol}:${f.hostAddress === '127.0.0.1' ? '' : f.hostAddress}:${f.hostPort}-:${f.guestPort}`).join('');
    forward = `\`${cli}device edit ${vm.name} nic ${userNic.id} ${userNic.network.type}${kept},hostfwd=tcp::2222-:22\` (2222: any free port on this host; the NIC changes at the next start)`;
  } else {
    forward = `\`${cli}device add ${vm.name} nic user,hostfwd=tcp::2222-:22\` (2222: any free port on this host)`;
  }
  if (reachableNic) {
    const agent = vm.guest?.agent
      ? 'the guest agent answers but reports no IPv4 address yet (is the guest\'s network up?)'
      : `the guest agent did not answer (${agentInstallHint(vm.definition?.osId)})`;
    return new HangarError('invalid-state', `no way to reach VM "${vm.name}" over ssh: ${agent}, and no NIC forwards a host port to guest port 22`,
      `wait for the guest's address, or add a port forward: ${forward}`);
  }
  const why = nics.length === 0 ? 'it has no NIC'
    : 'no NIC forwards a host port to guest port 22, and its NICs are user-mode or VM-only (the host cannot reach the guest\'s own address)';
  return new HangarError('invalid-state', `no way to reach VM "${vm.name}" over ssh: ${why}`,
    `add a port forward: ${forward}; or give it a bridged NIC (\`${cli}device add ${vm.name} nic bridge,br=br0\`) with qemu-guest-agent running in the guest, so Hangar learns its address`);
}

/** ssh's options that take a value (OpenSSH 9), for telling options from the remote command. */
const SSH_OPTS_WITH_VALUE = new Set('BbcDEeFIiJLlmOoPpQRSWw'.split(''));

/**
 * Splits what follows `hangar ssh NAME --`: ssh options first (`-i KEY`, `-oX=Y`, `-v`), then the
 * remote command; a `--` between them ends the options explicitly.
 */
export function splitSshArgs(args: readonly string[]): { options: string[]; command: string[] } {
  const options: string[] = [];
  let i = 0;
  while (i < args.length) {
    const a = args[i]!;
    if (a === '--') { i++; break; }
    if (!a.startsWith('-') || a === '-') break;
    options.push(a);
    i++;
    // -i KEY, -vi KEY: the last letter of a flag group may take the next argument.
    for (let j = 1; j < a.length; j++) {
      if (!SSH_OPTS_WITH_VALUE.has(a[j]!)) continue;
      if (j === a.length - 1) {
        if (i >= args.length) throw new HangarError('invalid-input', `ssh option ${a} needs a value`, 'e.g. hangar ssh NAME -- -i ~/.ssh/id_ed25519');
        options.push(args[i]!);
        i++;
      }
      break;
    }
  }
  return { options, command: args.slice(i) };
}

const USER_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}\$?$/;

/** A login name for the guest (a word: no "@", spaces or a leading "-"). */
export function checkGuestUser(user: string): string {
  if (!USER_RE.test(user)) {
    throw new HangarError('invalid-input', `"${user}" is not a usable login name`, 'letters, digits, ".", "_" and "-" (up to 64), e.g. --user root');
  }
  return user;
}

export interface GuestSshArgsOptions {
  /** The login name (default: ssh's choice, from ~/.ssh/config or the local user name). */
  user?: string;
  /** More ssh options, given by the user (`-i KEY`, `-o ...`). */
  options?: string[];
  /** A command to run instead of a login shell. */
  command?: string[];
  env?: NodeJS.ProcessEnv;
}

/** `ssh`'s arguments: [-F HANGAR_SSH_CONFIG] [-J JUMP] [-p PORT] [-o HostKeyAlias=..] [options] -- [USER@]HOST [command]. */
export function guestSshArgs(place: GuestSshPlace, opts: GuestSshArgsOptions = {}): string[] {
  const env = opts.env ?? process.env;
  const args: string[] = [];
  // The tests' ssh_config (keys, known_hosts), as for ssh:// connections (ssh-stream.ts).
  if (env.HANGAR_SSH_CONFIG) args.push('-F', env.HANGAR_SSH_CONFIG);
  if (place.jump) args.push('-J', place.jump);
  if (place.port !== undefined && place.port !== GUEST_SSH_PORT) args.push('-p', String(place.port));
  if (place.hostKeyAlias) args.push('-o', `HostKeyAlias=${place.hostKeyAlias}`);
  args.push(...(opts.options ?? []));
  const user = opts.user === undefined ? undefined : checkGuestUser(opts.user);
  args.push('--', `${user ? `${user}@` : ''}${place.host}`, ...(opts.command ?? []));
  return args;
}

/** The command line in words, for messages (`ssh -p 2222 root@127.0.0.1`). */
export function describePlace(place: GuestSshPlace): string {
  const where = `${place.host}${place.port !== undefined ? ` port ${place.port}` : ''}`;
  return place.via === 'port-forward' ? `${where} (forwarded to guest port 22 on NIC ${place.nic ?? '?'})${place.jump ? ` through ${place.jump}` : ''}`
    : `${where} (the address the guest agent reports)${place.jump ? ` through ${place.jump}` : ''}`;
}
