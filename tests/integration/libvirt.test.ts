// The libvirt driver against a real libvirtd (qemu:///system, TCG) and the real test guest,
// defined from plain domain XML written here: list and details, start (the guest boots: its
// ready marker in the serial log virtlogd writes), pause/resume, reboot and reset (the guest
// boots again), ACPI shutdown (the guest's acpid powers off) and a shutdown forced off at its
// timeout, destroy, managed save and restore, autostart (virsh dominfo agrees), events for changes made behind the
// driver's back with plain virsh (from `virsh event` and from polling), every unsupported method,
// delete (with and without disk files), and the errors for an unknown domain and bad URIs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { coreApiMethods } from '../../core/common/api.ts';
import type { CoreApi, VmSummary } from '../../core/common/api.ts';
import { HangarError } from '../../core/common/errors.ts';
import type { VmState } from '../../core/common/state.ts';
import { LibvirtDriver, libvirtUnsupported } from '../../core/node/libvirt/libvirt-driver.ts';
import { ensureTestGuest, READY_MARKER } from '../guest/guest.ts';
import { until } from '../helpers/hangar.ts';
import { ensureLibvirtd, libvirtGuestFiles, LIBVIRT_URI, removeDomains, testDomainXml, testPrefix, virsh } from '../helpers/libvirtd.ts';

const prefix = testPrefix('lv');
const NAME = `${prefix}a`;
let files: Awaited<ReturnType<typeof libvirtGuestFiles>>;
let driver: LibvirtDriver;
let api: CoreApi;
let uuid: string;
let serialLog: string;

async function define(name: string, extraDevices = ''): Promise<string> {
  const xml = testDomainXml({ name, kernel: files.kernel, initrd: files.initrd, serialLog: join(files.dir, `${name}.serial.log`) })
    .replace('</devices>', `${extraDevices}</devices>`);
  const file = join(files.dir, `${name}.xml`);
  writeFileSync(file, xml);
  await virsh(['define', file]);
  return (await virsh(['domuuid', name])).trim();
}

function markers(): number {
  if (!existsSync(serialLog)) return 0;
  return readFileSync(serialLog, 'utf8').split(READY_MARKER).length - 1;
}

/** Waits for the guest's ready marker to have been printed `count` times (boots since the log began). */
function booted(count: number): Promise<true> {
  return until(`ready marker #${count} in ${serialLog}`, 150_000, () => (markers() >= count ? true : undefined));
}

