// Parsers for virsh's text output (LC_ALL=C). Pure, so they are unit-tested on captured output.
import { mapLibvirtState } from './states.ts';
import type { LibvirtStatus } from './states.ts';
import type { VmSummary } from '../../common/api.ts';

function lines(text: string): string[] {
  return text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '');
}

/** `virsh list --all --uuid --name`: "UUID NAME" per line (the name may contain spaces). */
export function parseUuidNameList(text: string): Array<{ uuid: string; name: string }> {
  const out: Array<{ uuid: string; name: string }> = [];
  for (const l of lines(text)) {
    const m = /^\s*([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) (.+)$/i.exec(l);
    if (m) out.push({ uuid: m[1]!.toLowerCase(), name: m[2]! });
  }
  return out;
}

/** `virsh list --name ...`: one name per line. */
export function parseNameList(text: string): string[] {
  return lines(text);
}

/** `virsh domstats`: "Domain: 'NAME'" blocks of "  key=value" lines, by domain name. */
export function parseDomstats(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let cur: Map<string, string> | null = null;
  for (const l of lines(text)) {
    const head = /^Domain: '(.*)'$/.exec(l);
    if (head) {
      cur = new Map();
      out.set(head[1]!, cur);
      continue;
    }
    const kv = /^\s+([^=]+)=(.*)$/.exec(l);
    if (kv && cur) cur.set(kv[1]!, kv[2]!);
  }
  return out;
}

/** `virsh dominfo`: "Key:   value" lines. */
export function parseDominfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of lines(text)) {
    const m = /^([^:]+):\s*(.*)$/.exec(l);
    if (m) out.set(m[1]!.trim(), m[2]!.trim());
  }
  return out;
}

/** The libvirt status from one domain's domstats block. */
export function statusFromStats(stats: Map<string, string>, managedSave: boolean): LibvirtStatus {
  return {
    state: Number(stats.get('state.state') ?? 0),
    reason: Number(stats.get('state.reason') ?? 0),
    managedSave,
  };
}

/** A VmSummary from the pieces one list call gathers (domstats sizes: balloon.maximum in KiB). */
export function summaryFromStats(uuid: string, name: string, stats: Map<string, string> | undefined, managedSave: boolean): VmSummary {
  const mapped = mapLibvirtState(statusFromStats(stats ?? new Map(), managedSave));
  const s: VmSummary = { id: uuid, name, state: mapped.state };
  if (mapped.reason !== undefined) s.reason = mapped.reason;
  const vcpus = Number(stats?.get('vcpu.current'));
  if (Number.isFinite(vcpus) && vcpus > 0) s.vcpus = vcpus;
  const kib = Number(stats?.get('balloon.maximum'));
  if (Number.isFinite(kib) && kib > 0) s.memoryMiB = Math.round(kib / 1024);
  return s;
}

/** Splits the output of several virsh commands run in one invocation at `echo SEP` lines. */
export function splitSections(text: string, sep: string): string[] {
  return text.split(new RegExp(`^${sep}$`, 'm'));
}

export interface VirshEvent {
  /** lifecycle, reboot, device-added, ... */
  event: string;
  domain: string;
  /** For lifecycle events: e.g. "Started Booted", "Stopped Destroyed". */
  detail?: string;
}

/** One line of `virsh event --loop --all`: "event 'lifecycle' for domain 'NAME': Started Booted". */
export function parseEventLine(line: string): VirshEvent | null {
  const m = /^(?:\S+ \S+: )?event '([^']+)' for domain '(.*?)'(?::\s*(.*))?$/.exec(line.replace(/\r$/, ''));
  if (!m) return null;
  const e: VirshEvent = { event: m[1]!, domain: m[2]! };
  if (m[3]) e.detail = m[3].trim();
  return e;
}
