// Real host bridges for the bridged-NIC tests: a throw-away Linux bridge, and lines added to
// qemu-bridge-helper's ACL (/etc/qemu/bridge.conf, a path compiled into the helper) that are taken
// out again afterwards. Both need root; the tests fail (never skip) without it.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { BRIDGE_CONF } from '../../core/node/host/bridges.ts';

/** Throws unless this process is root: creating bridges and editing /etc/qemu/bridge.conf needs it. */
export function requireRoot(what: string): void {
  const uid = process.geteuid?.();
  if (uid !== 0) {
    throw new Error(`${what} needs root (it creates a Linux bridge with \`ip link add ... type bridge\` and adds "allow BRIDGE" to ${BRIDGE_CONF}); running as uid ${uid}. Run the tests as root.`);
  }
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A bridge name unique to this process (at most 15 characters). */
export function testBridgeName(prefix: string, suffix = ''): string {
  const name = `${prefix}${process.pid}${suffix}`;
  if (name.length > 15) throw new Error(`bridge name ${name} is longer than 15 characters`);
  return name;
}

export interface TestBridge {
  name: string;
  /** The devices attached to it (/sys/class/net/NAME/brif). */
  ports(): string[];
  remove(): void;
}

/** Creates bridge `name` (replacing a stale one of that name), optionally with an IPv4 address, and sets it up. */
export function createBridge(name: string, cidr?: string): TestBridge {
  try { ip(['link', 'del', name]); } catch { /* none left over */ }
  ip(['link', 'add', name, 'type', 'bridge']);
  try {
    if (cidr) ip(['addr', 'add', cidr, 'dev', name]);
    ip(['link', 'set', name, 'up']);
  } catch (e) {
    try { ip(['link', 'del', name]); } catch { /* gone */ }
    throw e;
  }
  return {
    name,
    ports: () => {
      try {
        return readdirSync(`/sys/class/net/${name}/brif`).sort();
      } catch {
        return [];
      }
    },
    remove: () => {
      try { ip(['link', 'del', name]); } catch { /* already gone */ }
    },
  };
}

/**
 * Appends `lines` to the helper's ACL file (creating the file and folder if missing); the returned
 * function restores it: byte for byte (or deletes what it created) when nobody else changed the
 * file meanwhile, else it takes out only the lines added here. Call it in a `finally`.
 */
export function addAclLines(lines: readonly string[], conf = BRIDGE_CONF): () => void {
  const dir = dirname(conf);
  const dirExisted = existsSync(dir);
  const fileExisted = existsSync(conf);
  const original = fileExisted ? readFileSync(conf, 'utf8') : '';
  const chunk = `${original === '' || original.endsWith('\n') ? '' : '\n'}${lines.map((l) => `${l}\n`).join('')}`;
  if (!dirExisted) mkdirSync(dir, { recursive: true, mode: 0o755 });
  writeFileSync(conf, original + chunk, fileExisted ? {} : { mode: 0o644 });
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    const now = existsSync(conf) ? readFileSync(conf, 'utf8') : null;
    if (now === null) return;
    if (now === original + chunk) {
      if (fileExisted) writeFileSync(conf, original);
      else {
        unlinkSync(conf);
        if (!dirExisted) try { rmdirSync(dir); } catch { /* not empty: someone else's files */ }
      }
      return;
    }
    // Changed meanwhile (another test run): take out only our chunk (or failing that, our lines).
    const at = now.lastIndexOf(chunk);
    let rest = at >= 0 ? now.slice(0, at) + now.slice(at + chunk.length) : now;
    if (at < 0) for (const l of lines) rest = rest.replace(`${l}\n`, '');
    writeFileSync(conf, rest);
  };
}
