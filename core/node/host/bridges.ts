// Bridged NICs on this host: its Linux bridges, QEMU's qemu-bridge-helper (QEMU runs it to create
// a tap device and add it to the bridge) and the helper's ACL file, and whether this user may put
// a VM on a given bridge. Every root is injectable for tests.
//
// The ACL as qemu-bridge-helper (QEMU 7.2, parse_acl_file() and main()) reads it:
//   - one command per line: `allow NAME`, `allow all`, `deny NAME`, `deny all`, `include FILE`;
//     leading white space is skipped, empty lines and lines starting with "#" are ignored. There
//     are no trailing comments: the argument is everything after the command, trimmed.
//   - the command ends at the first space (only when there is none, at the first tab);
//   - deny wins: a bridge is usable when some allow rule names it (or is `allow all`) and no deny
//     rule does (or is `deny all`), wherever the lines are. Order does not matter.
//   - the main file must exist and every line of it must parse (a known command with an
//     argument; allow/deny names shorter than 16 characters), else the helper refuses every
//     bridge ("failed to parse default acl file");
//   - an included file that is missing, unreadable or has a bad line is ignored; the rules read
//     before its bad line still count. A relative include is opened from the helper's (QEMU's,
//     so the core's) working directory.
// A setuid helper drops to the calling user (keeping only CAP_NET_ADMIN) before it reads the
// ACL, so reading the files here, as the same user, sees what the helper will see.
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { HostOption } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';

/** The ACL file qemu-bridge-helper reads (CONFIG_QEMU_CONFDIR/bridge.conf on Debian). */
export const BRIDGE_CONF = '/etc/qemu/bridge.conf';
export const BRIDGE_HELPER_NAME = 'qemu-bridge-helper';
/** Where distributions install the helper: Debian/Ubuntu/Arch, Fedora/RHEL/SUSE, source builds. */
export const BRIDGE_HELPER_DIRS: readonly string[] = ['/usr/lib/qemu', '/usr/libexec', '/usr/libexec/qemu', '/usr/local/libexec', '/usr/local/lib/qemu'];
/** Debian's helper path: shown in command-line previews on hosts without a helper. */
export const DEFAULT_BRIDGE_HELPER = '/usr/lib/qemu/qemu-bridge-helper';
/** The Debian package that ships qemu-bridge-helper. */
export const BRIDGE_HELPER_PACKAGE = 'qemu-system-common';

/** IFNAMSIZ: the helper refuses allow/deny names (and bridges) of this many characters or more. */
const IFNAMSIZ = 16;

export interface BridgeHostOptions {
  /** Default /sys (a bridge is /sys/class/net/NAME with a bridge/ folder). */
  sysRoot?: string;
  /** The helper's ACL file (default /etc/qemu/bridge.conf). */
  confPath?: string;
  /** Folders searched for qemu-bridge-helper (default $HANGAR_QEMU_DIR, then BRIDGE_HELPER_DIRS). */
  helperDirs?: readonly string[];
  /** The user QEMU runs as (default this process's effective uid). */
  uid?: number;
  /** Where relative `include` paths are opened from (default this process's working directory, which QEMU inherits). */
  cwd?: string;
}

// ---- bridges ---------------------------------------------------------------------------------

/** Host bridges (Linux bridge devices), by name. */
export function listBridges(sysRoot = '/sys'): string[] {
  const net = join(sysRoot, 'class', 'net');
  let names: string[];
  try {
    names = readdirSync(net);
  } catch {
    return [];
  }
  return names.filter((n) => existsSync(join(net, n, 'bridge'))).sort();
}

// ---- the helper ------------------------------------------------------------------------------

export function bridgeHelperDirs(env: Record<string, string | undefined> = process.env): string[] {
  const override = env.HANGAR_QEMU_DIR?.trim();
  return [...new Set([...(override ? [override] : []), ...BRIDGE_HELPER_DIRS])];
}

/** The qemu-bridge-helper Hangar passes to QEMU, or null when none is installed. */
export function findBridgeHelper(dirs: readonly string[] = bridgeHelperDirs()): string | null {
  for (const dir of dirs) {
    const p = join(dir, BRIDGE_HELPER_NAME);
    try {
      if (!statSync(p).isFile()) continue;
      accessSync(p, constants.X_OK);
      return p;
    } catch { /* not here */ }
  }
  return null;
}

