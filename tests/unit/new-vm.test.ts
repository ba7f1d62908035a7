// The wizard's pure model: live field checks, the create request and the equivalent CLI command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyPreset, buildCreateRequest, checkCloudInit, checkDiskSize, checkMemory, checkName, checkVcpus, createCommand,
  defaultChoices, parsePortForwards,
} from '../../core/common/new-vm.ts';
import { presetFor } from '../../core/common/os-presets.ts';
import { GENERIC_OSES } from '../../core/common/os-types.ts';
import { shellCommandGrouped } from '../../core/common/shell.ts';

const GiB = 1024 ** 3;

test('names: required, schema rules, unique ignoring case', () => {
  assert.match(checkName('', []).error!, /required/);
  assert.match(checkName('a/b', []).error!, /"\/"/);
  assert.match(checkName(' x', []).error!, /spaces/);
  assert.match(checkName('Web', ['web']).error!, /"web" already exists/);
  assert.deepEqual(checkName('web-2', ['web']), {});
});

test('memory: above the host is an error, above 80% a warning', () => {
  const host = 8 * GiB;
  assert.match(checkMemory(9000, host).error!, /more than this host has \(8192 MiB\)/);
  assert.match(checkMemory(7000, host).warning!, /80%/);
  assert.deepEqual(checkMemory(2048, host), {});
  assert.match(checkMemory(8, host).error!, /at least 16/);
  assert.match(checkMemory(1.5, host).error!, /whole number/);
});

