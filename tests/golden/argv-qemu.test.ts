// Runs every golden argv through a real qemu-system-x86_64 (paused by -S) and checks over QMP that
// QEMU accepted it and created every device, block node and PCI function it names.
// Never skips: a missing QEMU or test guest is a broken test host.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { parseDefinition } from '../../core/common/definition.ts';
import { startQsd, stopQsd } from '../../core/node/service/storage-daemon.ts';
import type { QsdPaths } from '../../core/node/service/storage-daemon.ts';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { HangarError } from '../../core/common/errors.ts';
import { listFirmwareDescriptors } from '../../core/node/host/firmware.ts';
import { QmpClient } from '../../core/node/qmp/client.ts';
import { startSwtpm, stopSwtpm } from '../../core/node/service/swtpm.ts';
import { startPasst, stopPasst } from '../../core/node/service/passt.ts';
import type { PasstPaths } from '../../core/node/service/passt.ts';
import type { SwtpmPaths } from '../../core/node/service/swtpm.ts';
import type { PciDeviceInfo } from '../../core/node/qmp/client.ts';
import { findBridgeHelper } from '../../core/node/host/bridges.ts';
import { BRIDGE_HELPER_PLACEHOLDER, FIXTURE_BRIDGE, FIXTURE_PREFIX, RUN_PATHS, RUN_PREFIX, expectedPath, fixtureNames, parseArgv } from './golden.ts';
import { withTimeout } from '../helpers/with-timeout.ts';
import { addAclLines, createBridge, requireRoot, testBridgeName } from '../helpers/bridge-host.ts';
import type { TestBridge } from '../helpers/bridge-host.ts';
import { createTap } from '../helpers/tap-host.ts';
import { reserveHugepages2M } from '../helpers/hugepages.ts';
import type { TestTap } from '../helpers/tap-host.ts';
import { connectVhostUserStub, listenVhostUserStub } from '../helpers/vhost-user-net-stub.ts';
import type { VhostUserStub } from '../helpers/vhost-user-net-stub.ts';
import { startVirtiofsd, stopVirtiofsd } from '../../core/node/service/virtiofsd.ts';
import type { VirtiofsdPaths } from '../../core/node/service/virtiofsd.ts';

const QEMU = 'qemu-system-x86_64';
const GUEST_DIR = join(homedir(), '.cache', 'hangar-test-guest');
const PCI_DRIVERS = new Set(['virtio-blk-pci', 'virtio-net-pci', 'virtio-scsi-pci', 'e1000', 'rtl8139', 'ahci', 'virtio-serial-pci', 'vhost-user-fs-pci', 'virtio-mem-pci']);

type Json = Record<string, unknown>;

/** The JSON objects following each occurrence of `opt` in argv. */
function jsonArgs(argv: readonly string[], opt: string): Json[] {
  const out: Json[] = [];
  for (let i = 0; i < argv.length - 1; i++) if (argv[i] === opt) out.push(JSON.parse(argv[i + 1]!) as Json);
  return out;
}

