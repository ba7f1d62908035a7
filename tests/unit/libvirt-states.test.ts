// The libvirt driver's pure parts on output captured from virsh 9.0 (LC_ALL=C): domain lists,
// domstats blocks, dominfo, event lines, the state mapping onto Hangar's states, virsh's error
// messages onto error codes, quoting for virsh's own parser, and the XML facts delete needs.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mapLibvirtState } from '../../core/node/libvirt/states.ts';
import {
  parseDominfo, parseDomstats, parseEventLine, parseNameList, parseUuidNameList, summaryFromStats,
} from '../../core/node/libvirt/virsh-parse.ts';
import { classifyVirshError, virshQuote } from '../../core/node/libvirt/virsh.ts';
import { readDomainFacts } from '../../core/node/libvirt/domain-facts.ts';
import { libvirtSupported, libvirtUnsupported, unsupportedError } from '../../core/node/libvirt/unsupported.ts';
import { coreApiMethods } from '../../core/common/api.ts';

const DOMSTATS = `Domain: 'web 1'
  state.state=1
  state.reason=1
  balloon.current=262144
  balloon.maximum=524288
  vcpu.current=2
  vcpu.maximum=4
  vcpu.0.state=1

Domain: 'db'
  state.state=5
  state.reason=3
  balloon.current=262144
  balloon.maximum=262144
  vcpu.current=1
  vcpu.maximum=1

`;

const DOMINFO = `Id:             1
Name:           hlvexp-a
UUID:           d5ac235d-fe08-48ee-a8a4-a3e0254876b4
OS Type:        hvm
State:          running
CPU(s):         1
CPU time:       6.8s
Max memory:     262144 KiB
Used memory:    262144 KiB
Persistent:     yes
Autostart:      disable
Managed save:   no
Security model: none
Security DOI:   0

`;

describe('virsh output parsers', () => {
  test('list --uuid --name: uuid and the rest of the line as the name', () => {
    assert.deepEqual(parseUuidNameList('d5ac235d-fe08-48ee-a8a4-a3e0254876b4 web 1\nD5AC235D-FE08-48EE-A8A4-A3E0254876B5 db\n\n'), [
      { uuid: 'd5ac235d-fe08-48ee-a8a4-a3e0254876b4', name: 'web 1' },
      { uuid: 'd5ac235d-fe08-48ee-a8a4-a3e0254876b5', name: 'db' },
    ]);
    assert.deepEqual(parseNameList('a\nb c\n\n'), ['a', 'b c']);
  });

  test('domstats blocks by domain name; summaries in MiB with the state mapped', () => {
    const stats = parseDomstats(DOMSTATS);
    assert.deepEqual([...stats.keys()], ['web 1', 'db']);
    assert.equal(stats.get('web 1')?.get('vcpu.0.state'), '1');
    assert.deepEqual(summaryFromStats('u1', 'web 1', stats.get('web 1'), false), { id: 'u1', name: 'web 1', state: 'running', vcpus: 2, memoryMiB: 512 });
    const db = summaryFromStats('u2', 'db', stats.get('db'), false);
    assert.equal(db.state, 'crashed');
    assert.match(db.reason ?? '', /crashed/);
  });

  test('dominfo fields', () => {
    const info = parseDominfo(DOMINFO);
    assert.equal(info.get('UUID'), 'd5ac235d-fe08-48ee-a8a4-a3e0254876b4');
    assert.equal(info.get('Managed save'), 'no');
    assert.equal(info.get('Autostart'), 'disable');
    assert.equal(info.get('Id'), '1');
  });

  test('event lines: lifecycle with detail, others without; noise ignored', () => {
    assert.deepEqual(parseEventLine("event 'lifecycle' for domain 'hlvexp-a': Started Booted"), { event: 'lifecycle', domain: 'hlvexp-a', detail: 'Started Booted' });
    assert.deepEqual(parseEventLine("event 'reboot' for domain 'x y'"), { event: 'reboot', domain: 'x y' });
    assert.deepEqual(parseEventLine("2026-12-06 07:50:51.711+0000: event 'lifecycle' for domain 'a': Suspended Paused"), { event: 'lifecycle', domain: 'a', detail: 'Suspended Paused' });
    assert.equal(parseEventLine('\tcputune.vcpupin0=0-3'), null);
    assert.equal(parseEventLine(''), null);
  });
});

describe('libvirt states onto Hangar states', () => {
  const cases: Array<[number, number, boolean, string]> = [
    [1, 1, false, 'running'], [2, 0, false, 'running'], [3, 1, false, 'paused'], [3, 11, false, 'starting'],
    [4, 1, false, 'shutting-down'], [5, 1, false, 'stopped'], [5, 2, false, 'stopped'], [5, 3, false, 'crashed'],
    [5, 5, true, 'saved'], [5, 0, true, 'saved'], [6, 1, false, 'crashed'], [7, 0, false, 'paused'], [0, 0, false, 'starting'],
  ];
  for (const [state, reason, managedSave, want] of cases) {
    test(`state ${state} reason ${reason}${managedSave ? ' with managed save' : ''} -> ${want}`, () => {
      assert.equal(mapLibvirtState({ state, reason, managedSave }).state, want);
    });
  }
  test('reasons in words where the state hides them', () => {
    assert.match(mapLibvirtState({ state: 3, reason: 5, managedSave: false }).reason ?? '', /I\/O error/);
    assert.match(mapLibvirtState({ state: 7, reason: 0, managedSave: false }).reason ?? '', /S3/);
    assert.equal(mapLibvirtState({ state: 3, reason: 1, managedSave: false }).reason, undefined);
  });
});

