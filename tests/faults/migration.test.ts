// Case 15 (a): definitions written by earlier Hangars load. tests/fixtures/definitions holds vm.json
// files as earlier commits saved them (see its README): a version-0 file (no version field) and
// version-1 files from the first core, after firmware/TPM/cloud-init and before the graphical
// console, each with fields this Hangar does not know. Each one migrates to MODEL_VERSION with
// every field kept as written, loads through the store as a healthy VM, keeps its unknown fields
// when the core saves it again, and the oldest one boots the real test guest.
// Case 15 (b): the core runs QEMU with -compat deprecated-input=crash (HANGAR_QEMU_DEPRECATION,
// set for every suite by the test command): a deprecated QMP argument ends QEMU, and the core's
// sources call no command or argument that this QEMU's schema marks deprecated.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serialize } from '../../core/node/qemu/qemu-option.ts';
import { QmpClient } from '../../core/node/qmp/client.ts';
import { hardeningOptions } from '../../core/node/sandbox/qemu-hardening.ts';
import { parseDefinition } from '../../core/common/definition.ts';
import { MODEL_VERSION } from '../../core/common/model.ts';
import { ensureTestGuest, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';

const SAMPLES = join(import.meta.dirname, '..', 'fixtures', 'definitions');

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

function sampleNames(): string[] {
  return readdirSync(SAMPLES).filter((f) => f.endsWith('.json')).sort();
}

/** A sample with its placeholders made real: the test guest's kernel, and the VM's own folder. */
function materialize(file: string, vmDir: string): Record<string, Json> {
  const text = readFileSync(join(SAMPLES, file), 'utf8')
    .replaceAll('/HANGAR_GUEST/vmlinuz', guest.kernel)
    .replaceAll('/HANGAR_GUEST/initrd.img', guest.initrd)
    .replaceAll('/HANGAR_VM/', `${vmDir}/`);
  return JSON.parse(text) as Record<string, Json>;
}

/** Asserts every field of `expected` is in `actual` with the same value (actual may have more: new fields' defaults). */
function assertContains(actual: Json | undefined, expected: Json, path: string): void {
  if (expected === null || typeof expected !== 'object') {
    assert.deepEqual(actual, expected, `${path}: ${JSON.stringify(actual)} should be ${JSON.stringify(expected)}`);
    return;
  }
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual) && actual.length === expected.length, `${path}: ${JSON.stringify(actual)} should have ${expected.length} entries`);
    expected.forEach((e, i) => assertContains((actual as Json[])[i], e, `${path}[${i}]`));
    return;
  }
  assert.ok(actual !== null && typeof actual === 'object' && !Array.isArray(actual), `${path}: missing (should be ${JSON.stringify(expected)})`);
  for (const [k, v] of Object.entries(expected)) assertContains((actual as Record<string, Json>)[k], v, `${path}.${k}`);
}

/** What a sample says apart from its version (which migration changes). */
function withoutVersion(raw: Record<string, Json>): Record<string, Json> {
  const { version: _v, ...rest } = raw;
  return rest;
}

before(async () => {
  guest = await ensureTestGuest();
  // This core runs QEMU with deprecated QMP input fatal (as the test command sets for every suite).
  h = new HangarHarness({ env: { HANGAR_QEMU_DEPRECATION: 'crash' } });
});

after(async () => {
  await h?.cleanup();
});

describe('case 15: definitions of earlier versions', { timeout: 600_000 }, () => {
  test('each stored sample migrates to the current version, every field and unknown field kept', () => {
    const names = sampleNames();
    assert.ok(names.includes('v0-unversioned.json') && names.filter((n) => n.startsWith('v1-')).length >= 3, `samples: ${names.join(' ')}`);
    for (const name of names) {
      const raw = materialize(name, '/srv/vm');
      const def = parseDefinition(structuredClone(raw)) as unknown as Record<string, Json>;
      assert.equal(def.version, MODEL_VERSION, `${name}: migrated to version ${MODEL_VERSION}`);
      assertContains(def, withoutVersion(raw), name);
      // Unknown fields at every level are still there (the samples carry some at the top, in a disk and in a network).
      const unknown = JSON.stringify(raw).match(/"x-[a-z-]+"/g) ?? [];
      for (const u of unknown) assert.ok(JSON.stringify(def).includes(u), `${name}: unknown field ${u} kept`);
      // Migrating is idempotent: the saved result loads as itself.
      assert.deepEqual(parseDefinition(JSON.parse(JSON.stringify(def))), def, `${name}: a migrated definition reloads unchanged`);
    }
  });

  test('through the store: each loads as a healthy VM, keeps its unknown fields when saved again, and the oldest boots', async () => {
    const raws = new Map<string, Record<string, Json>>();
    for (const name of sampleNames()) {
      const id = String(JSON.parse(readFileSync(join(SAMPLES, name), 'utf8')).id);
      const dir = join(h.home, 'vms', id);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const raw = materialize(name, dir);
      raws.set(name, raw);
      writeFileSync(join(dir, 'vm.json'), JSON.stringify(raw, null, 2) + '\n', { mode: 0o600 });
    }
    const list = await h.json<Array<{ name: string; state: string; reason?: string }>>(['list']);
    for (const [file, raw] of raws) {
      const vm = list.find((v) => v.name === raw.name);
      assert.ok(vm, `${file}: VM "${String(raw.name)}" is listed (${list.map((v) => v.name).join(', ')})`);
      assert.equal(vm.state, 'stopped', `${file}: loads as a stopped VM, not broken (${vm.reason ?? ''})`);
      const shown = await h.json<{ definition: Record<string, Json> }>(['show', String(raw.name)]);
      assertContains(shown.definition, withoutVersion(raw), `${file} (hangar show)`);
      assert.equal(shown.definition.version, MODEL_VERSION);
    }

    // A save by this core (an edit) writes the current version and keeps what it does not know.
    const oldest = raws.get('v0-unversioned.json')!;
    await h.ok(['edit', String(oldest.name), '--description', 'edited by this Hangar']);
    const saved = JSON.parse(readFileSync(join(h.home, 'vms', String(oldest.id), 'vm.json'), 'utf8')) as Record<string, Json>;
    assert.equal(saved.version, MODEL_VERSION, 'saved with the current version');
    assert.equal(saved.description, 'edited by this Hangar');
    assertContains(saved, { ...withoutVersion(oldest), description: 'edited by this Hangar' }, 'v0 sample after a save');

    // The oldest definition boots the real guest, and the guest sees its disk.
    const dir = join(h.home, 'vms', String(oldest.id));
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'disk0.qcow2'), '24M']);
    await h.ok(['start', String(oldest.name)], { timeoutMs: 120_000 });
    await h.waitForSerial(String(oldest.id), READY_MARKER, 1, 180_000);
    const out = await h.consoleCommand(String(oldest.name), 'echo size=$(cat /sys/block/vda/size)', 5);
    assert.match(out, /size=49152/, `the guest sees the sample's 24 MiB disk: ${out}`);
    // It ran with deprecated QMP input fatal, and everything above (start, console, show) used none.
    const cmd = await h.json<string[]>(['cmdline', String(oldest.name)]);
    assert.equal(cmd[cmd.indexOf('-compat') + 1], 'deprecated-input=crash,deprecated-output=hide', `QEMU runs with -compat: ${cmd.join(' ')}`);
    await h.ok(['destroy', String(oldest.name)]);
  });
});

