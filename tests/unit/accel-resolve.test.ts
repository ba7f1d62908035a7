import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { HangarError } from '../../core/common/errors.ts';
import { PROBE_MARKER, buildProbeBootSector, resolveAccel } from '../../core/node/host/accel.ts';
import type { AccelProbe } from '../../core/node/host/accel.ts';
import { findBinary, parseQemuVersion, requireBinary } from '../../core/node/host/binaries.ts';

const KVM_BROKEN_REASON = 'KVM is present but cannot run guests here (guest stopped with internal-error at its first ' +
  'x87 FPU instruction, after reaching 64-bit long mode); Hangar will use TCG software emulation';

function probe(over: { kvm?: Partial<AccelProbe['kvm']>; tcg?: Partial<AccelProbe['tcg']> } = {}): AccelProbe {
  const kvm = { available: true, works: true, reason: 'KVM runs guests: ok', ...over.kvm };
  const tcg = { works: true, reason: 'TCG software emulation runs guests: ok', ...over.tcg };
  return { kvm, tcg, best: kvm.works ? 'kvm' : 'tcg', probedAt: new Date(0).toISOString(), qemuVersion: '7.2.22' };
}

const kvmWorks = probe();
const kvmBroken = probe({ kvm: { works: false, reason: KVM_BROKEN_REASON } });
const kvmAbsent = probe({
  kvm: { available: false, works: false, reason: 'no /dev/kvm: hardware virtualization is off; Hangar will use TCG software emulation' },
});
const allBroken = probe({ kvm: { works: false, reason: KVM_BROKEN_REASON }, tcg: { works: false, reason: 'TCG broke' } });

function hangarError(code: string, message?: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof HangarError, `expected a HangarError, got ${String(e)}`);
    assert.equal(e.code, code);
    if (message) assert.match(e.message, message);
    return true;
  };
}