function valueArg(argv: readonly string[], opt: string): string | undefined {
  const i = argv.indexOf(opt);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** The real bridge this run puts the fixtures' bridge NICs on (created per fixture, see runFixture). */
const TEST_BRIDGE = testBridgeName('hgtbr');
/** Fixtures name this tap; the run makes a real one (TEST_TAP) per fixture. */
const FIXTURE_TAP = 'hgttap-fixture';
const TEST_TAP = testBridgeName('hgttap');

/** What the host lacks (a device node, a host device, its IOMMU group) and QEMU's first complaint about it. */
interface HostRefusal { node: string; firstLine: RegExp }

const reEscape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * The first VFIO device (host PCI device or mdev) of the argv, if this host cannot give it to
 * QEMU: the device is not there, it is in no IOMMU group (IOMMU off), or its group's /dev/vfio
 * node is missing (not bound to vfio-pci). QEMU 7.2's words, from vfio_realize / vfio_get_group:
 * the first two seen on this host (no IOMMU, no such devices), the third from QEMU's source.
 */
function vfioRefusal(argv: readonly string[]): HostRefusal | undefined {
  const v = jsonArgs(argv, '-device').find((d) => d.driver === 'vfio-pci');
  if (!v) return undefined;
  const dev = typeof v.sysfsdev === 'string' ? v.sysfsdev : `/sys/bus/pci/devices/${String(v.host)}`;
  const prefix = '^qemu-system-x86_64: -device \\{.*\\}: vfio ';
  if (!existsSync(dev)) return { node: dev, firstLine: new RegExp(`${prefix}${reEscape(dev)}: no such host device: No such file or directory$`) };
  const groupLink = join(dev, 'iommu_group');
  if (!existsSync(groupLink)) return { node: groupLink, firstLine: new RegExp(`${prefix}${reEscape(basename(dev))}: no iommu_group found: No such file or directory$`) };
  const groupNode = `/dev/vfio/${basename(realpathSync(groupLink))}`;
  if (!existsSync(groupNode)) return { node: groupNode, firstLine: new RegExp(`${prefix}${reEscape(basename(dev))}: failed to open ${reEscape(groupNode)}: No such file or directory$`) };
  return undefined;
}

/**
 * What a host without a device node makes QEMU refuse: the argv must parse up to that device,
 * and QEMU's first complaint must be exactly the missing node. (QEMU 7.2 then aborts on an
 * assertion after the vhost-net warning; the exit status is all that is checked past the line.)
 */
const HOST_REFUSALS: Array<(argv: readonly string[]) => HostRefusal | undefined> = [
  (argv) => (jsonArgs(argv, '-netdev').some((n) => n.vhost === true) && !existsSync('/dev/vhost-net')
    ? { node: '/dev/vhost-net', firstLine: /^qemu-system-x86_64: -netdev \{.*\}: warning: tap: open vhost char device failed: No such file or directory$/ } : undefined),
  (argv) => (jsonArgs(argv, '-device').some((d) => String(d.driver).startsWith('vhost-vsock')) && !existsSync('/dev/vhost-vsock')
    ? { node: '/dev/vhost-vsock', firstLine: /^qemu-system-x86_64: -device \{.*\}: vhost-vsock: failed to open vhost device: No such file or directory$/ } : undefined),
  vfioRefusal,
];

/** The refusal this host makes QEMU give for a fixture's golden argv, if any (decided when tests are listed, for the title). */
function hostRefusal(name: string): HostRefusal | undefined {
  const file = expectedPath(name);
  if (!existsSync(file)) return undefined;
  const argv = parseArgv(readFileSync(file, 'utf8'));
  for (const r of HOST_REFUSALS) {
    const found = r(argv);
    if (found) return found;
  }
  return undefined;
}

/** Host USB devices plugged in here, as vendor:product and bus-port (sysfs names like 1-1.4). */
function hostUsbPresent(): { ids: Set<string>; ports: Set<string> } {
  const root = '/sys/bus/usb/devices';
  const ids = new Set<string>();
  const ports = new Set<string>();
  if (!existsSync(root)) return { ids, ports };
  for (const name of readdirSync(root)) {
    if (!/^\d+-[\d.]+$/.test(name)) continue;
    ports.add(name);
    try {
      ids.add(`${readFileSync(join(root, name, 'idVendor'), 'utf8').trim()}:${readFileSync(join(root, name, 'idProduct'), 'utf8').trim()}`);
    } catch { /* an interface or a device going away */ }
  }
  return { ids, ports };
}

/**
 * usb-host fixtures name devices and ports no host has (pid.codes test ids, bus numbers above 200):
 * QEMU waits for them. Were one plugged in here, QEMU would take it from the host: refuse to run.
 */
function assertUsbHostAbsent(argv: readonly string[]): void {
  const present = hostUsbPresent();
  const hex = (n: unknown): string => Number(n).toString(16).padStart(4, '0');
  for (const d of jsonArgs(argv, '-device').filter((x) => x.driver === 'usb-host')) {
    if (d.vendorid !== undefined) assert.ok(!present.ids.has(`${hex(d.vendorid)}:${hex(d.productid)}`), `usb-host ${String(d.id)}: ${hex(d.vendorid)}:${hex(d.productid)} is plugged into this host; QEMU would take it: unplug it to run this test`);
    if (d.hostbus !== undefined) assert.ok(!present.ports.has(`${String(d.hostbus)}-${String(d.hostport)}`), `usb-host ${String(d.id)}: a device is in USB port ${String(d.hostbus)}-${String(d.hostport)} of this host; QEMU would take it`);
  }
}

function substitute(argv: readonly string[], fixtureDir: string, runDir: string): string[] {
  const out = argv.map((a) => a.replaceAll(FIXTURE_PREFIX, `${fixtureDir}/`).replaceAll(RUN_PREFIX, `${runDir}/`));
  // Bridge netdevs: the fixture's bridge becomes this run's bridge, the helper the one installed.
  for (let i = 0; i < out.length - 1; i++) {
    if (out[i] !== '-netdev') continue;
    const n = JSON.parse(out[i + 1]!) as Json;
    if (n.type === 'tap' && n.ifname !== undefined) {
      assert.equal(n.ifname, FIXTURE_TAP, `tap netdev ${String(n.id)}: fixtures use tap ${FIXTURE_TAP}`);
      out[i + 1] = JSON.stringify({ ...n, ifname: TEST_TAP });
      continue;
    }
    // A bridge NIC with vhost-net is a tap netdev running the helper.
    if (n.type !== 'bridge' && !(n.type === 'tap' && n.helper !== undefined)) continue;
    assert.equal(n.br, FIXTURE_BRIDGE, `bridge netdev ${String(n.id)}: fixtures use bridge ${FIXTURE_BRIDGE}`);
    assert.equal(n.helper, BRIDGE_HELPER_PLACEHOLDER, `bridge netdev ${String(n.id)}: the golden argv names the helper placeholder`);
    const helper = findBridgeHelper();
    assert.ok(helper, 'qemu-bridge-helper is not installed: apt-get install qemu-system-common');
    out[i + 1] = JSON.stringify({ ...n, br: TEST_BRIDGE, helper });
  }
  return out;
}

/** Creates every image, ISO, kernel and initrd the (substituted) argv refers to. */
async function createReferencedFiles(argv: readonly string[]): Promise<void> {
  const blockdevs = jsonArgs(argv, '-blockdev');
  const byNode = new Map(blockdevs.map((b) => [b['node-name'] as string, b]));
  for (const fmt of blockdevs.filter((b) => b.driver !== 'file')) {
    const fileNode = byNode.get(fmt.file as string);
    assert.ok(fileNode, `format node ${String(fmt['node-name'])} refers to unknown node ${String(fmt.file)}`);
    const path = fileNode.filename as string;
    if (fmt['node-name'] === 'fw-code-fmt') {
      // The fixture descriptors name Debian's OVMF paths: this host must have them.
      assert.ok(existsSync(path), `UEFI firmware ${path} is missing on this host: apt-get install ovmf`);
      continue;
    }
    if (fmt['node-name'] === 'fw-vars-fmt') {
      // The VM's own NVRAM: a copy of the template that goes with the code image.
      const code = byNode.get(byNode.get('fw-code-fmt')?.file as string)?.filename as string;
      const desc = listFirmwareDescriptors().find((d) => d.executable.filename === code);
      assert.ok(desc, `no firmware descriptor on this host names ${code}: apt-get install ovmf`);
      await copyFile(desc.nvramTemplate.filename, path);
      continue;
    }
    if (path.endsWith('.iso')) {
      await writeFile(path, '');
      continue;
    }
    const format = fmt.driver as string;
    assert.ok(format === 'raw' || format === 'qcow2', `fixture uses format ${format}; only raw and qcow2 are created`);
    const r = spawnSync('qemu-img', ['create', '-q', '-f', format, path, '16M'], { encoding: 'utf8' });
    assert.ok(!r.error && r.status === 0, `qemu-img create ${path} failed: ${r.error?.message ?? r.stderr}`);
  }
  // Shared folders (-fsdev local,path=DIR with QEMU's doubled commas): the folders must exist.
  argv.forEach((a, i) => {
    if (a !== '-fsdev') return;
    const m = /(?:^|,)path=((?:[^,]|,,)*)/.exec(argv[i + 1] ?? '');
    assert.ok(m, `-fsdev without a path: ${argv[i + 1]}`);
    mkdirSync(m[1]!.replaceAll(',,', ','), { recursive: true });
  });
  // File chardevs (serial port logs): their folder must exist.
  argv.forEach((a, i) => {
    if (a !== '-chardev' || !argv[i + 1]?.startsWith('file,')) return;
    const m = /(?:^|,)path=((?:[^,]|,,)*)/.exec(argv[i + 1]!);
    assert.ok(m, `file chardev without a path: ${argv[i + 1]}`);
    mkdirSync(dirname(m[1]!.replaceAll(',,', ',')), { recursive: true });
  });
  for (const [opt, source] of [['-kernel', 'vmlinuz'], ['-initrd', 'initrd.img']] as const) {
    const dest = valueArg(argv, opt);
    if (dest === undefined) continue;
    const src = join(GUEST_DIR, source);
    if (!existsSync(src)) {
      throw new Error(`the test guest's ${source} is missing (${src}): run \`bash tests/guest/build.sh\` first`);
    }
    await copyFile(src, dest);
  }
}

interface Exit { code: number | null; signal: NodeJS.Signals | null }

/** QEMU creates the socket shortly after start; retry until it accepts or the process dies. */
async function connectWhenReady(sock: string, proc: ChildProcess, stderr: () => string): Promise<QmpClient> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`QEMU refused the argv and exited (${proc.exitCode ?? proc.signalCode}):\n${stderr()}`);
    }
    try {
      return await QmpClient.connect(sock, { connectTimeoutMs: 10_000, commandTimeoutMs: 20_000 });
    } catch (e) {
      const notYet = e instanceof HangarError && e.code === 'qmp-closed' && /ENOENT|ECONNREFUSED/.test(e.message);
      if (!notYet || Date.now() > deadline) throw new Error(`cannot connect to QMP at ${sock}: ${String(e)}\n${stderr()}`, { cause: e });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function flattenPci(devices: readonly PciDeviceInfo[]): PciDeviceInfo[] {
  return devices.flatMap((d) => [d, ...flattenPci(d.pci_bridge?.devices ?? [])]);
}

/** socket chardevs whose id ends in `suffix`: id prefix, path, and whether QEMU is the server. */
function socketChardevs(argv: readonly string[], suffix: string): Array<{ id: string; path: string; server: boolean }> {
  const out: Array<{ id: string; path: string; server: boolean }> = [];
  argv.forEach((a, i) => {
    if (a !== '-chardev') return;
    const m = new RegExp(`^socket,id=([a-z0-9-]+)${suffix},path=((?:[^,]|,,)+)(,server=on,wait=off)?$`).exec(argv[i + 1] ?? '');
    if (m) out.push({ id: m[1]!, path: m[2]!.replaceAll(',,', ','), server: m[3] !== undefined });
  });
  return out;
}

async function runFixture(name: string): Promise<void> {
  const file = expectedPath(name);
  assert.ok(existsSync(file), `missing golden file ${file}: run UPDATE_GOLDEN=1 node --import tsx --test tests/golden/argv.test.ts`);
  const golden = parseArgv(await readFile(file, 'utf8'));
  const fixtureDir = await mkdtemp(join(tmpdir(), 'hangar-golden-fixture-'));
  // Short: unix socket paths are limited to 107 bytes.
  const runDir = await mkdtemp(join(tmpdir(), 'hg-'));
  let proc: ChildProcess | undefined;
  let exited: Promise<Exit> | undefined;
  let qmp: QmpClient | undefined;
  let stderr = '';
  let swtpm: SwtpmPaths | undefined;
  const passts: PasstPaths[] = [];
  const vhostUser: Array<{ id: string; socket: string }> = [];
  const qsds: QsdPaths[] = [];
  let bridge: TestBridge | undefined;
  let restoreAcl: (() => void) | undefined;
  let tap: TestTap | undefined;
  const stubs: VhostUserStub[] = [];
  const virtiofsds: VirtiofsdPaths[] = [];
  let restoreHugepages: (() => void) | undefined;
  const refusal = hostRefusal(name);
  try {
    const argv = substitute(golden, fixtureDir, runDir);
    assertUsbHostAbsent(argv);
    await createReferencedFiles(argv);
    // Bridge NICs: a real bridge, allowed in qemu-bridge-helper's ACL (both undone in finally).
    const bridged = jsonArgs(argv, '-netdev').filter((n) => n.type === 'bridge' || (n.type === 'tap' && n.helper !== undefined));
    if (bridged.length) {
      requireRoot(`fixture ${name} (bridged NICs)`);
      bridge = createBridge(TEST_BRIDGE);
      restoreAcl = addAclLines([`allow ${TEST_BRIDGE}`]);
    }
    // tap NICs: a real tap device (deleted in finally).
    const taps = jsonArgs(argv, '-netdev').filter((n) => n.type === 'tap' && n.ifname !== undefined);
    if (taps.length) {
      requireRoot(`fixture ${name} (tap NICs)`);
      tap = createTap(TEST_TAP);
    }
    if (argv.includes('-tpmdev')) {
      // The TPM back end: a real swtpm on the socket the argv names (it ends when QEMU quits).
      swtpm = { vmDir: fixtureDir, socket: join(runDir, basename(RUN_PATHS.swtpmSocket)), pidfile: join(runDir, 'swtpm.pid') };
      await startSwtpm(swtpm);
    }
    // passt NICs: a real passt on each stream netdev's socket (it ends when QEMU disconnects).
    const streams = jsonArgs(argv, '-netdev').filter((n) => n.type === 'stream');
    for (const n of streams) {
      const socket = (n.addr as Json).path as string;
      const p: PasstPaths = { vmDir: fixtureDir, nicId: String(n.id), socket, pidfile: socket.replace(/\.sock$/, '.pid') };
      passts.push(p);
      await startPasst(p, []);
    }
    // vhost-user-blk disks: a real qemu-storage-daemon on each vhost-user chardev's socket, serving a fresh image.
    argv.forEach((a, i) => {
      if (a !== '-chardev') return;
      const m = /^socket,id=([a-z0-9-]+)-vhost-user,path=(.+)$/.exec(argv[i + 1] ?? '');
      if (m) vhostUser.push({ id: m[1]!, socket: m[2]!.replaceAll(',,', ',') });
    });
    for (const v of vhostUser) {
      const file = join(fixtureDir, `${v.id}-qsd.qcow2`);
      const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, '16M'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const disk = parseDefinition({ version: 1, id: '00000000-0000-4000-8000-0000000000ff', name: 'qsd', disks: [{ id: v.id, file, bus: 'vhost-user-blk' }] }).disks[0]!;
      qsds.push({ vmDir: fixtureDir, socket: v.socket, pidfile: v.socket.replace(/\.sock$/, '.pid') });
      await startQsd(disk, qsds.at(-1)!);
    }

    // virtiofs shares: a real virtiofsd on each vhost-user-fs chardev's socket, serving a fresh folder.
    for (const v of socketChardevs(argv, '-virtiofs')) {
      const source = join(fixtureDir, `${v.id}-virtiofs`);
      mkdirSync(source);
      const share = parseDefinition({ version: 1, id: '00000000-0000-4000-8000-0000000000fe', name: 'vfs', shares: [{ id: v.id, driver: 'virtiofs', source, tag: 'golden' }] }).shares[0]!;
      virtiofsds.push({ vmDir: fixtureDir, socket: v.path, pidfile: v.path.replace(/\.sock$/, '.pid') });
      await startVirtiofsd(share, virtiofsds.at(-1)!);
    }
    // Huge page backends: the pool gets the pages (put back in finally).
    const hugeMiB = jsonArgs(argv, '-object').filter((o) => o.hugetlb === true).reduce((a, o) => a + Number(o.size) / 1048576, 0);
    if (hugeMiB) restoreHugepages = reserveHugepages2M(hugeMiB / 2, `fixture ${name} (huge pages)`);
    // vhost-user NICs: a control-plane-only back end, listening where QEMU connects (server off)...
    const vhostUserNets = socketChardevs(argv, '-vhu');
    for (const v of vhostUserNets.filter((x) => !x.server)) stubs.push(await listenVhostUserStub(v.path));

    const p = spawn(QEMU, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    proc = p;
    exited = new Promise((resolve) => p.once('exit', (code, signal) => resolve({ code, signal })));
    p.once('error', (e) => { stderr += `spawn error: ${e.message}\n`; });
    p.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    if (refusal) {
      const exit = await withTimeout(exited, 30_000, () => `QEMU did not refuse the argv although ${refusal.node} is missing:\n${stderr}`);
      assert.notDeepEqual(exit, { code: 0, signal: null }, `QEMU exit without ${refusal.node}; stderr:\n${stderr}`);
      const first = stderr.split('\n').find((l) => l.trim() !== '') ?? '';
      assert.match(first.replace(/^\d{4}-\d\d-\d\dT\S+ /, ''), refusal.firstLine, `QEMU's first complaint should be the missing ${refusal.node}; stderr:\n${stderr}`);
      if (bridged.length) assert.equal(bridge!.ports().length, 0, 'the refused tap was taken off the bridge again');
      return;
    }
    // ... and connecting to QEMU's socket (server on: QEMU waits for its back end before it serves QMP).
    for (const v of vhostUserNets.filter((x) => x.server)) stubs.push(await connectVhostUserStub(v.path));
    const client = await connectWhenReady(join(runDir, basename(RUN_PATHS.qmpSocket)), p, () => stderr);
    qmp = client;

    const status = await client.queryStatus();
    assert.equal(status.status, 'prelaunch', 'started paused by -S');
    const pid = (await readFile(join(runDir, basename(RUN_PATHS.pidfile)), 'utf8')).trim();
    assert.equal(pid, String(p.pid), 'pidfile names the QEMU process');

    // Every -device with an id is a child of /machine/peripheral.
    const devices = jsonArgs(argv, '-device');
    const peripherals = new Set((await client.qomList('/machine/peripheral')).map((prop) => prop.name));
    for (const d of devices) {
      const id = d.id as string;
      assert.ok(id, `-device ${JSON.stringify(d)} has no id`);
      assert.ok(peripherals.has(id), `device ${id} (${String(d.driver)}) missing from /machine/peripheral: ${[...peripherals].join(' ')}`);
    }

    // usb-host devices: there with the properties the argv set, waiting for a host device that is absent.
    for (const d of devices.filter((x) => x.driver === 'usb-host')) {
      const path = `/machine/peripheral/${String(d.id)}`;
      for (const prop of ['vendorid', 'productid', 'hostbus', 'hostport'] as const) {
        if (d[prop] !== undefined) assert.equal(await client.qomGet(path, prop), d[prop], `usb-host ${String(d.id)}: ${prop}`);
      }
      assert.equal(await client.qomGet(path, 'attached'), false, `usb-host ${String(d.id)} waits (no such device here)`);
    }

    // Every stream netdev is connected to its passt (QEMU starts without the peer, so ask it).
    if (streams.length) {
      const info = await client.execute<string>('human-monitor-command', { 'command-line': 'info network' });
      for (const n of streams) {
        const path = (n.addr as Json).path as string;
        assert.ok(info.includes(`${String(n.id)}: index=0,type=stream,unix:${path}`), `netdev ${String(n.id)} not connected to passt at ${path}:\n${info}`);
      }
    }

    // Every tap and vhost-user netdev is there with its back end.
    if (taps.length || vhostUserNets.length) {
      const info = await client.execute<string>('human-monitor-command', { 'command-line': 'info network' });
      for (const n of taps) assert.ok(info.includes(`${String(n.id)}: index=0,type=tap,ifname=${TEST_TAP},script=no,downscript=no`), `netdev ${String(n.id)} is not on tap ${TEST_TAP}:\n${info}`);
      for (const v of vhostUserNets) assert.match(info, new RegExp(`${v.id}-net: index=0,type=vhost-user,vhost-user\\d+ to ${v.id}-vhu\\r?\\n`), `netdev ${v.id}-net is not a connected vhost-user netdev:\n${info}`);
      for (const st of stubs) assert.ok(st.requests.includes(1), `the vhost-user back end was asked for its features (requests ${st.requests.join(',')})`);
    }

    // Every bridge netdev is a tap QEMU got from the helper, and that tap is on the bridge.
    if (bridged.length) {
      const info = await client.execute<string>('human-monitor-command', { 'command-line': 'info network' });
      for (const n of bridged.filter((b) => b.type === 'bridge')) {
        assert.ok(info.includes(`${String(n.id)}: index=0,type=tap,helper=${String(n.helper)},br=${TEST_BRIDGE}`), `netdev ${String(n.id)} is not a tap on ${TEST_BRIDGE}:\n${info}`);
      }
      assert.equal(bridge!.ports().length, bridged.length, `one tap per bridge NIC on ${TEST_BRIDGE}: ${bridge!.ports().join(' ')}`);
    }

    // Every format node is attached (query-block) or at least exists (query-named-block-nodes).
    const fmtNodes = jsonArgs(argv, '-blockdev').map((b) => b['node-name'] as string).filter((n) => n.endsWith('-fmt'));
    if (fmtNodes.length) {
      const inserted = new Set((await client.queryBlock()).map((b) => b.inserted?.['node-name']).filter((n) => n !== undefined));
      const named = new Set((await client.execute<Array<{ 'node-name': string }>>('query-named-block-nodes')).map((n) => n['node-name']));
      for (const n of fmtNodes) assert.ok(inserted.has(n) || named.has(n), `block node ${n} unknown to QEMU`);
    }

    // Every memory backend is there with its size, sharing, huge pages, KSM merging and host-node policy.
    const backends = jsonArgs(argv, '-object').filter((o) => String(o['qom-type']).startsWith('memory-backend-'));
    if (backends.length) {
      type Memdev = { id: string; size: number; merge: boolean; share: boolean; policy: string; 'host-nodes': number[] };
      const memdevs = new Map((await client.execute<Memdev[]>('query-memdev')).map((m) => [m.id, m]));
      for (const b of backends) {
        const m = memdevs.get(String(b.id));
        assert.ok(m, `memory backend ${String(b.id)} unknown to QEMU`);
        assert.equal(m.size, b.size, `${String(b.id)}: size`);
        assert.equal(m.merge, b.merge !== false, `${String(b.id)}: merge (KSM)`);
        assert.equal(m.share, b.share ?? String(b['qom-type']) === 'memory-backend-memfd', `${String(b.id)}: share`);
        assert.deepEqual(m['host-nodes'], b['host-nodes'] ?? [], `${String(b.id)}: host nodes`);
        assert.equal(m.policy, b.policy ?? 'default', `${String(b.id)}: policy`);
        if (b.hugetlb === true) assert.equal(await client.qomGet(`/objects/${String(b.id)}`, 'hugetlbsize'), b.hugetlbsize, `${String(b.id)}: huge page size`);
      }
    }
    // Guest NUMA nodes: as many as the argv names, with their memory and vCPUs (HMP info numa).
    const numaNodes = argv.filter((a, i) => argv[i - 1] === '-numa' && a.startsWith('node,'));
    if (numaNodes.length) {
      const info = await client.execute<string>('human-monitor-command', { 'command-line': 'info numa' });
      assert.match(info, new RegExp(`^${numaNodes.length} nodes`, 'm'), info);
      for (const [i, n] of numaNodes.entries()) {
        const size = backends.find((b) => b.id === /memdev=([^,]+)/.exec(n)![1])!.size as number;
        assert.match(info, new RegExp(`node ${i} size: ${size / 1048576} MB`), info);
      }
    }
    // virtio-mem: the device over its backend, nothing plugged yet, the boot memory apart from it.
    const vmems = devices.filter((d) => d.driver === 'virtio-mem-pci');
    if (vmems.length) {
      type MemDev = { type: string; data: { id: string; memdev: string; size: number; 'requested-size': number; 'max-size': number; 'block-size': number } };
      const listed = (await client.execute<MemDev[]>('query-memory-devices')).filter((m) => m.type === 'virtio-mem');
      for (const d of vmems) {
        const m = listed.find((x) => x.data.id === d.id);
        assert.ok(m, `virtio-mem device ${String(d.id)} missing from query-memory-devices`);
        const backend = backends.find((b) => b.id === d.memdev)!;
        assert.equal(m.data.memdev, `/objects/${String(d.memdev)}`, `${String(d.id)}: memdev`);
        assert.equal(m.data['max-size'], backend.size, `${String(d.id)}: the whole backend is its room`);
        assert.equal(m.data['requested-size'], d['requested-size'], `${String(d.id)}: requested size`);
        assert.equal(m.data.size, 0, `${String(d.id)}: nothing plugged before the guest runs`);
        assert.equal(m.data['block-size'], backend.hugetlb === true ? backend.hugetlbsize : 2 * 1048576, `${String(d.id)}: block size (the huge page size on huge pages)`);
      }
      const size = /size=(\d+)M/.exec(valueArg(argv, '-m') ?? '')![1];
      const summary = await client.execute<{ 'base-memory': number }>('query-memory-size-summary');
      assert.equal(summary['base-memory'], Number(size) * 1048576, 'boot memory = -m size');
    }
    // The vCPU slots and topology (query-hotpluggable-cpus lists every slot, the plugged ones with a QOM path).
    const smp = valueArg(argv, '-smp');
    if (smp?.includes('maxcpus=')) {
      const slots = await client.execute<Array<{ 'qom-path'?: string }>>('query-hotpluggable-cpus');
      assert.equal(slots.length, Number(/maxcpus=(\d+)/.exec(smp)![1]), 'vCPU slots = maxcpus');
      assert.equal(slots.filter((x) => x['qom-path']).length, Number(/cpus=(\d+)/.exec(smp)![1]), 'vCPUs plugged at boot = cpus');
    }

    // Every PCI device is on a PCI bus under its id.
    const pciIds = devices.filter((d) => PCI_DRIVERS.has(d.driver as string)).map((d) => d.id as string);
    if (pciIds.length) {
      const all = (await client.queryPci()).flatMap((bus) => flattenPci(bus.devices));
      const found = all.filter((d) => pciIds.includes(d.qdev_id)).map((d) => d.qdev_id);
      assert.deepEqual([...found].sort(), [...pciIds].sort(), 'PCI devices by qdev_id');
    }

    await client.quit({ timeoutMs: 20_000 });
    const exit = await withTimeout(exited, 20_000, () => `QEMU still running after quit:\n${stderr}`);
    assert.deepEqual(exit, { code: 0, signal: null }, `QEMU exit after quit; stderr:\n${stderr}`);
  } finally {
    qmp?.close();
    if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
    if (swtpm) await stopSwtpm(swtpm);
    for (const st of stubs) await st.close();
    for (const v of virtiofsds) await stopVirtiofsd(v);
    tap?.remove();
    restoreHugepages?.();
    for (const p of passts) await stopPasst(p);
    for (const q of qsds) await stopQsd(q);
    restoreAcl?.();
    bridge?.remove();
    await rm(fixtureDir, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  }
}

/** QEMU's device aliases (qdev_alias_table) the argv uses: device-list-properties wants the type name. */
const DEVICE_ALIASES: Record<string, string> = { ahci: 'ich9-ahci' };

/** Keys of a -device object that qdev_device_add itself takes, not properties of the device. */
const QDEV_KEYS = new Set(['driver', 'id', 'bus']);

const INT_RANGES: Record<string, [number, number]> = {
  uint4: [0, 15], uint8: [0, 0xff], uint16: [0, 0xffff], uint32: [0, 0xffffffff], uint64: [0, Number.MAX_SAFE_INTEGER], size: [0, Number.MAX_SAFE_INTEGER],
  int8: [-0x80, 0x7f], int16: [-0x8000, 0x7fff], int32: [-0x80000000, 0x7fffffff], int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

/** Why a JSON value does not fit a QEMU property type (bool, integers, and strings for str, enums and links), or null. */
function typeMismatch(type: string, v: unknown): string | null {
  if (type === 'bool') return typeof v === 'boolean' ? null : 'a JSON boolean';
  const range = INT_RANGES[type];
  if (range) return Number.isInteger(v) && (v as number) >= range[0] && (v as number) <= range[1] ? null : `an integer in ${range[0]}..${range[1]}`;
  return typeof v === 'string' ? null : 'a string';
}

/** Every -device object of every golden argv against device-list-properties of one QEMU. */
async function checkDeviceProperties(): Promise<void> {
  const runDir = await mkdtemp(join(tmpdir(), 'hg-'));
  const sock = join(runDir, 'qmp.sock');
  let stderr = '';
  const p = spawn(QEMU, ['-machine', 'none', '-nodefaults', '-no-user-config', '-S', '-display', 'none', '-chardev', `socket,id=qmp,path=${sock},server=on,wait=off`, '-mon', 'chardev=qmp,mode=control'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<Exit>((resolve) => p.once('exit', (code, signal) => resolve({ code, signal })));
  p.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  let client: QmpClient | undefined;
  try {
    client = await connectWhenReady(sock, p, () => stderr);
    const props = new Map<string, Map<string, string>>();
    const problems: string[] = [];
    const drivers = new Set<string>();
    for (const name of fixtureNames()) {
      const file = expectedPath(name);
      if (!existsSync(file)) continue;
      for (const d of jsonArgs(parseArgv(await readFile(file, 'utf8')), '-device')) {
        const driver = String(d.driver);
        drivers.add(driver);
        if (!props.has(driver)) props.set(driver, new Map((await client.deviceListProperties(DEVICE_ALIASES[driver] ?? driver)).map((x) => [x.name, x.type])));
        const known = props.get(driver)!;
        for (const [key, v] of Object.entries(d)) {
          if (QDEV_KEYS.has(key)) continue;
          const type = known.get(key);
          if (type === undefined) { problems.push(`${name}: ${driver} has no property "${key}"`); continue; }
          const bad = typeMismatch(type, v);
          if (bad) problems.push(`${name}: ${driver}.${key} is ${type}, which takes ${bad}, not ${JSON.stringify(v)}`);
        }
      }
    }
    assert.deepEqual(problems, [], 'every -device property is one QEMU knows, of its type');
    for (const d of ['vfio-pci', 'usb-host', 'pcie-root-port']) assert.ok(drivers.has(d), `the golden argv files have a ${d} device`);
    await client.quit({ timeoutMs: 20_000 });
    await withTimeout(exited, 20_000, () => `QEMU still running after quit:\n${stderr}`);
  } finally {
    client?.close();
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await exited;
    await rm(runDir, { recursive: true, force: true });
  }
}

describe('golden argv accepted by a real QEMU', { timeout: 600_000 }, () => {
  before(() => {
    const probe = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0) {
      throw new Error(`${QEMU} is required for this test and could not be run ` +
        `(${probe.error?.message ?? probe.stderr}). Install it: apt-get install qemu-system-x86`);
    }
    const img = spawnSync('qemu-img', ['--version'], { encoding: 'utf8' });
    if (img.error || img.status !== 0) {
      throw new Error(`qemu-img is required for this test and could not be run (${img.error?.message ?? img.stderr}). Install it: apt-get install qemu-utils`);
    }
  });

  // Also for the argv QEMU refuses on this host (vfio-pci without the device): the JSON is still checked.
  it('every -device property of every golden argv is one its driver has, of its type (device-list-properties)', { timeout: 60_000 }, () => checkDeviceProperties());

  // Tests in a describe run one after another: one QEMU at a time.
  for (const name of fixtureNames()) {
    const refusal = hostRefusal(name);
    const title = refusal ? `${name} (host lacks ${refusal.node}: QEMU's refusal checked)` : name;
    it(title, { timeout: 90_000 }, () => runFixture(name));
  }
});
