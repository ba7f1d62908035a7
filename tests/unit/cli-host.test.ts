// `hangar host devices|usb|readiness` on the committed fixture trees, and on this machine's own /sys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { hostCommand } from '../../core/node/cli/host.ts';
import type { CoreApi } from '../../core/common/api.ts';
import { HangarError } from '../../core/common/errors.ts';

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
  assert.match(line('0000:03:10.0'), /VF of 0000:03:00\.0\s+yes/);
  assert.match(line('0000:01:00.0'), /yes, with its group/);
  assert.match(line('0000:00:02.0'), /no: the host uses 0000:00:02\.0: boot VGA/);
  assert.match(line('0000:05:00.0'), /unreadable: .*class holds "garbage!"/, 'a broken file is reported, not fatal');
  const json = JSON.parse((await run('devices', { json: true })).out) as Array<{ address: string; sriov?: { vfs: string[] }; viability: { assignable: boolean } }>;
  assert.equal(json.find((d) => d.address === '0000:03:00.0')?.sriov?.vfs.length, 8);
  assert.equal(json.find((d) => d.address === '0000:03:10.0')?.viability.assignable, true);
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

test('host changes go to the core; without permission the exact commands are printed', async () => {
  const calls: unknown[][] = [];
  const commands = ['echo 0 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs', 'echo 4 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs'];
  const api = {
    setSriovVfs: async (...a: unknown[]) => { calls.push(['setSriovVfs', ...a]); throw new HangarError('permission', 'setting 0000:03:00.0 to 4 virtual functions needs root', 'run these commands as root', { commands }); },
    setVfConfig: async (...a: unknown[]) => { calls.push(['setVfConfig', ...a]); return { commands: ['ip link set dev enp3s0f0 vf 0 mac 52:54:00:12:34:56 vlan 10'], via: 'root' as const }; },
    bindVfio: async (...a: unknown[]) => { calls.push(['bindVfio', ...a]); return { commands: [], via: 'root' as const }; },
  } as unknown as CoreApi;
  const withCore = <T>(fn: (a: CoreApi) => Promise<T>): Promise<T> => fn(api);
  let out = '';
  const print = (s: string): void => { out += `${s}\n`; };
  assert.equal(await hostCommand('sriov', {}, print, env, ['0000:03:00.0', '4'], withCore), 1);
  assert.match(out, /needs root\nRun these as root:\n {2}echo 0 > .*sriov_numvfs\n {2}echo 4 > /);
  out = '';
  assert.equal(await hostCommand('vf', {}, print, env, ['0000:03:00.0', '0', 'mac=52:54:00:12:34:56', 'vlan=10'], withCore), 0);
  assert.deepEqual(calls.at(-1), ['setVfConfig', '0000:03:00.0', 0, { mac: '52:54:00:12:34:56', vlan: 10 }]);
  assert.match(out, /VF 0 of 0000:03:00\.0 set \(root\):\n {2}ip link set dev enp3s0f0 vf 0/);
  out = '';
  assert.equal(await hostCommand('bind', {}, print, env, ['0000:02:00.0'], withCore), 0);
  assert.match(out, /nothing to change/);
  await assert.rejects(hostCommand('vf', {}, print, env, ['0000:03:00.0', '0', 'mtu=9000'], withCore), /unknown VF setting "mtu=9000"/);
  await assert.rejects(hostCommand('sriov', {}, print, env, ['0000:03:00.0', 'four'], withCore), /whole number/);
  await assert.rejects(hostCommand('bind', {}, print, env, [], withCore), /expected hangar host bind ADDR/);
  out = '';
  assert.equal(await hostCommand('mdev', {}, print, env, ['list'], withCore), 0);
  assert.match(out, /4b20d080-1b54-4048-85b3-a6a62d165c01\s+0000:04:00\.0\s+nvidia-222/);
});
