// The hardening settings a VM's QEMU gets: -sandbox (bridge NICs may spawn their helper, -runas may
// set its uid), -compat from HANGAR_QEMU_DEPRECATION, -runas from HANGAR_QEMU_USER; bad settings refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HangarError } from '../../core/common/errors.ts';
import { serialize } from '../../core/node/qemu/qemu-option.ts';
import { hardeningOptions, qemuHardening, qemuHasSandbox, sandboxFor } from '../../core/node/sandbox/qemu-hardening.ts';
import { findBinary } from '../../core/node/host/binaries.ts';

const plain = { nics: [] };
const bridged = { nics: [{ network: { type: 'bridge' } }] } as unknown as Parameters<typeof sandboxFor>[0];

describe('qemu hardening', () => {
  it('denies spawn unless QEMU runs the bridge helper, and set*id unless -runas needs it', () => {
    assert.deepEqual(sandboxFor(plain, undefined), { spawn: 'deny', elevateprivileges: 'deny' });
    assert.deepEqual(sandboxFor(bridged, undefined), { spawn: 'allow', elevateprivileges: 'deny' });
    assert.deepEqual(sandboxFor(plain, 'qemu'), { spawn: 'deny', elevateprivileges: 'allow' });
  });

  it('serializes to -sandbox, -compat and -runas', () => {
    assert.deepEqual(serialize(hardeningOptions({ sandbox: sandboxFor(plain, undefined), deprecation: 'crash', runAs: 'qemu' })), [
      '-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
      '-compat', 'deprecated-input=crash,deprecated-output=hide',
      '-runas', 'qemu',
    ]);
    assert.deepEqual(hardeningOptions(undefined), []);
    assert.deepEqual(hardeningOptions({}), []);
  });

  it('reads the core settings from the environment', () => {
    const qemu = findBinary('qemu-system-x86_64');
    assert.ok(qemu, 'qemu-system-x86_64 is not installed: apt-get install qemu-system-x86');
    assert.ok(qemuHasSandbox(qemu), 'Debian\'s QEMU is built with seccomp');
    assert.deepEqual(qemuHardening(plain, qemu, {}), { sandbox: { spawn: 'deny', elevateprivileges: 'deny' } });
    assert.deepEqual(qemuHardening(plain, qemu, { HANGAR_QEMU_SANDBOX: 'off' }), {});
    assert.deepEqual(qemuHardening(plain, qemu, { HANGAR_QEMU_SANDBOX: 'off', HANGAR_QEMU_DEPRECATION: 'crash' }), { deprecation: 'crash' });
    assert.deepEqual(qemuHardening(plain, qemu, { HANGAR_QEMU_SANDBOX: 'off', HANGAR_QEMU_DEPRECATION: 'none' }), {});
    assert.throws(() => qemuHardening(plain, qemu, { HANGAR_QEMU_DEPRECATION: 'explode' }),
      (e: unknown) => e instanceof HangarError && e.code === 'invalid-input' && /crash, reject or none/.test(e.hint ?? ''));
    assert.throws(() => qemuHardening(plain, qemu, { HANGAR_QEMU_USER: 'hangar-no-such-user-xyz' }),
      (e: unknown) => e instanceof HangarError && /does not (exist|run as root)/.test(e.message));
  });

  it('refuses a binary without seccomp support', () => {
    assert.equal(qemuHasSandbox('/bin/false'), false);
  });
});
