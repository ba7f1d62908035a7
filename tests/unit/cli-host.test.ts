// `hangar host devices|usb|readiness` on the committed fixture trees, and on this machine's own /sys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { hostCommand } from '../../core/node/cli/host.ts';

const fixtures = join(import.meta.dirname, '..', 'fixtures');
const env = { HANGAR_SYSFS_ROOT: join(fixtures, 'sysfs', 'workstation'), HANGAR_PROCFS_ROOT: join(fixtures, 'proc', 'workstation') };

async function run(sub: string, values: Record<string, unknown> = {}, e: NodeJS.ProcessEnv = env): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await hostCommand(sub, values, (s) => { out += `${s}\n`; }, e);
  return { code, out };
}

test('host devices: groups with their other members, VFs, reset, and what the host uses', async () => {
  const { code, out } = await run('devices');
  assert.equal(code, 0);
  const line = (addr: string): string => out.split('\n').find((l) => l.startsWith(addr)) ?? assert.fail(`${addr} not listed:\n${out}`);
  assert.match(line('0000:01:00.0'), /Navi 21.*amdgpu\s+13 \(\+0000:00:01\.0, 0000:01:00\.1\)/, 'the GPU shares group 13 with its audio function');
  assert.match(line('0000:00:02.0'), /in use: boot VGA/);
  assert.match(line('0000:03:00.0'), /PF 8\/8 VFs.*in use: network interface enp3s0f0 is up/);
  assert.match(line('0000:03:10.0'), /VF of 0000:03:00\.0/);
  assert.match(line('0000:05:00.0'), /unreadable: .*class holds "garbage!"/, 'a broken file is reported, not fatal');
  const json = JSON.parse((await run('devices', { json: true })).out) as Array<{ address: string; sriov?: { vfs: string[] } }>;
  assert.equal(json.find((d) => d.address === '0000:03:00.0')?.sriov?.vfs.length, 8);
});

test('host usb and readiness read the same trees; this machine\'s own /sys does not break them', async () => {
  const usb = await run('usb');
  assert.match(usb.out, /^BUS\s+PORT\s+ID\s+DEVICE/m);
  assert.match(usb.out, /\(hub\)/);
  const ready = JSON.parse((await run('readiness', { json: true })).out) as Array<{ id: string; status: string }>;
  assert.deepEqual(ready.map((c) => c.id), ['iommu', 'interrupt-remapping', 'vfio-pci', 'passthrough-hugepages']);
  for (const sub of ['devices', 'usb', 'readiness']) assert.equal((await run(sub, {}, {})).code, 0, `hangar host ${sub} on the real /sys`);
  await assert.rejects(run('bogus'), /unknown subcommand "host bogus"/);
});
