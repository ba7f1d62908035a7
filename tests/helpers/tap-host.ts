// A real tap device for tests (root only): made with `ip tuntap`, optionally with a host-side
// address, and deleted afterwards.
import { execFileSync } from 'node:child_process';

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface TestTap {
  name: string;
  remove(): void;
}

export function createTap(name: string, cidr?: string): TestTap {
  if (name.length > 15) throw new Error(`tap name ${name} is longer than 15 characters`);
  try { ip(['link', 'del', name]); } catch { /* none left over */ }
  ip(['tuntap', 'add', 'dev', name, 'mode', 'tap']);
  try {
    if (cidr) ip(['addr', 'add', cidr, 'dev', name]);
    ip(['link', 'set', name, 'up']);
  } catch (e) {
    try { ip(['link', 'del', name]); } catch { /* gone */ }
    throw e;
  }
  return { name, remove: () => { try { ip(['link', 'del', name]); } catch { /* already gone */ } } };
}