async function libvirtState(name = NAME): Promise<string> {
  return (await virsh(['domstate', '--reason', name])).trim();
}

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<HangarError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof HangarError, `a HangarError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return e;
  }
  assert.fail(`expected a ${code} error`);
}

before(async () => {
  await ensureLibvirtd();
  files = await libvirtGuestFiles(await ensureTestGuest());
  serialLog = join(files.dir, `${NAME}.serial.log`);
  uuid = await define(NAME);
  driver = new LibvirtDriver(LIBVIRT_URI, { connectionName: 'lv-test' });
  api = driver.api();
});

after(async () => {
  driver?.close();
  await removeDomains(prefix);
  await files?.cleanup();
});

// About 65 s on an idle machine (three TCG boots); the timeout leaves room for a loaded one.
describe('libvirt driver', { timeout: 480_000 }, () => {
  test('list shows the defined domain stopped, by its UUID, with its size; get reads its XML', async () => {
    const mine = (await api.list()).find((s) => s.name === NAME);
    assert.deepEqual(mine, { id: uuid, name: NAME, state: 'stopped', vcpus: 1, memoryMiB: 256 });
    for (const ref of [NAME, uuid]) {
      const info = await api.get(ref);
      assert.equal(info.id, uuid);
      assert.equal(info.state, 'stopped');
      assert.equal(info.definition?.name, NAME);
      assert.equal(info.definition?.memoryMiB, 256);
      assert.equal(info.definition?.autostart, false);
    }
    const caps = await api.capabilities();
    assert.deepEqual(caps, { driver: 'libvirt', connection: 'lv-test', label: 'libvirt system (this computer)', unsupported: libvirtUnsupported });
  });

  test('actions in the wrong state are refused in Hangar\'s words before libvirt is asked', async () => {
    await rejectsWith(api.pause(NAME), 'invalid-state', new RegExp(`cannot pause VM "${NAME}": it is stopped`));
    await rejectsWith(api.shutdown(NAME), 'invalid-state', /it is stopped/);
    await rejectsWith(api.resume(NAME), 'invalid-state', /it is stopped/);
  });

  test('start: running, and the guest boots (ready marker on its serial port)', async () => {
    const info = await api.start(NAME);
    assert.equal(info.state, 'running');
    assert.match(await libvirtState(), /^running/);
    await booted(1);
    await rejectsWith(api.start(NAME), 'invalid-state', /it is running/);
  });

  test('pause and resume', async () => {
    assert.equal((await api.pause(NAME)).state, 'paused');
    assert.match(await libvirtState(), /^paused \(user\)/);
    assert.equal((await api.list()).find((s) => s.id === uuid)?.state, 'paused');
    assert.equal((await api.resume(NAME)).state, 'running');
    assert.match(await libvirtState(), /^running/);
  });

  test('reboot (ACPI, the guest restarts) and reset: the guest boots again each time', async () => {
    assert.equal((await api.reboot(NAME)).state, 'running');
    await booted(2);
    assert.equal((await api.reset(uuid)).state, 'running');
    await booted(3);
  });

  test('shutdown with wait: the guest powers off on ACPI (not forced), stopped', async () => {
    const t0 = Date.now();
    const info = await api.shutdown(NAME, { wait: true, timeoutSec: 60 });
    assert.equal(info.state, 'stopped');
    assert.ok(Date.now() - t0 < 30_000, 'the guest took the power button');
    assert.equal(await libvirtState(), 'shut off (shutdown)');
  });

  test('shutdown forced off at its timeout when the guest does not take it; destroy', async () => {
    // Right after start the guest has no acpid yet: the power button goes unheard.
    await api.start(NAME);
    const info = await api.shutdown(NAME, { wait: true, timeoutSec: 1 });
    assert.equal(info.state, 'stopped');
    assert.equal(await libvirtState(), 'shut off (destroyed)');
    await api.start(NAME);
    const off = await api.destroy(NAME);
    assert.equal(off.state, 'stopped');
    assert.equal(await libvirtState(), 'shut off (destroyed)');
  });

  test('shutdown without wait: shutting-down until the timer in the driver forces it off', async () => {
    await api.start(NAME); // no acpid yet: the guest will not take the power button
    const info = await api.shutdown(NAME, { timeoutSec: 2 });
    assert.equal(info.state, 'shutting-down');
    assert.equal((await api.list()).find((s) => s.id === uuid)?.state, 'shutting-down');
    await rejectsWith(api.shutdown(NAME), 'invalid-state', /it is shutting-down/);
    await until('forced off', 20_000, async () => ((await api.get(NAME)).state === 'stopped' ? true : undefined));
    assert.equal(await libvirtState(), 'shut off (destroyed)');
  });

  test('save (managed save): saved; start restores it; start with discardSaved boots afresh', async () => {
    await api.start(NAME);
    const saved = await api.save(NAME);
    assert.equal(saved.state, 'saved');
    assert.equal((await api.list()).find((s) => s.id === uuid)?.state, 'saved');
    assert.match(await virsh(['dominfo', NAME]), /^Managed save:\s+yes$/m);
    assert.equal((await api.start(NAME)).state, 'running');
    assert.equal(await libvirtState(), 'running (restored)');
    await api.save(NAME);
    assert.equal((await api.start(NAME, { discardSaved: true })).state, 'running');
    assert.equal(await libvirtState(), 'running (booted)');
    assert.match(await virsh(['dominfo', NAME]), /^Managed save:\s+no$/m);
    await api.destroy(NAME);
  });

  test('autostart on and off (virsh dominfo agrees)', async () => {
    const on = await api.setAutostart(NAME, true);
    assert.equal(on.definition?.autostart, true);
    assert.match(await virsh(['dominfo', NAME]), /^Autostart:\s+enable$/m);
    const off = await api.setAutostart(uuid, false);
    assert.equal(off.definition?.autostart, false);
    assert.match(await virsh(['dominfo', NAME]), /^Autostart:\s+disable$/m);
  });

  test('events: changes made with plain virsh behind the driver\'s back arrive (virsh event, then polling)', async () => {
    const seen: Array<{ id: string; name: string; state: VmState }> = [];
    let listChanged = 0;
    const onChanged = (e: { id: string; name: string; state: VmState }): void => { seen.push(e); };
    const onList = (): void => { listChanged++; };
    assert.equal(driver.watchMode, 'idle', 'no listener, no watching');
    driver.on('vmChanged', onChanged);
    driver.on('vmListChanged', onList);
    assert.equal(driver.watchMode, 'events');
    await new Promise((r) => setTimeout(r, 1500)); // the event child subscribes, the baseline list is taken
    await virsh(['start', NAME]);
    await until('vmChanged running', 15_000, () => seen.find((e) => e.id === uuid && e.state === 'running'));
    assert.equal(seen.find((e) => e.id === uuid)?.name, NAME);
    // A new domain appearing is a list change.
    const before = listChanged;
    const other = `${prefix}b`;
    await define(other);
    await until('vmListChanged for a defined domain', 15_000, () => (listChanged > before ? true : undefined));
    driver.off('vmChanged', onChanged);
    driver.off('vmListChanged', onList);
    assert.equal(driver.watchMode, 'idle', 'the last listener gone stops the event child');

    // Polling (no virsh event): a second driver notices a destroy.
    const polling = new LibvirtDriver(LIBVIRT_URI, { pollMs: 300, events: false });
    try {
      const got: VmState[] = [];
      polling.on('vmChanged', (e: { id: string; state: VmState }) => { if (e.id === uuid) got.push(e.state); });
      assert.equal(polling.watchMode, 'polling');
      await new Promise((r) => setTimeout(r, 1500)); // the baseline list is taken
      await virsh(['destroy', NAME]);
      await until('vmChanged stopped by polling', 10_000, () => (got.includes('stopped') ? true : undefined));
      await virsh(['undefine', other]);
    } finally {
      polling.close();
      assert.equal(polling.watchMode, 'idle');
    }
  });

  test('every CoreApi method exists; the unsupported ones throw "unsupported" with the reason', async () => {
    for (const m of coreApiMethods) assert.equal(typeof api[m], 'function', m);
    assert.ok(Object.keys(libvirtUnsupported).length > 10);
    for (const [m, why] of Object.entries(libvirtUnsupported)) {
      const fn = api[m as keyof CoreApi] as (...a: unknown[]) => Promise<unknown>;
      const e = await rejectsWith(fn(NAME, {}, {}), 'unsupported', / is not available on a libvirt connection: /);
      assert.ok(e.message.endsWith(why), `${m}: ${e.message}`);
      assert.ok(e.hint, `${m} says what to do instead`);
    }
  });

  test('errors: an unknown domain is not-found; bad URIs say what is wrong', async () => {
    const missing = `${prefix}nosuch`;
    const e = await rejectsWith(api.get(missing), 'not-found', new RegExp(missing));
    assert.ok(e.hint);
    await rejectsWith(api.start(missing), 'not-found');
    await rejectsWith(api.delete(missing), 'not-found');
    assert.throws(() => new LibvirtDriver('qemu:///nosuch'), (err: unknown) => err instanceof HangarError && err.code === 'invalid-input');
    assert.throws(() => new LibvirtDriver('ssh://host'), (err: unknown) => err instanceof HangarError && err.code === 'invalid-input');
    // Nothing listens on port 1: the connection is refused at once.
    const far = new LibvirtDriver('qemu+ssh://nobody@127.0.0.1:1/system');
    const down = await rejectsWith(far.api().list(), 'daemon-unavailable', /cannot reach libvirt at qemu\+ssh/);
    assert.match(down.hint ?? '', /libvirtd/);
    far.close();
  });

  test('delete: refused while running; undefines; deleteDisks removes the writable disk only', async () => {
    await api.start(NAME);
    await rejectsWith(api.delete(NAME), 'invalid-state', /it is running/);
    await api.destroy(NAME);
    const kept = await api.delete(NAME);
    assert.deepEqual(kept, { deletedFiles: [], keptFiles: [] });
    assert.doesNotMatch(await virsh(['list', '--all', '--name']), new RegExp(NAME));
    await rejectsWith(api.get(NAME), 'not-found');

    const disk = join(files.dir, 'disk.raw');
    const iso = join(files.dir, 'cd.iso');
    writeFileSync(disk, Buffer.alloc(1024 * 1024));
    writeFileSync(iso, Buffer.alloc(64 * 1024));
    const name = `${prefix}disks`;
    await define(name, `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>
      <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='${iso}'/><target dev='hdc' bus='ide'/><readonly/></disk>`);
    const res = await api.delete(name, { deleteDisks: true });
    assert.deepEqual(res, { deletedFiles: [disk], keptFiles: [iso] });
    assert.equal(existsSync(disk), false);
    assert.equal(existsSync(iso), true);
    const list: VmSummary[] = await api.list();
    assert.equal(list.some((s) => s.name.startsWith(prefix)), false);
  });
});