describe('resolveAccel', () => {
  it('auto picks KVM when it works, without a note', () => {
    assert.deepEqual(resolveAccel('auto', kvmWorks), { accel: 'kvm' });
  });

  it('auto falls back to TCG with the probe reason as the note', () => {
    assert.deepEqual(resolveAccel('auto', kvmBroken), { accel: 'tcg', note: KVM_BROKEN_REASON });
    assert.equal(resolveAccel('auto', kvmAbsent).accel, 'tcg');
  });

  it('kvm is honoured when KVM works', () => {
    assert.deepEqual(resolveAccel('kvm', kvmWorks), { accel: 'kvm' });
  });

  it('kvm that cannot run guests is a host-missing error naming the reason and the fix', () => {
    assert.throws(() => resolveAccel('kvm', kvmBroken), hangarError('host-missing',
      /^KVM cannot run guests on this host: guest stopped with internal-error at its first x87 FPU instruction, after reaching 64-bit long mode\. Set the VM's accelerator to tcg or auto\.$/));
    assert.throws(() => resolveAccel('kvm', kvmAbsent), hangarError('host-missing',
      /^KVM cannot run guests on this host: no \/dev\/kvm: .*Set the VM's accelerator to tcg or auto\.$/));
    try {
      resolveAccel('kvm', kvmBroken);
    } catch (e) {
      assert.ok(e instanceof HangarError);
      assert.match(e.hint ?? '', /tcg or auto/);
    }
  });

  it('tcg is always TCG, even when KVM works', () => {
    assert.deepEqual(resolveAccel('tcg', kvmWorks), { accel: 'tcg' });
    assert.deepEqual(resolveAccel('tcg', kvmBroken), { accel: 'tcg' });
  });

  it('a host where TCG does not work either is an error, never a silent choice', () => {
    assert.throws(() => resolveAccel('tcg', allBroken), hangarError('qemu-failed', /TCG broke/));
    assert.throws(() => resolveAccel('auto', allBroken), hangarError('qemu-failed'));
  });

  it('rejects unknown accelerator names', () => {
    assert.throws(() => resolveAccel('hvf' as 'auto', kvmWorks), hangarError('invalid-input'));
  });
});

describe('probe boot sector', () => {
  const sector = buildProbeBootSector();

  it('is exactly 512 bytes and ends with the 55 AA boot signature', () => {
    assert.equal(sector.length, 512);
    assert.equal(sector[510], 0x55);
    assert.equal(sector[511], 0xaa);
  });

  it('starts with cli; xor ax,ax; mov ds,ax', () => {
    assert.deepEqual([...sector.subarray(0, 5)], [0xfa, 0x31, 0xc0, 0x8e, 0xd8]);
  });

  it('holds the NUL-terminated marker at the address the 64-bit code loads into esi', () => {
    const text = Buffer.from(sector).toString('latin1');
    const at = text.indexOf(`${PROBE_MARKER}\n\0`);
    assert.ok(at > 0, 'marker present');
    const addr = 0x7c00 + at;
    // mov esi, imm32 = BE xx xx xx xx
    const movEsi = Buffer.from([0xbe, addr & 0xff, (addr >> 8) & 0xff, 0, 0]);
    assert.ok(Buffer.from(sector).indexOf(movEsi) >= 0, `code references the marker at 0x${addr.toString(16)}`);
  });

  it('has a GDT descriptor pointing at a 4-entry GDT with 32-bit code, data and 64-bit code segments', () => {
    const view = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
    // lgdt operand address is at bytes 0x21..0x22 (0F 01 16 lo hi)
    assert.deepEqual([...sector.subarray(0x1e, 0x21)], [0x0f, 0x01, 0x16]);
    const gdtr = view.getUint16(0x21, true) - 0x7c00;
    const limit = view.getUint16(gdtr, true);
    const base = view.getUint32(gdtr + 2, true) - 0x7c00;
    assert.equal(limit, 31);
    assert.equal(view.getBigUint64(base + 8, true), 0x00cf9a000000ffffn);
    assert.equal(view.getBigUint64(base + 16, true), 0x00cf92000000ffffn);
    assert.equal(view.getBigUint64(base + 24, true), 0x00af9a000000ffffn);
  });

  it('is built fresh each time (callers may not corrupt the next probe)', () => {
    const a = buildProbeBootSector();
    a[0] = 0;
    assert.equal(buildProbeBootSector()[0], 0xfa);
  });
});

describe('host binaries', () => {
  it('parses QEMU version lines', () => {
    assert.deepEqual(parseQemuVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright'), {
      version: { major: 7, minor: 2, micro: 22 },
      versionText: 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)',
    });
    assert.deepEqual(parseQemuVersion('qemu-img version 9.1\n')?.version, { major: 9, minor: 1, micro: 0 });
    assert.equal(parseQemuVersion('garbage'), null);
  });

  it('searches HANGAR_QEMU_DIR before PATH and ignores non-executables', async () => {
    const root = await mkdtemp(join(tmpdir(), 'hangar-bin-'));
    try {
      for (const d of ['override', 'path']) await mkdir(join(root, d));
      await writeFile(join(root, 'path/qemu-img'), '', { mode: 0o755 });
      await writeFile(join(root, 'path/swtpm'), '', { mode: 0o644 });
      const env = { PATH: join(root, 'path') };
      assert.equal(findBinary('qemu-img', { env, fallbackDirs: [] }), join(root, 'path/qemu-img'));
      assert.equal(findBinary('swtpm', { env, fallbackDirs: [] }), null);
      await writeFile(join(root, 'override/qemu-img'), '', { mode: 0o755 });
      assert.equal(findBinary('qemu-img', { env: { ...env, HANGAR_QEMU_DIR: join(root, 'override') }, fallbackDirs: [] }),
        join(root, 'override/qemu-img'));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('requireBinary names the Debian package to install', () => {
    const opts = { env: { PATH: '' }, fallbackDirs: [] };
    for (const [name, pkg] of [['qemu-system-x86_64', 'qemu-system-x86'], ['qemu-img', 'qemu-utils'],
      ['qemu-storage-daemon', 'qemu-system-common'], ['swtpm', 'swtpm'], ['passt', 'passt']] as const) {
      assert.throws(() => requireBinary(name, undefined, opts), (e: unknown) => {
        assert.ok(e instanceof HangarError);
        assert.equal(e.code, 'host-missing');
        assert.equal(e.message, `${name} not found`);
        assert.equal(e.hint, `install it: apt-get install ${pkg}`);
        return true;
      });
    }
    assert.throws(() => requireBinary('foo', 'foo-pkg', opts), /foo not found/);
  });
});