// ---- the ACL ---------------------------------------------------------------------------------

export interface AclRule {
  action: 'allow' | 'deny';
  /** The bridge named, or null for `all`. */
  bridge: string | null;
  file: string;
  line: number;
  /** The line as written (trimmed). */
  text: string;
}

export interface AclProblem {
  file: string;
  /** The offending line (absent when the file itself cannot be read). */
  line?: number;
  message: string;
}

export interface BridgeAcl {
  file: string;
  rules: AclRule[];
  /** Why the helper refuses every bridge: the main file is missing, unreadable or has a bad line. */
  fatal?: AclProblem & { kind: 'missing' | 'unreadable' | 'invalid' };
  /** Problems in included files, which the helper ignores (with the rest of that file). */
  ignored: AclProblem[];
}

/** C isspace(): space, \t, \n, \v, \f, \r. */
const SPACE = '[ \\t\\n\\v\\f\\r]';
const LEADING = new RegExp(`^${SPACE}+`);
const TRAILING = new RegExp(`${SPACE}+$`);

type ReadResult = { text: string } | { error: AclProblem & { kind: 'missing' | 'unreadable' } };

function readAclFile(file: string): ReadResult {
  try {
    return { text: readFileSync(file, 'latin1') };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // fopen() of a folder succeeds and its first fgets() fails: the helper sees an empty file.
    if (code === 'EISDIR') return { text: '' };
    if (code === 'ENOENT' || code === 'ENOTDIR') return { error: { file, kind: 'missing', message: 'the file does not exist' } };
    return { error: { file, kind: 'unreadable', message: `the file cannot be read (${code ?? String(e)})` } };
  }
}

/** Parses one file into `acl.rules`; returns its first bad line (where the helper stops reading it). */
function parseInto(file: string, acl: BridgeAcl, cwd: string, active: Set<string>): AclProblem | null {
  const read = readAclFile(file);
  if ('error' in read) return read.error;
  active.add(file);
  try {
    const lines = read.text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = i + 1;
      const ptr = lines[i]!.replace(LEADING, '');
      if (ptr === '' || ptr.startsWith('#')) continue;
      let sep = ptr.indexOf(' ');
      if (sep < 0) sep = ptr.indexOf('\t');
      if (sep < 0) return { file, line, message: `"${ptr.replace(TRAILING, '')}" has no argument (lines are "allow NAME", "allow all", "deny NAME", "deny all" or "include FILE")` };
      const cmd = ptr.slice(0, sep);
      const arg = ptr.slice(sep + 1).replace(LEADING, '').replace(TRAILING, '');
      const text = `${cmd} ${arg}`;
      if (cmd !== 'include' && arg.length >= IFNAMSIZ) return { file, line, message: `the name "${arg}" is too long (${arg.length} characters; interface names have at most ${IFNAMSIZ - 1})` };
      if (cmd === 'allow' || cmd === 'deny') {
        acl.rules.push({ action: cmd, bridge: arg === 'all' ? null : arg, file, line, text });
      } else if (cmd === 'include') {
        const inc = resolve(cwd, arg);
        // An include loop: the helper re-reads the files until it runs out of file descriptors,
        // which only repeats rules; reading each file once gives the same answer.
        if (active.has(inc)) continue;
        const problem = parseInto(inc, acl, cwd, active);
        if (problem) acl.ignored.push({ ...problem, message: `included from ${file} line ${line}: ${problem.message}` });
      } else {
        return { file, line, message: `unknown command "${cmd}" (the commands are allow, deny and include)` };
      }
    }
    return null;
  } finally {
    active.delete(file);
  }
}

/** Reads the helper's ACL file (and what it includes) as qemu-bridge-helper does. */
export function parseBridgeAcl(confPath: string = BRIDGE_CONF, opts: { cwd?: string } = {}): BridgeAcl {
  const file = resolve(confPath);
  const acl: BridgeAcl = { file, rules: [], ignored: [] };
  const problem = parseInto(file, acl, opts.cwd ?? process.cwd(), new Set());
  if (problem) {
    const kind = (problem as { kind?: 'missing' | 'unreadable' }).kind ?? 'invalid';
    acl.fatal = { ...problem, kind };
  }
  return acl;
}

