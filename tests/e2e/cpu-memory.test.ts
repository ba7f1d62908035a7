// CPU and memory tuning in the UI (issue 16) in Debian's Chromium against browser mode with the
// real core and QEMU under TCG: a stopped VM's "Edit CPU and memory" dialog lists QEMU's CPU
// models with the ones TCG cannot give disabled (the missing features named), refuses a topology
// that does not add up with the core's message (the dialog stays open) and saves a good one with
// flags, slots, huge pages, KSM merging off and a hotplug maximum (then by virtio-mem); a running test guest gets a
// second vCPU from the Overview (hotplugged now), refuses to grow memory without a hotplug maximum
// (the core's reason and fix), and gets pinned from the grid (its "CPU 0/TCG" thread's
// Cpus_allowed_list in /proc follows, also when the pinning is cleared); the Host page shows the
// Memory card with the running guest (its balloon too), and the KSM and huge page cards with the numbers in
// /sys/kernel/mm, switches KSM on and off and sizes the 2 MiB pool (the host's settings are put
// back whatever happens); axe-core finds nothing serious; no script errors.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import type { HangarHarness, ServeProcess } from '../helpers/hangar.ts';
import { formatMemory } from '../../renderer/src/util/format.ts';
import { axeViolations, openUiSession, screenshot } from './browser.ts';
import type { UiSession } from './browser.ts';

const STOPPED = 'cpumem-off';
const RUNNING = 'cpumem-run';
const KSM = '/sys/kernel/mm/ksm';
const POOL_2M = '/sys/kernel/mm/hugepages/hugepages-2048kB';
let session: UiSession;
let h: HangarHarness;
let serve: ServeProcess;
let page: Page;
let pageErrors: string[];
let shots: string[];
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
const sys = (path: string): string => readFileSync(path, 'utf8').trim();

before(async () => {
  guest = await ensureTestGuest();
  session = await openUiSession({ width: 1280, height: 900 });
  ({ h, serve, page, pageErrors, shots } = session);
  const boot = ['--accel', 'tcg', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE];
  await h.ok(['create', '--name', STOPPED, '--memory', '128', '--vcpus', '2', ...boot]);
  await h.ok(['create', '--name', RUNNING, '--memory', '160', '--maxcpus', '2', '--vcpus', '1', ...boot]);
  await h.ok(['device', 'add', RUNNING, 'balloon', 'free-page-reporting=on']);
});

after(async () => {
  await session?.close();
});

