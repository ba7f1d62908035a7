// Bridged NICs without touching the host: the helper's ACL as qemu-bridge-helper reads it, the
// reasons checkBridge gives against fixture sysfs trees, helper folders and ACL files, the
// wizard's bridge option, --nic bridge and the netdev QEMU gets (tests/integration/bridge.test.ts
// runs a real one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDefinition } from '../../core/common/definition.ts';
import { HangarError } from '../../core/common/errors.ts';
import { buildCreateRequest, createCommand, defaultChoices } from '../../core/common/new-vm.ts';
import { parseNic } from '../../core/node/cli/create-args.ts';
import {
  aclVerdict, bridgeAccess, checkBridge, findBridgeHelper, listBridges, parseBridgeAcl, usableBridges,
} from '../../core/node/host/bridges.ts';
import type { BridgeHostOptions } from '../../core/node/host/bridges.ts';
import { hostInfo } from '../../core/node/host/host-info.ts';
import { BusAllocator } from '../../core/node/qemu/devices/buses.ts';
import { netdevProps } from '../../core/node/qemu/devices/nic.ts';
import { buildArgv } from '../../core/node/qemu/vm-argv.ts';

const ID = '0b6c1c2e-8f0a-4c59-9d3e-8a6f1d1e2a3c';
const tmp = (p: string): string => mkdtempSync(join(tmpdir(), `hangar-${p}-`));

/** A file with `text` in a fresh folder (or in `dir`). */
function conf(text: string, dir = tmp('acl'), name = 'bridge.conf'): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

function allowed(file: string, bridge: string, cwd?: string): boolean {
  return aclVerdict(parseBridgeAcl(file, cwd ? { cwd } : {}), bridge).allowed;
}

function sysWith(devices: Record<string, boolean>): string {
  const root = tmp('sys');
  mkdirSync(join(root, 'class', 'net'), { recursive: true });
  for (const [name, isBridge] of Object.entries(devices)) {
    mkdirSync(join(root, 'class', 'net', name));
    if (isBridge) mkdirSync(join(root, 'class', 'net', name, 'bridge'));
  }
  return root;
}

/** A folder with an executable qemu-bridge-helper (mode as given). */
function helperDir(mode = 0o755): string {
  const dir = tmp('helper');
  const f = join(dir, 'qemu-bridge-helper');
  writeFileSync(f, '#!/bin/sh\nexit 1\n');
  chmodSync(f, mode);
  return dir;
}

const isRoot = process.geteuid?.() === 0;

// ---- the ACL ---------------------------------------------------------------------------------

test('ACL: allow NAME and allow all; comments, blank lines and white space; nothing allowed by default', () => {
  const f = conf('# the helper ACL\n\n   \nallow br0\n\t allow\tvirbr0\r\n  # allow br9\n');
  const acl = parseBridgeAcl(f);
  assert.equal(acl.fatal, undefined);
  assert.deepEqual(acl.rules.map((r) => [r.action, r.bridge, r.line, r.text]), [['allow', 'br0', 4, 'allow br0'], ['allow', 'virbr0', 5, 'allow virbr0']]);
  assert.equal(allowed(f, 'br0'), true);
  assert.equal(allowed(f, 'virbr0'), true, 'a tab separates when the line has no space after the command');
  assert.equal(allowed(f, 'br9'), false, 'a commented line allows nothing');
  assert.equal(allowed(f, 'br'), false, 'names match exactly');
  assert.equal(allowed(conf(''), 'br0'), false, 'an empty ACL denies everything');
  const all = conf('allow all\n');
  assert.equal(allowed(all, 'anything'), true);
  assert.deepEqual(parseBridgeAcl(all).rules[0]!.bridge, null);
});