export interface AclVerdict {
  allowed: boolean;
  /** The first rule that allows the bridge, if any. */
  allowedBy?: AclRule;
  /** The first rule that denies it, if any (deny wins over allow). */
  deniedBy?: AclRule;
}

/** Does the ACL let the helper put a tap device on `bridge`? */
export function aclVerdict(acl: BridgeAcl, bridge: string): AclVerdict {
  const matches = (r: AclRule): boolean => r.bridge === null || r.bridge === bridge;
  const allowedBy = acl.rules.find((r) => r.action === 'allow' && matches(r));
  const deniedBy = acl.rules.find((r) => r.action === 'deny' && matches(r));
  const v: AclVerdict = { allowed: !acl.fatal && allowedBy !== undefined && deniedBy === undefined };
  if (allowedBy) v.allowedBy = allowedBy;
  if (deniedBy) v.deniedBy = deniedBy;
  return v;
}

// ---- may this user use a bridge? -------------------------------------------------------------

export type BridgeAccess =
  | { usable: true; helper: string }
  /** scope host: no bridge can be used (helper, privileges, ACL file); bridge: only this one. */
  | { usable: false; scope: 'host' | 'bridge'; reason: string; fix: string };

const allowFix = (name: string, conf: string): string =>
  `${existsSync(dirname(conf)) ? '' : `sudo mkdir -p ${dirname(conf)} && `}echo "allow ${name}" | sudo tee -a ${conf}`;

const CREATE_BRIDGE = (name: string): string => `sudo ip link add ${name} type bridge && sudo ip link set ${name} up (or keep one with nmcli con add type bridge ifname ${name})`;

interface HostSide {
  bridges: string[];
  sysRoot: string;
  conf: string;
  /** Set when this user cannot use any bridge. */
  blocked?: { reason: string; fix: string };
  helper?: string;
  acl?: BridgeAcl;
}

/** The checks that do not depend on the bridge: the helper, its privileges, the ACL file. */
function hostSide(opts: BridgeHostOptions, exampleBridge: string): HostSide {
  const sysRoot = opts.sysRoot ?? '/sys';
  const conf = resolve(opts.confPath ?? BRIDGE_CONF);
  const side: HostSide = { bridges: listBridges(sysRoot), sysRoot, conf };
  const dirs = opts.helperDirs ?? bridgeHelperDirs();
  const helper = findBridgeHelper(dirs);
  if (!helper) {
    side.blocked = { reason: `${BRIDGE_HELPER_NAME} is not installed (looked in ${dirs.join(', ')}); QEMU needs it to attach a VM to a bridge`, fix: `sudo apt-get install ${BRIDGE_HELPER_PACKAGE}` };
    return side;
  }
  side.helper = helper;
  const uid = opts.uid ?? process.geteuid?.() ?? 0;
  if (uid !== 0) {
    const st = statSync(helper);
    if (!(st.uid === 0 && (st.mode & 0o4000))) {
      side.blocked = st.mode & 0o4000
        ? { reason: `${helper} is setuid but owned by uid ${st.uid}, not root, so it cannot create a tap device for user ${uid}`, fix: `sudo chown root ${helper} && sudo chmod u+s ${helper}` }
        : { reason: `${helper} is not setuid root, so it cannot create a tap device when QEMU runs as user ${uid} (only root may)`, fix: `sudo chmod u+s ${helper}` };
      return side;
    }
  }
  const acl = parseBridgeAcl(conf, opts.cwd === undefined ? {} : { cwd: opts.cwd });
  side.acl = acl;
  const f = acl.fatal;
  if (f?.kind === 'missing') {
    side.blocked = { reason: `the bridge helper's ACL file ${conf} does not exist, so ${BRIDGE_HELPER_NAME} refuses every bridge`, fix: allowFix(exampleBridge, conf) };
  } else if (f?.kind === 'unreadable') {
    side.blocked = { reason: `the bridge helper's ACL file ${f.file}: ${f.message}; ${BRIDGE_HELPER_NAME} reads it as this user and refuses every bridge`, fix: `sudo chmod a+r ${f.file}` };
  } else if (f) {
    side.blocked = {
      reason: `line ${f.line} of the bridge helper's ACL file ${f.file} is invalid: ${f.message}; ${BRIDGE_HELPER_NAME} refuses every bridge until it is fixed`,
      fix: `fix or delete line ${f.line} of ${f.file} (e.g. sudo sed -i '${f.line}d' ${f.file})`,
    };
  }
  return side;
}

