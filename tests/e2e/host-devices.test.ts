// Host device assignment (issue 6) in Debian's Chromium against browser mode with the real core,
// which reads a private copy of the workstation fixture trees (HANGAR_SYSFS_ROOT /
// HANGAR_PROCFS_ROOT: an SR-IOV 82599 with 8 VFs, an AMD GPU sharing IOMMU group 13 with its HDMI
// audio and root port, the boot VGA iGPU, a Tesla T4 with mdev types, broken devices, USB). The
// Host page shows the groups, the PF with its VFs, the boot VGA device in use, mdevs and USB, and
// passes axe-core; then on a stopped VM's Devices tab the PCI host device editor warns about the
// shared group, disables the boot VGA device with its reason, and adds a VF whose row appears.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import type { HangarHarness, ServeProcess } from '../helpers/hangar.ts';
import { axeViolations, openUiSession, screenshot } from './browser.ts';
import type { UiSession } from './browser.ts';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
const VM = 'hostdev-e2e';
const PF = '0000:03:00.0';
const VFS = ['0000:03:10.0', '0000:03:10.2', '0000:03:10.4', '0000:03:10.6', '0000:03:11.0', '0000:03:11.2', '0000:03:11.4', '0000:03:11.6'];

let tmp: string;
let session: UiSession;
let h: HangarHarness;
let serve: ServeProcess;
let page: Page;
let pageErrors: string[];
let shots: string[];

before(async () => {
  // A copy: privileged host changes write into the tree they read.
  tmp = mkdtempSync(join(tmpdir(), 'hgt-hostdev-'));
  execFileSync('cp', ['-a', join(FIXTURES, 'sysfs', 'workstation'), join(tmp, 'sys')]);
  execFileSync('cp', ['-a', join(FIXTURES, 'proc', 'workstation'), join(tmp, 'proc')]);
  session = await openUiSession({ width: 1280, height: 900 }, { env: { HANGAR_SYSFS_ROOT: join(tmp, 'sys'), HANGAR_PROCFS_ROOT: join(tmp, 'proc') } });
  ({ h, serve, page, pageErrors, shots } = session);
  await h.ok(['create', '--name', VM, '--memory', '256', '--accel', 'tcg']);
});

