// Structured QEMU options. Device modules return these; only serialize() turns them into argv
// strings, so quoting and escaping live in exactly one place.

export type PropValue = string | number | boolean | PropObject | PropValue[];
export interface PropObject {
  [key: string]: PropValue | undefined;
}

export type QemuOption =
  /** A bare flag: -S, -nodefaults. */
  | { opt: string }
  /** A value QEMU takes verbatim (no key=value parsing): -kernel PATH, -append LINE, -uuid. */
  | { opt: string; value: string }
  /** A QemuOpts/keyval option: -machine q35,accel=tcg; the first element is the implied key. */
  | { opt: string; keyval: PropObject; implied?: string }
  /** A JSON option (-device, -blockdev, -netdev): the same object QMP's device_add takes. */
  | { opt: string; json: PropObject };

function keyvalValue(v: PropValue): string {
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return v.replaceAll(',', ',,');
  throw new Error(`nested value ${JSON.stringify(v)} cannot be written in key=value syntax`);
}

function dropUndefined(obj: PropObject): PropObject {
  const out: PropObject = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    out[k] = v !== null && typeof v === 'object' && !Array.isArray(v) ? dropUndefined(v) : v;
  }
  return out;
}

/** Writes key=value lists, doubling commas inside values (QEMU's escape). */
export function keyval(props: PropObject, implied?: string): string {
  const parts: string[] = [];
  if (implied !== undefined) parts.push(keyvalValue(implied));
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined) continue;
    // A list is the key repeated (-numa node,cpus=0-1,cpus=4): QemuOpts' way of writing one.
    for (const item of Array.isArray(v) ? v : [v]) parts.push(`${k}=${keyvalValue(item)}`);
  }
  return parts.join(',');
}

export function serialize(options: readonly QemuOption[]): string[] {
  const argv: string[] = [];
  for (const o of options) {
    argv.push(o.opt);
    if ('value' in o) argv.push(o.value);
    else if ('keyval' in o) argv.push(keyval(o.keyval, o.implied));
    else if ('json' in o) argv.push(JSON.stringify(dropUndefined(o.json)));
  }
  return argv;
}
