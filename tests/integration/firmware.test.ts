// Firmware end to end: BIOS, UEFI and UEFI with Secure Boot through the real CLI, daemon and
// QEMU (TCG), booting the hybrid (BIOS + UEFI GRUB) test guest ISO.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestGuest, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

interface Info { id: string; dir: string; pid?: number; state: string; definition: { firmware: string } }

function qemuCmdline(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
}

async function createIsoVm(name: string, firmware: string, extra: string[] = []): Promise<Info> {
  // UEFI under TCG needs more than 256 MiB (GRUB runs out of memory below that).
  return h.json<Info>(['create', '--name', name, '--memory', '320', '--accel', 'tcg', '--machine', 'q35',
    '--firmware', firmware, '--cdrom', `${guest.iso},bus=sata`, '--boot', 'cdrom', ...extra]);
}

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
});

after(async () => {
  await h?.cleanup();
});

describe('firmware', () => {
  test('UEFI boots the hybrid ISO; the VM has its own NVRAM, recreated when deleted', { timeout: 300_000 }, async () => {
    const vm = await createIsoVm('uefi', 'uefi');
    assert.equal(vm.definition.firmware, 'uefi');
    const vars = join(vm.dir, 'uefi-vars.fd');
    assert.ok(existsSync(vars), 'create made the VM\'s own uefi-vars.fd');
    assert.match(await h.ok(['show', 'uefi']), /^Firmware: +UEFI \(OVMF\)$/m);
    await h.ok(['start', 'uefi']);
    const info = await h.json<Info>(['show', 'uefi']);
    const argv = qemuCmdline(info.pid!);
    const blockdevs = argv.filter((_, i) => argv[i - 1] === '-blockdev').map((a) => JSON.parse(a) as { filename?: string; 'read-only'?: boolean });
    assert.ok(blockdevs.some((b) => b.filename === vars && b['read-only'] === false), `pflash1 is the VM's own ${vars}: ${argv.join(' ')}`);
    assert.ok(blockdevs.some((b) => b.filename?.startsWith('/usr/share/OVMF/') && b['read-only'] === true), 'read-only OVMF code');
    assert.match(argv[argv.indexOf('-machine') + 1]!, /pflash0=fw-code-fmt,pflash1=fw-vars-fmt/);
    await h.waitForSerial(vm.id, READY_MARKER, 1, 180_000);
    await h.ok(['destroy', 'uefi']);

    // Deleted by hand: the next start makes a fresh copy and says so.
    rmSync(vars);
    const out = await h.ok(['start', 'uefi']);
    assert.match(out, /UEFI variable store .* was missing; recreated/);
    assert.ok(existsSync(vars));
    assert.match(readFileSync(join(vm.dir, 'logs', 'hangar.log'), 'utf8'), /recreated from/);
    await h.ok(['destroy', 'uefi']);
  });

  test('BIOS boots the same ISO; no NVRAM file', { timeout: 180_000 }, async () => {
    const vm = await createIsoVm('bios', 'bios');
    await h.ok(['start', 'bios']);
    await h.waitForSerial(vm.id, READY_MARKER, 1, 120_000);
    assert.ok(!existsSync(join(vm.dir, 'uefi-vars.fd')));
    const argv = qemuCmdline((await h.json<Info>(['show', 'bios'])).pid!);
    assert.ok(!argv.join(' ').includes('pflash'), 'no flash for SeaBIOS');
    await h.ok(['destroy', 'bios']);
  });

  test('UEFI with Secure Boot: SMM on, secure flash, enrolled-keys firmware; q35 only', { timeout: 180_000 }, async () => {
    const refused = await h.run(['create', '--name', 'sb-pc', '--machine', 'pc', '--firmware', 'uefi-secure', '--accel', 'tcg']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /uefi-secure needs machine q35/);

    const vm = await createIsoVm('sb', 'uefi-secure');
    assert.ok(existsSync(join(vm.dir, 'uefi-vars.fd')));
    await h.ok(['start', 'sb']);
    const argv = qemuCmdline((await h.json<Info>(['show', 'sb'])).pid!);
    assert.match(argv[argv.indexOf('-machine') + 1]!, /,smm=on/);
    assert.ok(argv.includes('driver=cfi.pflash01,property=secure,value=on'), argv.join(' '));
    assert.ok(argv.some((a) => a.includes('"filename":"/usr/share/OVMF/OVMF_CODE_4M.ms.fd"') || a.includes('secboot')), 'the Secure Boot build');
    // The firmware runs (an unsigned GRUB is refused by Secure Boot; what follows is not asserted).
    await sleep(3000);
    assert.equal(await h.state('sb'), 'running');
    await h.ok(['destroy', 'sb']);
  });

  test('a failed create leaves nothing behind, NVRAM included', { timeout: 60_000 }, async () => {
    const vmsDir = join(h.home, 'vms');
    const list = (): string[] => (existsSync(vmsDir) ? readdirSync(vmsDir).sort() : []);
    const before = list();
    // A raw image larger than any filesystem allows: qemu-img fails after the NVRAM was copied
    // (--allow-overcommit gets it past the free-space check, which refuses it before anything is written).
    const r = await h.run(['create', '--name', 'fails', '--accel', 'tcg', '--firmware', 'uefi', '--new-disk', '7000000G,format=raw', '--allow-overcommit']);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /qemu-img create failed/);
    assert.deepEqual(list(), before);
  });
});