after(async () => {
  await session?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function shot(name: string): Promise<void> {
  shots.push(await screenshot(page, `hostdev-${name}`));
}

async function seriousViolations(): Promise<string[]> {
  return (await axeViolations(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help} ${JSON.stringify(v.nodes)}`);
}

const dialog = () => page.getByRole('dialog');

describe('Host page', () => {
  test('reachable from the main navigation; IOMMU group 13 holds the GPU, its HDMI audio and the root port', async () => {
    await page.goto(serve.url);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Host' }).click();
    await page.getByTestId('host-page').waitFor();
    const g13 = page.getByTestId('iommu-group-13');
    await g13.waitFor();
    assert.match(await g13.getByRole('heading').first().innerText(), /IOMMU group 13/);
    for (const a of ['0000:00:01.0', '0000:01:00.0', '0000:01:00.1']) await g13.getByTestId(`pci-${a}`).waitFor();
    assert.equal(await g13.locator('tbody tr[data-testid^="pci-"]').count(), 3);
    const gpu = await g13.getByTestId('pci-0000:01:00.0').innerText();
    assert.match(gpu, /Navi 21/);
    assert.match(gpu, /amdgpu/);
    assert.match(await g13.getByTestId('pci-0000:00:01.0').innerText(), /stays with the host/);
    // The NVIDIA pair is on vfio-pci already: it can be given back.
    await page.getByTestId('iommu-group-14').getByRole('button', { name: 'Give back to host: 0000:02:00.0' }).waitFor();
    // Readiness, privilege and the device without a group.
    assert.equal(await page.getByTestId('readiness-checks').locator('li').count() > 0, true);
    await page.getByTestId('host-privilege').waitFor();
    await page.getByTestId('pci-ungrouped').getByTestId('pci-0000:06:00.0').waitFor();
    await shot('1-host-page');
  });

  test('the SR-IOV PF shows 8 of its 8 VFs, each listed', async () => {
    const pf = page.getByTestId(`sriov-pf-${PF}`);
    await pf.waitFor();
    assert.equal((await pf.getByTestId('sriov-count').innerText()).trim(), '8 of 8 VFs');
    for (const vf of VFS) await pf.getByTestId(`sriov-vf-${vf}`).waitFor();
    assert.match(await pf.getByTestId(`sriov-vf-${VFS[2]}`).innerText(), /VF 2/);
    // A bad count is refused beside the field before anything is sent.
    await pf.getByTestId(`sriov-numvfs-${PF}`).fill('9');
    await pf.getByTestId(`sriov-set-${PF}`).click();
    await pf.getByTestId(`sriov-numvfs-${PF}-msg`).filter({ hasText: /at most 8 VFs/ }).waitFor();
    // The count it has already: the core has nothing to do, says so, and the page reads the host again.
    await pf.getByTestId(`sriov-numvfs-${PF}`).fill('8');
    await pf.getByTestId(`sriov-set-${PF}`).click();
    await page.getByTestId('host-status').filter({ hasText: `${PF} has 8 VFs now` }).waitFor();
    assert.equal(await page.getByTestId('error').count(), 0);
    // The PF row in its group carries the PF badge; a VF row its VF label.
    assert.match(await page.getByTestId(`pci-${PF}`).innerText(), /SR-IOV PF: 8 of 8 VFs/);
    assert.match(await page.getByTestId(`pci-${VFS[1]}`).innerText(), /VF 1 of 0000:03:00\.0/);
  });

  test('the boot VGA device is marked in use by the host and cannot be bound', async () => {
    const row = page.getByTestId('pci-0000:00:02.0');
    assert.equal(await row.getAttribute('data-in-use'), 'true');
    assert.match(await row.getByTestId('in-use').first().innerText(), /boot VGA/);
    assert.ok(await row.getByRole('button', { name: 'Bind to vfio-pci: 0000:00:02.0' }).isDisabled());
  });

  test('mediated devices and USB devices', async () => {
    const t4 = page.getByTestId('mdev-parent-0000:04:00.0');
    await t4.getByTestId('mdev-type-0000:04:00.0-nvidia-222').waitFor();
    assert.match(await t4.innerText(), /GRID T4-1B/);
    await t4.getByTestId('mdev-4b20d080-1b54-4048-85b3-a6a62d165c01').waitFor();
    const usb = await page.getByTestId('usb-1-1.2').innerText();
    assert.match(usb, /046d:c52b/);
    assert.match(usb, /Logitech/);
  });

  test('axe-core: no serious or critical violations on the Host page', async () => {
    const all = await axeViolations(page);
    const minor = all.filter((v) => v.impact !== 'serious' && v.impact !== 'critical');
    if (minor.length) console.log(`axe (minor/moderate): ${minor.map((v) => `${v.id} ${JSON.stringify(v.nodes)}`).join('\n')}`);
    assert.deepEqual(await seriousViolations(), []);
  });
});

describe('Devices tab: PCI host devices on a stopped VM', () => {
  test('choosing the GPU warns about its shared group, naming the HDMI audio function; the consequences are shown', async () => {
    await page.goto(`${serve.url}#/vm/${VM}/devices`);
    await page.getByTestId('section-hostpci').waitFor();
    await page.getByRole('button', { name: 'Add PCI host device…' }).click();
    await dialog().getByTestId('editor-hostpci').waitFor();
    const picker = dialog().getByTestId('hostpci-picker');
    await picker.waitFor();
    await picker.getByTestId('hostpci-option-0000:01:00.0-radio').check();
    const warning = dialog().getByTestId('group-warning');
    await warning.waitFor();
    const audio = await warning.getByTestId('group-member-0000:01:00.1').innerText();
    assert.match(audio, /0000:01:00\.1/);
    assert.match(audio, /will be bound to vfio-pci and disappear from the host while the VM runs/);
    assert.match(await warning.getByTestId('group-member-0000:00:01.0').innerText(), /stays with the host/);
    const consequences = await dialog().getByTestId('passthrough-consequences').innerText();
    assert.match(consequences, /Live migration and snapshots with memory are blocked/);
    assert.match(consequences, /256\.0 MiB of guest memory is pinned/);
    await shot('2-group-warning');
    assert.deepEqual(await seriousViolations(), [], 'axe-core: no serious or critical violations in the PCI host device dialog');
  });

  test('the boot VGA option is disabled with its reason; the PF too', async () => {
    const picker = dialog().getByTestId('hostpci-picker');
    assert.ok(await picker.getByTestId('hostpci-option-0000:00:02.0-radio').isDisabled());
    assert.match(await picker.getByTestId('hostpci-option-0000:00:02.0-reason').innerText(), /boot VGA/);
    assert.ok(await picker.getByTestId(`hostpci-option-${PF}-radio`).isDisabled());
    assert.equal(await picker.getByTestId('hostpci-option-0000:00:01.0').count(), 0, 'bridges are not offered');
  });

  test('adding a VF succeeds and its row appears with the host device', async () => {
    const picker = dialog().getByTestId('hostpci-picker');
    const vf = picker.getByTestId(`hostpci-option-${VFS[1]}`);
    assert.match(await vf.innerText(), /VF 1 of 0000:03:00\.0/);
    await picker.getByTestId(`hostpci-option-${VFS[1]}-radio`).check();
    assert.equal(await dialog().getByTestId('group-warning').count(), 0, 'a VF is alone in its group');
    assert.ok(await dialog().getByTestId('hostpci-managed').isChecked(), 'managed by default');
    assert.ok(await dialog().getByTestId('hostpci-rom').isChecked(), 'the option ROM is shown by default');
    await page.getByTestId('editor-save').click();
    await dialog().waitFor({ state: 'detached' });
    const row = page.locator('[data-testid="device-hostpci"][data-id="hostpci0"]');
    await row.waitFor();
    assert.match(await row.innerText(), new RegExp(VFS[1]!.replace(/[.]/g, '\\.')));
    const shown = await h.json<{ definition: { hostPci: Array<{ id: string; address: string; managed: boolean; rom: boolean }> } }>(['show', VM]);
    assert.deepEqual(shown.definition.hostPci.map((p) => [p.id, p.address, p.managed, p.rom]), [['hostpci0', VFS[1], true, true]]);
    await shot('3-vf-added');
  });

  test('the Host page names the VM the VF is assigned to', async () => {
    await page.goto(`${serve.url}#/host`);
    const vfRow = page.getByTestId(`sriov-pf-${PF}`).getByTestId(`sriov-vf-${VFS[1]}`);
    await vfRow.getByTestId('assigned-to').filter({ hasText: VM }).waitFor();
    assert.equal(await vfRow.getByTestId('assigned-to').getAttribute('data-running'), 'false');
    assert.deepEqual(pageErrors, [], 'no script errors in the page');
  });
});