test('ACL: deny wins over allow wherever the lines are (not "last line wins")', () => {
  assert.equal(allowed(conf('allow br0\ndeny br0\n'), 'br0'), false);
  assert.equal(allowed(conf('deny br0\nallow br0\n'), 'br0'), false, 'an allow after the deny does not override it');
  assert.equal(allowed(conf('deny all\nallow br0\n'), 'br0'), false);
  assert.equal(allowed(conf('allow all\ndeny br1\n'), 'br0'), true);
  assert.equal(allowed(conf('allow all\ndeny br1\n'), 'br1'), false);
  const v = aclVerdict(parseBridgeAcl(conf('allow all\nallow br1\ndeny br1\n')), 'br1');
  assert.deepEqual([v.allowed, v.allowedBy?.line, v.deniedBy?.line, v.deniedBy?.text], [false, 1, 3, 'deny br1']);
});

test('ACL: include (absolute and relative to the working directory), missing includes ignored, loops read once', () => {
  const dir = tmp('inc');
  conf('allow br1\n', dir, 'more.conf');
  conf('deny br2\n', dir, 'deny.conf');
  const main = conf(`include ${join(dir, 'more.conf')}\ninclude deny.conf\ninclude /no/such/file.conf\nallow br2\n`, dir);
  const acl = parseBridgeAcl(main, { cwd: dir });
  assert.equal(acl.fatal, undefined, 'a missing include is not fatal');
  assert.equal(acl.ignored.length, 1);
  assert.match(acl.ignored[0]!.message, /included from .*bridge\.conf line 3: the file does not exist/);
  assert.equal(aclVerdict(acl, 'br1').allowed, true, 'rules from an included file count');
  assert.equal(aclVerdict(acl, 'br2').allowed, false, 'a deny in an included file wins');
  assert.equal(allowed(main, 'br2', tmp('elsewhere')), true, 'relative includes are opened from the working directory');
  // a includes b includes a
  const loop = tmp('loop');
  conf(`allow la\ninclude ${join(loop, 'b.conf')}\n`, loop, 'a.conf');
  conf(`allow lb\ninclude ${join(loop, 'a.conf')}\n`, loop, 'b.conf');
  const l = parseBridgeAcl(join(loop, 'a.conf'));
  assert.deepEqual(l.rules.map((r) => r.bridge), ['la', 'lb']);
});