describe('virsh errors', () => {
  const uri = 'qemu:///system';
  const cases: Array<[string, string]> = [
    ["error: failed to get domain 'nosuch'\n", 'not-found'],
    ["error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory\n", 'daemon-unavailable'],
    ["error: failed to connect to the hypervisor\nerror: internal error: unexpected qemu URI path '/nosuch', try qemu:///system\n", 'daemon-unavailable'],
    ['error: failed to connect to the hypervisor\nerror: Cannot recv data: ssh: connect to host 127.0.0.9 port 22: Connection refused: Connection reset by peer\n', 'daemon-unavailable'],
    ["error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': Permission denied\n", 'permission'],
    ["error: Failed to suspend domain 'a'\nerror: Requested operation is not valid: domain is not running\n", 'invalid-state'],
    ["error: Failed to start domain 'a'\nerror: internal error: qemu unexpectedly closed the monitor: boom\n", 'qemu-failed'],
    ['error: something new\n', 'internal'],
  ];
  for (const [stderr, code] of cases) {
    test(`${stderr.split('\n').at(-2)} -> ${code}`, () => {
      const e = classifyVirshError(uri, ['start', 'a'], stderr, 1);
      assert.equal(e.code, code);
      assert.ok(!/(^|; |: )error:/.test(e.message), e.message); // virsh's "error: " prefixes dropped
      if (code !== 'invalid-state' && code !== 'qemu-failed') assert.ok(e.hint, `${code} has a hint`);
    });
  }
  test('cannot connect: the hint says to start libvirtd or check the URI', () => {
    const e = classifyVirshError(uri, ['list'], 'error: failed to connect to the hypervisor\n', 1);
    assert.match(e.hint ?? '', /libvirtd/);
    assert.match(e.hint ?? '', /URI/);
  });
});

test('virshQuote: single quotes, a quote inside closed, escaped and reopened', () => {
  assert.equal(virshQuote('a b'), "'a b'");
  assert.equal(virshQuote("it's"), "'it'\\''s'");
  assert.equal(virshQuote('x;y#z'), "'x;y#z'");
});

test('unsupported: every CoreApi method is either done by the driver or has a reason; the error says what, why and what instead', () => {
  for (const m of coreApiMethods) {
    const supported = (libvirtSupported as readonly string[]).includes(m);
    assert.notEqual(supported, m in libvirtUnsupported, `${m}: supported xor listed as unsupported`);
  }
  for (const [m, why] of Object.entries(libvirtUnsupported)) {
    assert.ok((coreApiMethods as readonly string[]).includes(m), `${m} is a CoreApi method`);
    assert.ok(why && why.length > 10);
    const e = unsupportedError(m as keyof typeof libvirtUnsupported);
    assert.equal(e.code, 'unsupported');
    assert.match(e.message, / is not available on a libvirt connection: /);
    assert.ok(e.hint);
  }
});

describe('domain XML facts for delete', () => {
  test('disks, NVRAM and TPM state', () => {
    const f = readDomainFacts(`<domain type='kvm'><name>a</name><uuid>d5ac235d-fe08-48ee-a8a4-a3e0254876b4</uuid>
      <os firmware='efi'><type>hvm</type><nvram>/var/lib/libvirt/qemu/nvram/a_VARS.fd</nvram></os>
      <devices>
        <disk type='file' device='disk'><source file='/images/a.qcow2'/><target dev='vda'/></disk>
        <disk type='file' device='cdrom'><source file='/iso/x.iso'/><target dev='sda'/><readonly/></disk>
        <disk type='volume' device='disk'><source pool='default' volume='b.qcow2'/><target dev='vdb'/><shareable/></disk>
        <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>
      </devices></domain>`);
    assert.equal(f.name, 'a');
    assert.equal(f.hasNvram, true);
    assert.equal(f.hasTpmState, true);
    assert.deepEqual(f.disks.map((d) => [d.device, d.file ?? `${d.pool}/${d.volume}`, d.readonly, d.shareable]), [
      ['disk', '/images/a.qcow2', false, false], ['cdrom', '/iso/x.iso', true, false], ['disk', 'default/b.qcow2', false, true],
    ]);
    const plain = readDomainFacts("<domain><name>b</name><os><type>hvm</type></os><devices/></domain>");
    assert.equal(plain.hasNvram, false);
    assert.equal(plain.hasTpmState, false);
    assert.deepEqual(plain.disks, []);
  });
});