function bridgeSide(side: HostSide, name: string): BridgeAccess {
  if (!side.bridges.includes(name)) {
    const others = side.bridges.length ? `this host's bridges: ${side.bridges.join(', ')}` : 'this host has no bridge';
    if (existsSync(join(side.sysRoot, 'class', 'net', name))) {
      return { usable: false, scope: 'bridge', reason: `the network device ${name} is not a bridge (${others})`, fix: `use a bridge${side.bridges.length ? ` (${side.bridges.join(', ')})` : ''}, or make one with ${name} as a port: nmcli con add type bridge ifname br0 && nmcli con add type bridge-slave ifname ${name} master br0` };
    }
    return { usable: false, scope: 'bridge', reason: `there is no bridge ${name} on this host (${others})`, fix: side.bridges.length ? `use one of ${side.bridges.join(', ')}, or create it: ${CREATE_BRIDGE(name)}` : `create it: ${CREATE_BRIDGE(name)}` };
  }
  if (side.blocked) return { usable: false, scope: 'host', ...side.blocked };
  const v = aclVerdict(side.acl!, name);
  if (v.deniedBy) {
    const d = v.deniedBy;
    const fix = `delete line ${d.line} ("${d.text}") of ${d.file} (e.g. sudo sed -i '${d.line}d' ${d.file})${v.allowedBy ? '' : ` and allow the bridge: ${allowFix(name, side.conf)}`}`;
    return { usable: false, scope: 'bridge', reason: `the bridge helper's ACL denies bridge ${name}: line ${d.line} of ${d.file} is "${d.text}" (a deny wins over any allow)`, fix };
  }
  if (!v.allowed) {
    return { usable: false, scope: 'bridge', reason: `the bridge helper's ACL ${side.conf} does not allow bridge ${name} (${BRIDGE_HELPER_NAME} refuses every bridge no "allow" line names)`, fix: allowFix(name, side.conf) };
  }
  return { usable: true, helper: side.helper! };
}

/** May this user attach a VM to host bridge `name`? Never throws. */
export function bridgeAccess(name: string, opts: BridgeHostOptions = {}): BridgeAccess {
  return bridgeSide(hostSide(opts, name), name);
}

/**
 * Throws a host-missing HangarError with the precise reason and fix unless QEMU can attach a NIC
 * to host bridge `name`; returns the qemu-bridge-helper to pass to QEMU.
 */
export function checkBridge(name: string, opts: BridgeHostOptions = {}): string {
  const a = bridgeAccess(name, opts);
  if (!a.usable) throw new HangarError('host-missing', `cannot use host bridge ${name}: ${a.reason}`, a.fix, { bridge: name });
  return a.helper;
}

/** The host bridges this user may use, and the wizard's option: available when at least one is. */
export function usableBridges(opts: BridgeHostOptions = {}): HostOption & { bridges: string[] } {
  const all = listBridges(opts.sysRoot);
  if (!all.length) {
    return { available: false, reason: 'this host has no network bridge', fix: `create one (${CREATE_BRIDGE('br0')}), or use NAT or passt`, bridges: [] };
  }
  const side = hostSide(opts, all[0]!);
  const access = all.map((b) => ({ b, a: bridgeSide(side, b) }));
  const bridges = access.filter((x) => x.a.usable).map((x) => x.b);
  if (bridges.length) return { available: true, bridges };
  const first = access[0]!.a as Extract<BridgeAccess, { usable: false }>;
  if (first.scope === 'host') return { available: false, reason: first.reason, fix: first.fix, bridges };
  return {
    available: false, bridges,
    reason: `this user may use none of this host's bridges (${all.join(', ')}): ${first.reason}`,
    fix: first.fix,
  };
}