test('ACL: a missing or invalid main file refuses every bridge; a bad line in an include only ends that file', () => {
  const missing = parseBridgeAcl(join(tmp('none'), 'bridge.conf'));
  assert.equal(missing.fatal?.kind, 'missing');
  assert.equal(aclVerdict(missing, 'br0').allowed, false);
  for (const [text, re] of [
    ['allow br0\nallow\n', /"allow" has no argument/],
    ['allow br0\npermit br1\n', /unknown command "permit"/],
    ['allow br0\nallow a-name-of-16-chr\n', /too long \(16 characters/],
    ['allow\tbr0 br1\n', /unknown command "allow\tbr0"/], // the command ends at the first space, not the tab
  ] as const) {
    const acl = parseBridgeAcl(conf(text));
    assert.equal(acl.fatal?.kind, 'invalid', text);
    assert.match(acl.fatal!.message, re);
    assert.equal(aclVerdict(acl, 'br0').allowed, false, `${JSON.stringify(text)}: nothing is allowed`);
  }
  assert.equal(parseBridgeAcl(conf('allow br0\nallow\n')).fatal?.line, 2);
  const dir = tmp('badinc');
  conf('allow br1\nbogus line\nallow br2\n', dir, 'bad.conf');
  const main = conf(`include ${join(dir, 'bad.conf')}\nallow br0\n`, dir);
  const acl = parseBridgeAcl(main);
  assert.equal(acl.fatal, undefined);
  assert.match(acl.ignored[0]!.message, /unknown command "bogus"/);
  assert.deepEqual(['br0', 'br1', 'br2'].map((b) => aclVerdict(acl, b).allowed), [true, true, false], 'rules before the bad line count, after it not');
  assert.equal(allowed(conf('allow br0 # mine\n'), 'br0'), false, 'no trailing comments: the name is "br0 # mine"');
});

// ---- checkBridge -----------------------------------------------------------------------------

function host(over: Partial<BridgeHostOptions> & { acl?: string | null } = {}): BridgeHostOptions {
  const { acl = 'allow br0\n', ...rest } = over;
  const dir = tmp('etc');
  return {
    sysRoot: sysWith({ eth0: false, br0: true, virbr0: true }),
    confPath: acl === null ? join(dir, 'qemu', 'bridge.conf') : conf(acl, dir),
    helperDirs: [helperDir()],
    uid: 0,
    ...rest,
  };
}

function reason(name: string, opts: BridgeHostOptions): HangarError {
  try {
    checkBridge(name, opts);
  } catch (e) {
    assert.ok(e instanceof HangarError, String(e));
    assert.equal(e.code, 'host-missing');
    return e;
  }
  assert.fail(`checkBridge(${name}) did not throw`);
}

test('checkBridge: usable as root when the bridge exists and the ACL allows it; returns the helper found', () => {
  const opts = host();
  assert.equal(checkBridge('br0', opts), join(opts.helperDirs![0]!, 'qemu-bridge-helper'));
  assert.equal(findBridgeHelper([tmp('empty'), ...opts.helperDirs!]), join(opts.helperDirs![0]!, 'qemu-bridge-helper'), 'the first folder that has it');
  assert.deepEqual(listBridges(opts.sysRoot), ['br0', 'virbr0']);
});

test('checkBridge: no such bridge lists the bridges there are; a device that is not a bridge says so', () => {
  const e = reason('br7', host());
  assert.match(e.message, /cannot use host bridge br7: there is no bridge br7 on this host \(this host's bridges: br0, virbr0\)/);
  assert.match(e.hint!, /use one of br0, virbr0, or create it: sudo ip link add br7 type bridge/);
  const none = reason('br0', host({ sysRoot: sysWith({ eth0: false }) }));
  assert.match(none.message, /this host has no bridge/);
  assert.match(none.hint!, /^create it: sudo ip link add br0 type bridge && sudo ip link set br0 up/);
  const eth = reason('eth0', host());
  assert.match(eth.message, /the network device eth0 is not a bridge/);
});

test('checkBridge: helper missing -> install qemu-system-common', () => {
  const e = reason('br0', host({ helperDirs: [tmp('nohelper')] }));
  assert.match(e.message, /qemu-bridge-helper is not installed \(looked in /);
  assert.equal(e.hint, 'sudo apt-get install qemu-system-common');
  const noExec = helperDir(0o644);
  assert.match(reason('br0', host({ helperDirs: [noExec] })).message, /not installed/, 'a helper that is not executable does not count');
});

test('checkBridge: not root and the helper not setuid root -> chmod u+s; setuid root is enough', () => {
  const dirs = [helperDir(0o755)];
  const helper = join(dirs[0]!, 'qemu-bridge-helper');
  const e = reason('br0', host({ uid: 1000, helperDirs: dirs }));
  assert.match(e.message, /is not setuid root, so it cannot create a tap device when QEMU runs as user 1000/);
  assert.equal(e.hint, `sudo chmod u+s ${helper}`);
  chmodSync(helper, 0o4755);
  if (isRoot) {
    assert.equal(checkBridge('br0', host({ uid: 1000, helperDirs: dirs })), helper, 'a root-owned setuid helper works for any user');
    chownSync(helper, 1234, 0);
    chmodSync(helper, 0o4755); // chown clears the setuid bit
  }
  const owner = reason('br0', host({ uid: 1000, helperDirs: dirs }));
  assert.match(owner.message, /is setuid but owned by uid \d+, not root/);
  assert.equal(owner.hint, `sudo chown root ${helper} && sudo chmod u+s ${helper}`);
});

test('checkBridge: the ACL does not allow the bridge -> echo "allow NAME" | sudo tee -a CONF', () => {
  const opts = host({ acl: 'allow br0\n' });
  const e = reason('virbr0', opts);
  assert.match(e.message, /the bridge helper's ACL .*bridge\.conf does not allow bridge virbr0/);
  assert.equal(e.hint, `echo "allow virbr0" | sudo tee -a ${opts.confPath}`);
  // No ACL file at all (nor its folder): the helper refuses every bridge; the fix makes both.
  const none = host({ acl: null });
  const m = reason('br0', none);
  assert.match(m.message, /ACL file .*bridge\.conf does not exist, so qemu-bridge-helper refuses every bridge/);
  assert.equal(m.hint, `sudo mkdir -p ${join(none.confPath!, '..')} && echo "allow br0" | sudo tee -a ${none.confPath}`);
});

test('checkBridge: a deny line (or deny all) -> delete that line; an invalid ACL -> fix that line', () => {
  const opts = host({ acl: 'allow all\ndeny virbr0\n' });
  const e = reason('virbr0', opts);
  assert.match(e.message, /the bridge helper's ACL denies bridge virbr0: line 2 of .* is "deny virbr0" \(a deny wins over any allow\)/);
  assert.equal(e.hint, `delete line 2 ("deny virbr0") of ${opts.confPath} (e.g. sudo sed -i '2d' ${opts.confPath})`);
  assert.equal(checkBridge('br0', opts).endsWith('qemu-bridge-helper'), true);
  const denyAll = host({ acl: 'deny all\n' });
  assert.match(reason('br0', denyAll).hint!, /delete line 1 \("deny all"\) .* and allow the bridge: echo "allow br0" \| sudo tee -a /);
  const bad = host({ acl: 'allow br0\nallow\n' });
  const b = reason('br0', bad);
  assert.match(b.message, /line 2 of the bridge helper's ACL file .* is invalid: "allow" has no argument.*refuses every bridge until it is fixed/);
  assert.match(b.hint!, /fix or delete line 2 of /);
});

test('the wizard\'s bridge option: the usable bridges, else the reason and fix', async () => {
  assert.deepEqual(usableBridges(host({ acl: 'allow all\ndeny virbr0\n' })), { available: true, bridges: ['br0'] });
  const none = usableBridges(host({ acl: 'allow br9\n' }));
  assert.equal(none.available, false);
  assert.deepEqual(none.bridges, []);
  assert.match(none.reason!, /this user may use none of this host's bridges \(br0, virbr0\): .*does not allow bridge br0/);
  assert.match(none.fix!, /echo "allow br0" \| sudo tee -a /);
  const noHelper = usableBridges(host({ helperDirs: [tmp('nohelper')] }));
  assert.match(noHelper.reason!, /qemu-bridge-helper is not installed/);
  assert.equal(noHelper.fix, 'sudo apt-get install qemu-system-common');
  assert.match(usableBridges(host({ sysRoot: sysWith({ eth0: false }) })).reason!, /this host has no network bridge/);
  // hostInfo passes the same options through.
  const o = host({ acl: 'allow virbr0\n' });
  const hi = await hostInfo({ dataDir: tmp('data'), sysRoot: o.sysRoot!, bridge: { confPath: o.confPath!, helperDirs: o.helperDirs!, uid: 0 }, findBinary: () => null });
  assert.deepEqual(hi.network.bridge, { available: true, bridges: ['virbr0'] });
  assert.equal(bridgeAccess('virbr0', o).usable, true);
});

// ---- model, CLI, argv ------------------------------------------------------------------------

function def(network: Record<string, unknown>) {
  return parseDefinition({ version: 1, id: ID, name: 'b', nics: [{ id: 'net0', mac: '52:54:00:00:00:01', network }] });
}

test('model: a bridge network is { type: bridge, bridge: NAME } with an interface name', () => {
  assert.deepEqual(def({ type: 'bridge', bridge: 'br0' }).nics[0]!.network, { type: 'bridge', bridge: 'br0', vhost: false });
  assert.deepEqual(def({ type: 'bridge', bridge: 'virbr0.10', future: 1 }).nics[0]!.network, { type: 'bridge', bridge: 'virbr0.10', vhost: false, future: 1 }, 'unknown fields kept');
  for (const bad of ['', 'a-name-of-16-chr', 'br/0', 'br 0', 'br:0']) {
    assert.throws(() => def({ type: 'bridge', bridge: bad }), (e: unknown) => e instanceof HangarError && /a bridge name is 1-15 letters, digits/.test(e.message), bad);
  }
  assert.throws(() => def({ type: 'bridge' }), HangarError);
  // The wizard's request and its CLI equivalent.
  const c = { ...defaultChoices(), name: 'w', network: 'bridge' as const, bridge: 'br0', portForwards: 'tcp::2222-:22' };
  const req = buildCreateRequest(c);
  assert.deepEqual((req.definition.nics as Array<{ network: unknown }>)[0]!.network, { type: 'bridge', bridge: 'br0' });
  assert.match(createCommand(c), / --nic bridge,br=br0,model=virtio-net$/);
});

test('--nic bridge,br=NAME[,model=..][,mac=..]; br= required; hostfwd/tftp/bootfile refused', async () => {
  assert.deepEqual(await parseNic('bridge,br=br0', 0), { id: 'net0', network: { type: 'bridge', bridge: 'br0' } });
  assert.deepEqual(await parseNic('bridge,br=virbr0,model=e1000,mac=52:54:00:AB:CD:EF,id=lan', 2),
    { id: 'lan', model: 'e1000', mac: '52:54:00:ab:cd:ef', network: { type: 'bridge', bridge: 'virbr0' } });
  assert.deepEqual((await parseNic('bridge,br=on', 0)).network, { type: 'bridge', bridge: 'on' }, 'a bridge may be called "on"');
  for (const spec of ['bridge', 'bridge,br=', 'bridge,br']) {
    await assert.rejects(parseNic(spec, 0), /--nic bridge needs the host bridge: br=NAME/, spec);
  }
  await assert.rejects(parseNic('bridge,br=br0,hostfwd=tcp::2222-:22', 0), (e: unknown) => e instanceof HangarError && /--nic bridge: hostfwd= is only for user-mode NICs/.test(e.message) && /--nic user\|passt,hostfwd/.test(e.hint!));
  await assert.rejects(parseNic('bridge,br=br0,tftp=/srv', 0), /--nic bridge: tftp= is only for user-mode NICs/);
  await assert.rejects(parseNic('bridge,br=br0,bootfile=x', 0), /--nic bridge: bootfile= is only for user-mode NICs/);
  assert.deepEqual(await parseNic('bridge,br=br0,vhost=on', 0), { id: 'net0', network: { type: 'bridge', bridge: 'br0', vhost: true } });
  await assert.rejects(parseNic('bridge,br=br0,vhost=maybe', 0), /vhost= is on or off/);
  await assert.rejects(parseNic('bridge,br=br0,server=on', 0), /unknown option "server"/);
  await assert.rejects(parseNic('vde', 0), /unknown network back end .*bridge = /);
});

test('netdev: a bridge NIC is QEMU\'s bridge netdev naming the bridge and the helper', () => {
  const nic = def({ type: 'bridge', bridge: 'br0' }).nics[0]!;
  const ctx = { machine: 'q35' as const, buses: new BusAllocator('q35'), bootIndex: new Map<string, number>() };
  assert.deepEqual(netdevProps(nic, { ...ctx, bridgeHelper: '/usr/lib/qemu/qemu-bridge-helper' }),
    { type: 'bridge', id: 'net0-net', br: 'br0', helper: '/usr/lib/qemu/qemu-bridge-helper' });
  assert.throws(() => netdevProps(nic, ctx), /no bridge helper was given/);
  const paths = { qmpSocket: '/r/qmp.sock', serialSocket: '/r/serial0.sock', pidfile: '/r/qemu.pid' };
  const argv = buildArgv(def({ type: 'bridge', bridge: 'br0' }), { accel: 'tcg', paths, bridgeHelper: '/h/qemu-bridge-helper' });
  assert.ok(argv.includes('{"type":"bridge","id":"net0-net","br":"br0","helper":"/h/qemu-bridge-helper"}'), argv.join(' '));
});