test('vCPUs: more than the host warns, out of range is an error', () => {
  assert.match(checkVcpus(4, 2).confirm!, /host's 2 CPUs/);
  assert.deepEqual(checkVcpus(2, 2), {});
  assert.match(checkVcpus(0, 2).error!, /at least 1/);
  assert.match(checkVcpus(300, 2).error!, /288/);
});

test('disk size: larger than the free space needs confirmation', () => {
  assert.match(checkDiskSize(100, 50 * GiB).confirm!, /more than the 50\.0 GiB free/);
  assert.deepEqual(checkDiskSize(10, 50 * GiB), {});
  assert.match(checkDiskSize(0, 50 * GiB).error!, /positive/);
});

test('port forwards: one per line, checked, duplicates refused', () => {
  assert.deepEqual(parsePortForwards('tcp::2222-:22\n\nudp:0.0.0.0:5353-:53').forwards, [
    { protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 2222, guestPort: 22 },
    { protocol: 'udp', hostAddress: '0.0.0.0', hostPort: 5353, guestPort: 53 },
  ]);
  assert.match(parsePortForwards('tcp::2222:22').error!, /line 1: .* not of the form/);
  assert.match(parsePortForwards('tcp::2222-:22\ntcp::2222-:80').error!, /line 2: host port tcp 2222 is forwarded twice/);
  assert.match(parsePortForwards('tcp::70000-:22').error!, /1-65535/);
});

test('cloud-init fields', () => {
  const ci = { enabled: true, user: '', password: '', hostname: '', sshKey: '' };
  assert.match(checkCloudInit(ci).all!, /at least/);
  assert.deepEqual(checkCloudInit({ ...ci, enabled: false }), {});
  assert.match(checkCloudInit({ ...ci, password: 'x' }).password!, /needs the user/);
  assert.match(checkCloudInit({ ...ci, user: 'Bad' }).user!, /lower-case/);
  assert.match(checkCloudInit({ ...ci, hostname: '-x' }).hostname!, /not starting/);
  assert.match(checkCloudInit({ ...ci, sshKey: '-----BEGIN OPENSSH PRIVATE KEY-----' }).sshKey!, /PRIVATE/);
  assert.match(checkCloudInit({ ...ci, sshKey: 'hello' }).sshKey!, /OpenSSH public key/);
  assert.deepEqual(checkCloudInit({ ...ci, user: 'alice', sshKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB me@h' }), {});
});

test('an ISO install: CD-ROM, new disk, NIC with forwards, boot disk then CD; the CLI twin says the same', () => {
  const c = defaultChoices();
  applyPreset(c, presetFor(GENERIC_OSES.find((o) => o.id === 'generic-windows')!));
  Object.assign(c, { name: 'win', isoPath: '/isos/win, 11.iso', portForwards: 'tcp::3389-:3389' });
  const req = buildCreateRequest(c, 'r1');
  assert.equal(req.requestId, 'r1');
  assert.deepEqual(req.definition.cdroms, [{ id: 'cd0', file: '/isos/win, 11.iso', bus: 'sata' }]);
  assert.deepEqual(req.definition.boot, { order: ['disk', 'cdrom'] });
  assert.deepEqual(req.newDisks, [{ sizeBytes: 64 * GiB, bus: 'sata' }]);
  assert.deepEqual(req.definition.nics, [{ id: 'net0', model: 'e1000', network: { type: 'user', portForwards: [{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 3389, guestPort: 3389 }] } }]);
  assert.equal(req.definition.firmware, 'uefi');
  assert.equal(createCommand(c), "hangar create --name win --os generic-windows --memory 4096 --vcpus 2 --firmware uefi --cdrom '/isos/win,, 11.iso,bus=sata' --new-disk 64G,bus=sata --nic user,model=e1000,hostfwd=tcp::3389-:3389");
});

test('import, kernel, network boot, passt, no network, cloud-init', () => {
  const c = { ...defaultChoices(), name: 'a', source: 'import' as const, importPath: '/d/x.vmdk', importMode: 'convert' as const };
  assert.deepEqual(buildCreateRequest(c).importDisks, [{ source: '/d/x.vmdk', mode: 'convert', bus: 'virtio-blk' }]);
  assert.equal(buildCreateRequest(c).newDisks, undefined, 'no blank disk next to an imported one');
  assert.match(createCommand(c), /--import-disk \/d\/x\.vmdk,convert,bus=virtio-blk/);

  const k = { ...defaultChoices(), name: 'k', source: 'kernel' as const, kernelPath: '/k', initrdPath: '/i', cmdline: 'console=ttyS0 quiet', storage: 'none' as const, network: 'none' as const };
  const kr = buildCreateRequest(k);
  assert.deepEqual((kr.definition.boot as { kernel: unknown }).kernel, { kernel: '/k', initrd: '/i', append: 'console=ttyS0 quiet' });
  assert.equal(kr.definition.nics, undefined);
  assert.equal(kr.newDisks, undefined);
  assert.match(createCommand(k), /--kernel \/k --initrd \/i --append 'console=ttyS0 quiet'/);

  const n = { ...defaultChoices(), name: 'n', source: 'network' as const, tftpDir: '/srv/tftp', bootfile: 'boot.ipxe' };
  const nr = buildCreateRequest(n);
  assert.deepEqual((nr.definition.boot as { order: string[] }).order, ['network', 'disk']);
  assert.deepEqual((nr.definition.nics as Array<{ network: unknown }>)[0]!.network, { type: 'user', portForwards: [], tftp: '/srv/tftp', bootfile: 'boot.ipxe' });
  assert.match(createCommand(n), /--pxe .*--nic user,model=virtio-net,tftp=\/srv\/tftp,bootfile=boot\.ipxe/);

  const p = { ...defaultChoices(), name: 'p', network: 'passt' as const, portForwards: 'tcp::8080-:80' };
  assert.equal((buildCreateRequest(p).definition.nics as Array<{ network: { type: string } }>)[0]!.network.type, 'passt');
  assert.match(createCommand(p), /--nic passt,model=virtio-net,hostfwd=tcp::8080-:80/);

  const ci = { ...defaultChoices(), name: 'c', cloudInit: { enabled: true, user: 'alice', password: 'pw', hostname: 'web-1', sshKey: ' ssh-ed25519 AAAA me \n' } };
  assert.deepEqual(buildCreateRequest(ci).cloudInit, { user: 'alice', password: 'pw', hostname: 'web-1', sshKeys: ['ssh-ed25519 AAAA me'] });
  const cmd = createCommand(ci);
  assert.match(cmd, /--cloud-init 'user=alice,password=\*+,hostname=web-1,ssh-key=KEY\.pub'/);
  assert.doesNotMatch(cmd, /pw/, 'the password is never shown');
});

test('grouped command lines keep each option with its value', () => {
  assert.equal(shellCommandGrouped(['qemu', '-m', 'size=512M', '-nodefaults', '-device', '{"a":1}']),
    "qemu \\\n  -m size=512M \\\n  -nodefaults \\\n  -device '{\"a\":1}'");
});