async function serious(): Promise<string[]> {
  return (await axeViolations(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help} ${JSON.stringify(v.nodes)}`);
}

/** Polls until fn() holds (the Host page refreshes its figures every few seconds). */
async function until(what: string, fn: () => Promise<boolean> | boolean, timeout = 15_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`${what}: not within ${timeout} ms`);
}

type Shown = { pid?: number; id: string; definition: { cpu: Record<string, unknown>; memory?: Record<string, unknown>; memoryMiB: number } };

/** The host CPUs a running VM's "CPU n/TCG" thread may run on (its Cpus_allowed_list). */
function vcpuAllowed(pid: number, vcpu: number): string {
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const comm = readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim();
    if (comm === `CPU ${vcpu}/TCG`) return /^Cpus_allowed_list:\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8'))![1]!;
  }
  throw new Error(`QEMU ${pid} has no thread "CPU ${vcpu}/TCG"`);
}

describe('CPU and memory in the UI', { timeout: 600_000 }, () => {
  test('a stopped VM: the dialog lists the CPU models, refuses a topology that does not add up with the core\'s message and saves a good one; guest NUMA nodes split, refused, mended and removed', async () => {
    await page.goto(`${serve.url}#/vm/${STOPPED}/overview`);
    const section = page.getByTestId('cpu-memory');
    await section.getByTestId('cpu-vcpus').filter({ hasText: '2 vCPUs' }).waitFor();
    await page.getByTestId('cpu-memory-edit').click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();

    // The models QEMU lists for TCG: host needs KVM; one TCG cannot give is disabled with what it lacks.
    const list = await h.json<{ accel: string; models: Array<{ name: string; unavailable: string[] }> }>(['host', 'cpu-models', '--accel', 'tcg']);
    assert.equal(list.accel, 'tcg');
    const unusable = list.models.find((m) => m.unavailable.length && m.name !== 'host');
    const usable = ['Nehalem', 'Westmere', 'qemu64'].map((n) => list.models.find((m) => m.name === n && !m.unavailable.length)).find(Boolean)
      ?? list.models.find((m) => !m.unavailable.length && m.name !== 'max' && m.name !== 'host');
    assert.ok(unusable && usable, 'QEMU lists usable and unusable models under TCG');
    const option = (name: string) => dialog.locator(`[data-testid="cpumem-model"] option[value="${name}"]`);
    await option(unusable.name).waitFor({ state: 'attached' });
    assert.equal(await option(unusable.name).isDisabled(), true);
    assert.match(await option(unusable.name).innerText(), new RegExp(`not usable: lacks ${unusable.unavailable.join(', ')}`));
    assert.equal(await option(usable.name).isDisabled(), false);
    assert.equal(await option('host').isDisabled(), true);
    assert.equal(await option('max').isDisabled(), false);

    // 1 socket × 3 cores for 2 vCPUs: the core refuses with the product and the fix; the dialog stays open.
    await dialog.getByTestId('cpumem-sockets').fill('1');
    await dialog.getByTestId('cpumem-cores').fill('3');
    assert.match(await dialog.getByTestId('cpumem-topology-note').innerText(), /= 1 × 1 × 3 × 1 = 3, but the VM has 2 vCPU slots/);
    await dialog.getByTestId('cpumem-save').click();
    const err = dialog.getByTestId('error');
    await err.waitFor();
    assert.match(await err.innerText(), /CPU topology sockets×dies×cores×threads = 1×1×3×1 = 3 does not match vcpus = 2: make the product equal it/);
    assert.equal(await dialog.isVisible(), true);
    assert.equal((await h.json<Shown>(['show', STOPPED])).definition.cpu.cores, undefined, 'nothing saved');
    assert.deepEqual(await serious(), []);
    shots.push(await screenshot(page, 'cpumem-1-dialog-refused'));

    // 4 slots as 1 socket × 2 cores × 2 threads, a usable named model without SVM, 2 MiB pages,
    // no KSM merging, room to grow to 512 MiB.
    await dialog.getByTestId('cpumem-model').selectOption(usable.name);
    await dialog.getByTestId('cpumem-model-msg').filter({ hasText: 'Usable with TCG' }).waitFor();
    await dialog.getByTestId('cpumem-features').fill('-svm');
    await dialog.getByTestId('cpumem-maxvcpus').fill('4');
    await dialog.getByTestId('cpumem-cores').fill('2');
    await dialog.getByTestId('cpumem-threads').fill('2');
    assert.match(await dialog.getByTestId('cpumem-topology-note').innerText(), /= 1 × 1 × 2 × 2 = 4, the 4 vCPU slots/);
    await dialog.getByTestId('cpumem-hugepages-2M').check();
    await dialog.getByTestId('cpumem-merge').uncheck();
    await dialog.getByTestId('cpumem-maxmem').fill('512');
    await dialog.getByTestId('cpumem-save').click();
    await dialog.waitFor({ state: 'detached' });
    const { definition: d } = await h.json<Shown>(['show', STOPPED]);
    assert.deepEqual({ ...d.cpu }, { model: usable.name, features: ['-svm'], vcpus: 2, maxVcpus: 4, sockets: 1, cores: 2, threads: 2 });
    assert.deepEqual({ ...d.memory }, { hugepages: '2M', merge: false, maxMiB: 512 });
    assert.equal(d.memoryMiB, 128);
    // The Overview shows what was saved.
    await section.getByTestId('cpu-topology').filter({ hasText: '1 socket × 2 cores × 2 threads' }).waitFor();
    assert.match(await section.getByTestId('cpu-vcpus').innerText(), /2 of 4 vCPU slots plugged/);
    assert.match(await section.getByTestId('cpu-model').innerText(), new RegExp(`^${usable.name.replace(/[.+]/g, '\\$&')}\\s*, flags -svm$`));
    assert.match(await section.getByTestId('mem-hugepages').innerText(), /2M pages/);
    assert.match(await section.getByTestId('mem-merge').innerText(), /off/);
    assert.match(await section.getByTestId('mem-hotplug').innerText(), /up to 512 MiB \(4 DIMM slots\)/);
    // virtio-mem instead of DIMMs (no slots for it): saved, and the Overview says so.
    await page.getByTestId('cpu-memory-edit').click();
    await dialog.getByTestId('cpumem-hotplug-virtio-mem').check();
    assert.equal(await dialog.getByTestId('cpumem-slots').isDisabled(), true);
    await dialog.getByTestId('cpumem-save').click();
    await dialog.waitFor({ state: 'detached' });
    assert.equal((await h.json<Shown>(['show', STOPPED])).definition.memory?.hotplug, 'virtio-mem');
    await section.getByTestId('mem-hotplug').filter({ hasText: 'up to 512 MiB by virtio-mem (grows and shrinks live)' }).waitFor();
    // Settings cleared in the dialog leave the definition.
    await page.getByTestId('cpu-memory-edit').click();
    await dialog.getByTestId('cpumem-features').fill('');
    await dialog.getByTestId('cpumem-hugepages-none').check();
    await dialog.getByTestId('cpumem-maxmem').fill('');
    await dialog.getByTestId('cpumem-save').click();
    await dialog.waitFor({ state: 'detached' });
    const again = (await h.json<Shown>(['show', STOPPED])).definition;
    assert.equal(again.cpu.features, undefined);
    assert.deepEqual({ ...again.memory }, { merge: false });
    // Memory of a stopped VM from the Overview: saved for the next start.
    await section.getByTestId('memory-size').fill('192');
    await section.getByTestId('memory-set').click();
    const mres = section.getByTestId('memory-result');
    await mres.filter({ hasText: '192 MiB of memory: saved; applies at the next start' }).waitFor();
    assert.equal(await mres.getAttribute('data-applied'), 'next-boot');
    assert.equal((await h.json<Shown>(['show', STOPPED])).definition.memoryMiB, 192);
    await section.getByTestId('mem-size').filter({ hasText: '192 MiB' }).waitFor();

    // Guest NUMA nodes: split evenly over two, one node's memory changed so they no longer add up
    // (the core refuses with the sum), then mended and bound to host node 0.
    await page.getByTestId('cpu-memory-edit').click();
    await dialog.getByTestId('numa-split-count').fill('2');
    await dialog.getByTestId('numa-split').click();
    assert.equal(await dialog.getByTestId('numa-cpus-0').inputValue(), '0-1');
    assert.equal(await dialog.getByTestId('numa-cpus-1').inputValue(), '2-3');
    assert.equal(await dialog.getByTestId('numa-memory-1').inputValue(), '96');
    assert.equal(await dialog.getByTestId('numa-policy-0').isDisabled(), true, 'no policy without host nodes');
    await dialog.getByTestId('numa-memory-1').fill('64');
    await dialog.getByTestId('cpumem-save').click();
    await err.waitFor();
    assert.match(await err.innerText(), /the nodes' memory adds up to 160 MiB, not the VM's 192 MiB/);
    await dialog.getByTestId('numa-memory-1').fill('96');
    await dialog.getByTestId('numa-host-0').fill('0');
    await dialog.getByTestId('numa-policy-0').selectOption('preferred');
    assert.deepEqual(await serious(), []);
    await dialog.getByTestId('cpumem-save').click();
    await dialog.waitFor({ state: 'detached' });
    assert.deepEqual((await h.json<Shown>(['show', STOPPED])).definition.memory?.numa,
      [{ cpus: '0-1', memoryMiB: 96, hostNodes: '0', policy: 'preferred' }, { cpus: '2-3', memoryMiB: 96 }]);
    await section.getByTestId('mem-numa').filter({ hasText: 'Node 0: vCPUs 0-1, 96 MiB, on host node 0 (preferred)' }).waitFor();
    // Removed again: one node.
    await page.getByTestId('cpu-memory-edit').click();
    await dialog.getByTestId('numa-remove-1').click();
    await dialog.getByTestId('numa-remove-0').click();
    await dialog.getByTestId('cpumem-save').click();
    await dialog.waitFor({ state: 'detached' });
    assert.equal((await h.json<Shown>(['show', STOPPED])).definition.memory?.numa, undefined);
    shots.push(await screenshot(page, 'cpumem-2-overview-stopped'));
  });

  test('a running guest: a vCPU added from the Overview, memory refused without a hotplug maximum, pinning from the grid applied to its threads', async () => {
    const { id } = await h.json<Shown>(['show', RUNNING]);
    await h.ok(['start', RUNNING]);
    await h.waitForSerial(id, READY_MARKER, 1, 180_000);
    const pid = (await h.json<Shown>(['show', RUNNING])).pid!;
    const online = sys('/sys/devices/system/cpu/online');
    const lastCpu = Number(/(\d+)$/.exec(online)![1]);
    assert.ok(lastCpu >= 1, `the host has at least two CPUs (${online})`);

    await page.goto(`${serve.url}#/vm/${RUNNING}/overview`);
    const section = page.getByTestId('cpu-memory');
    await section.getByTestId('cpu-vcpus').filter({ hasText: '1 of 2 vCPU slots plugged' }).waitFor();
    // The dialog is for a stopped VM only.
    assert.equal(await page.getByTestId('cpu-memory-edit').isDisabled(), true);

    await section.getByTestId('vcpus-count').fill('2');
    await section.getByTestId('vcpus-set').click();
    const vres = section.getByTestId('vcpus-result');
    await vres.filter({ hasText: 'applied now' }).waitFor({ timeout: 30_000 });
    assert.equal(await vres.getAttribute('data-applied'), 'now');
    assert.match(await vres.innerText(), /^2 vCPUs: applied now — 1 vCPU added/);
    assert.equal((await h.json<Shown>(['show', RUNNING])).definition.cpu.vcpus, 2);
    await section.getByTestId('cpu-vcpus').filter({ hasText: '2 vCPUs' }).waitFor();

    // No hotplug maximum: the core refuses to grow it live, with the fix; nothing changes.
    await section.getByTestId('memory-size').fill('256');
    await section.getByTestId('memory-set').click();
    const merr = section.getByTestId('error');
    await merr.waitFor();
    assert.match(await merr.innerText(), /runs with no room for memory hotplug: it cannot grow to 256 MiB now/);
    assert.match(await merr.innerText(), /--maxmem/);
    assert.equal((await h.json<Shown>(['show', RUNNING])).definition.memoryMiB, 160);
    await merr.getByRole('button', { name: 'Dismiss' }).click();

    // Smaller memory cannot be taken live: saved, and the section lists it as pending with a restart.
    await section.getByTestId('memory-size').fill('128');
    await section.getByTestId('memory-set').click();
    await section.getByTestId('memory-result').filter({ hasText: 'saved; applies at the next start' }).waitFor({ timeout: 30_000 });
    const pendingBanner = section.getByTestId('cpumem-pending');
    await pendingBanner.filter({ hasText: 'memory: size 160 MiB → 128 MiB' }).waitFor();
    assert.equal(await pendingBanner.getByTestId('pending-restart').isEnabled(), true);
    assert.deepEqual(await serious(), []);
    // Back to what it runs with: nothing pending.
    await section.getByTestId('memory-size').fill('160');
    await section.getByTestId('memory-set').click();
    await pendingBanner.waitFor({ state: 'detached' });
    assert.equal((await h.json<Shown>(['show', RUNNING])).definition.memoryMiB, 160);

    // The grid: a row per vCPU slot and the emulator, a box per host CPU.
    const grid = page.getByTestId('pinning-grid');
    await grid.waitFor();
    assert.equal(await grid.locator('tbody tr').count(), 3);
    assert.equal(await grid.locator('[data-testid="pin-row-0"] input[type="checkbox"]').count(), lastCpu + 1);
    assert.equal(await page.getByTestId('pinning-apply').isDisabled(), true, 'nothing to apply yet');
    assert.equal(vcpuAllowed(pid, 0), online, 'unpinned: every online CPU');
    await page.getByRole('checkbox', { name: `vCPU 0 on host CPU ${lastCpu}`, exact: true }).check();
    await page.getByRole('checkbox', { name: 'emulator on host CPU 0', exact: true }).check();
    assert.equal(await page.getByTestId('pin-summary-0').innerText(), `host CPU ${lastCpu}`);
    await page.getByTestId('pinning-apply').click();
    const pres = page.getByTestId('pinning-result');
    await pres.filter({ hasText: 'Pinning: applied now' }).waitFor({ timeout: 30_000 });
    assert.equal(await pres.getAttribute('data-applied'), 'now');
    assert.equal(vcpuAllowed(pid, 0), String(lastCpu), 'vCPU 0 runs where it was pinned');
    assert.deepEqual((await h.json<Shown>(['show', RUNNING])).definition.cpu.pinning, { vcpus: [String(lastCpu)], emulator: '0' });
    await section.getByTestId('cpu-pinning').filter({ hasText: `vCPU 0 on host CPU ${lastCpu}, Emulator on host CPU 0` }).waitFor();
    assert.deepEqual(await serious(), []);
    shots.push(await screenshot(page, 'cpumem-3-running-pinned'));

    // Cleared: every thread may run anywhere again.
    await page.getByTestId('pinning-clear').click();
    await pres.filter({ hasText: 'Pinning cleared: applied now' }).waitFor({ timeout: 30_000 });
    assert.equal(vcpuAllowed(pid, 0), online);
    // No pinning left in the definition.
    assert.equal((await h.json<Shown>(['show', RUNNING])).definition.cpu.pinning, undefined);
    await section.getByTestId('cpu-pinning').filter({ hasText: 'not pinned' }).waitFor();
    assert.equal(await page.getByTestId('pinning-clear').isDisabled(), true);
    assert.equal(await page.getByRole('checkbox', { name: `vCPU 0 on host CPU ${lastCpu}`, exact: true }).isChecked(), false);
  });

  test('the Host page: memory with the running guest, KSM and huge pages as /sys/kernel/mm has them; KSM switched on and off, the 2 MiB pool sized', async () => {
    const ksmRun = sys(`${KSM}/run`);
    const poolTotal = sys(`${POOL_2M}/nr_hugepages`);
    try {
      await page.goto(`${serve.url}#/host`);
      await page.getByTestId('host-memory').waitFor();
      const vmRow = page.getByTestId('host-committed-vms').locator(`li[data-vm="${RUNNING}"]`);
      await vmRow.waitFor();
      assert.match(await vmRow.innerText(), /160 MiB/);
      // Its balloon, asked to 144 MiB, with free page reporting.
      await h.ok(['device', 'balloon', RUNNING, '144M']);
      await vmRow.filter({ hasText: /balloon target 144 MiB, the guest has \d+ MiB, free page reporting on/ }).waitFor({ timeout: 10_000 });
      assert.match(await page.getByTestId('host-committed').innerText(), /committed to 1 running VM: \d+% of the host's/);
      const memTotalKiB = Number(/^MemTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]);
      assert.match(await page.getByTestId('host-mem-total').innerText(), new RegExp(`^${formatMemory(Math.round(memTotalKiB / 1024))}, .* available$`));

      // KSM as the kernel has it (read again until the page's refresh agrees: the figures move while it runs).
      const ksmText = async (): Promise<string> => page.getByTestId('ksm-sharing').innerText();
      await until('the KSM card shows /sys/kernel/mm/ksm', async () =>
        (await ksmText()).startsWith(`${sys(`${KSM}/pages_sharing`)} page`) && (await ksmText()).includes(`share ${sys(`${KSM}/pages_shared`)} (`)
        && (await page.getByTestId('ksm-state').getAttribute('data-running')) === String(sys(`${KSM}/run`) === '1'));
      // Huge pages as the kernel has them.
      await until('the huge page card shows the 2 MiB pool', async () =>
        (await page.getByTestId('hugepages-total-2M').innerText()) === sys(`${POOL_2M}/nr_hugepages`)
        && (await page.getByTestId('hugepages-free-2M').innerText()) === sys(`${POOL_2M}/free_hugepages`)
        && (await page.getByTestId('hugepages-reserved-2M').innerText()) === sys(`${POOL_2M}/resv_hugepages`));
      assert.deepEqual(await serious(), []);

      // KSM on, then off, through the switch: the kernel's run file follows, the commands are shown.
      const sw = page.getByTestId('ksm-switch');
      if (await sw.isChecked()) {
        await sw.uncheck();
        await until('KSM off', () => sys(`${KSM}/run`) === '0');
      }
      await sw.check();
      await page.getByTestId('ksm-status').filter({ hasText: 'KSM on (as root)' }).waitFor();
      assert.equal(sys(`${KSM}/run`), '1');
      assert.match(await page.getByTestId('ksm-commands').innerText(), /echo 1 > \/sys\/kernel\/mm\/ksm\/run/);
      await page.getByTestId('ksm-state').filter({ hasText: 'running' }).waitFor();
      shots.push(await screenshot(page, 'cpumem-4-host-ksm-on'));
      await sw.uncheck();
      await page.getByTestId('ksm-status').filter({ hasText: 'KSM off (as root)' }).waitFor();
      assert.equal(sys(`${KSM}/run`), '0');
      await page.getByTestId('ksm-state').filter({ hasText: 'stopped' }).waitFor();
      assert.equal(await sw.isChecked(), false);

      // A change behind the page's back shows within a refresh (no reload).
      writeFileSync(`${KSM}/run`, '1');
      await page.getByTestId('ksm-state').filter({ hasText: 'running' }).waitFor({ timeout: 10_000 });
      writeFileSync(`${KSM}/run`, '0');

      // The 2 MiB pool grown by two pages and put back from the card.
      const want = Number(poolTotal) + 2;
      await page.getByTestId('hugepages-count-2M').fill(String(want));
      await page.getByTestId('hugepages-set-2M').click();
      await page.getByTestId('hugepages-status-2M').filter({ hasText: `2M huge page pool set to ${want} pages (as root)` }).waitFor();
      assert.equal(sys(`${POOL_2M}/nr_hugepages`), String(want));
      await page.getByTestId('hugepages-total-2M').filter({ hasText: String(want) }).waitFor();
      assert.match(await page.getByTestId('hugepages-commands-2M').innerText(), new RegExp(`echo ${want} > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages`));
      // Bad input is refused beside the field.
      await page.getByTestId('hugepages-count-2M').fill('');
      await page.getByTestId('hugepages-set-2M').click();
      await page.getByTestId('hugepages-count-2M-msg').filter({ hasText: 'whole number of pages' }).waitFor();
      await page.getByTestId('hugepages-count-2M').fill(poolTotal);
      await page.getByTestId('hugepages-set-2M').click();
      await page.getByTestId('hugepages-status-2M').filter({ hasText: `set to ${poolTotal} page` }).waitFor();
      assert.equal(sys(`${POOL_2M}/nr_hugepages`), poolTotal);
      assert.deepEqual(await serious(), []);
      shots.push(await screenshot(page, 'cpumem-5-host'));
    } finally {
      writeFileSync(`${KSM}/run`, ksmRun);
      writeFileSync(`${POOL_2M}/nr_hugepages`, poolTotal);
    }
    await h.ok(['destroy', RUNNING]);
  });

  test('no script errors in the page', () => {
    assert.deepEqual(pageErrors, []);
  });
});