describe('case 15: no deprecated QEMU interface', { timeout: 120_000 }, () => {
  test('the core calls no QMP command or argument this QEMU deprecates', async () => {
    // Read without -compat: deprecated-output=hide also hides deprecated members from introspection.
    await withQemu([], async (qmp) => {
      const schema = await qmp.execute<Array<{ name: string; 'meta-type': string; 'arg-type'?: string; features?: string[]; members?: Array<{ name: string; features?: string[] }> }>>('query-qmp-schema');
      const byName = new Map(schema.map((e) => [e.name, e]));
      const commands = schema.filter((e) => e['meta-type'] === 'command');
      const deprecatedCommands = commands.filter((c) => c.features?.includes('deprecated')).map((c) => c.name);
      const deprecatedArgs = commands.flatMap((c) => (byName.get(c['arg-type'] ?? '')?.members ?? []).filter((m) => m.features?.includes('deprecated')).map((m) => [c.name, m.name] as const));
      assert.ok(deprecatedArgs.some(([c, a]) => c === 'eject' && a === 'device'), `QEMU 7.2 deprecates eject's "device": ${JSON.stringify(deprecatedArgs)}`);
      const core = coreSources().map((f) => readFileSync(f, 'utf8')).join('\n');
      for (const c of deprecatedCommands) assert.ok(!core.includes(`'${c}'`), `the core names deprecated QMP command ${c}`);
      for (const [c, a] of deprecatedArgs) {
        const calls = core.match(new RegExp(`execute(<[^>]*>)?\\('${c}'[^)]*\\)`, 'g')) ?? [];
        for (const call of calls) assert.ok(!new RegExp(`['{ ,]${a}['": ,]`).test(call.replace(`'${c}'`, '')), `the core passes deprecated argument ${a} to ${c}: ${call}`);
      }
      console.log(`deprecated in this QEMU, unused by the core: ${deprecatedCommands.join(', ')}; ${deprecatedArgs.map(([c, a]) => `${c}.${a}`).join(', ')}`);
    });
  });

  test('-compat deprecated-input=crash (HANGAR_QEMU_DEPRECATION=crash) ends QEMU on a deprecated argument', async () => {
    await withQemu(serialize(hardeningOptions({ deprecation: 'crash' })), async (qmp, exited) => {
      // The core's form (id) is accepted, the deprecated one (device) ends QEMU.
      await qmp.execute('eject', { id: 'cd0', force: true });
      await qmp.execute('eject', { device: 'cd0', force: true }).catch(() => undefined);
      const exit = await Promise.race([exited, sleep(10_000).then(() => null)]);
      assert.ok(exit && exit.signal === 'SIGABRT', `QEMU crashed on the deprecated argument: ${JSON.stringify(exit)}`);
    });
  });
});

/** Runs fn against a paused QEMU (q35, an empty IDE CD-ROM cd0) with extra options; kills it afterwards. */
async function withQemu(extra: string[], fn: (qmp: QmpClient, exited: Promise<{ code: number | null; signal: string | null }>) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hgd-'));
  const sock = join(dir, 'qmp.sock');
  const qemu = spawn('qemu-system-x86_64', [...extra, '-machine', 'q35', '-accel', 'tcg', '-nodefaults', '-display', 'none', '-S',
    '-qmp', `unix:${sock},server=on,wait=off`, '-device', JSON.stringify({ driver: 'ide-cd', id: 'cd0' })], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  qemu.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) => qemu.once('exit', (code, signal) => r({ code, signal })));
  let qmp: QmpClient | undefined;
  try {
    for (let i = 0; i < 200 && !qmp && qemu.exitCode === null; i++) {
      try { qmp = await QmpClient.connect(sock); } catch { await sleep(50); }
    }
    assert.ok(qmp, `QMP of the test QEMU: ${stderr}`);
    await fn(qmp, exited);
  } finally {
    qmp?.close();
    if (qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every TypeScript file of the core. */
function coreSources(dir = join(import.meta.dirname, '..', '..', 'core')): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? coreSources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}
