// Hangar's libvirt domain XML against a real libvirtd: every golden fixture's XML is defined
// (virsh define), read back as libvirt stores it (dumpxml --inactive, with libvirt's defaults and
// PCI addresses added) and converted again: the shared subset must equal the original. And a
// domain as virt-manager writes it imports with an exact list of what is not carried.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseDefinition } from '../../core/common/definition.ts';
import { NAME_MAX_LENGTH } from '../../core/common/model.ts';
import type { VmDefinition } from '../../core/common/model.ts';
import { readDomainXml } from '../../core/node/libvirt/domain-xml-read.ts';
import { writeDomainXml } from '../../core/node/libvirt/domain-xml-write.ts';
import { libvirtFixtures, loadFixture } from '../golden/libvirt/libvirt-golden.ts';
import { GUEST_CMDLINE, READY_MARKER, ensureTestGuest } from '../guest/guest.ts';
import { ensureLibvirtd, libvirtGuestFiles, removeDomains, testPrefix, virsh } from '../helpers/libvirtd.ts';
import { sharedSubset } from '../helpers/libvirt-subset.ts';

const prefix = testPrefix('xml');

/** What the definition should look like after define + dumpxml: this host's libvirt runs TCG (type qemu). */
function expectedAfterDefine(def: VmDefinition): VmDefinition {
  // Under TCG the host CPU cannot be passed through: the reader makes it max (and says so).
  return { ...def, accel: 'tcg', cpu: { ...def.cpu, model: def.cpu.model === 'host' ? 'max' : def.cpu.model } };
}

/** libvirt fills in a VGA's video memory when none is given; compare what the definition set. */
function withoutLibvirtDefaults(readBack: VmDefinition, original: VmDefinition): VmDefinition {
  const video = { ...readBack.video };
  if (original.video.vramMiB === undefined) delete video.vramMiB;
  return { ...readBack, video };
}

describe('libvirt domain XML on a real libvirtd', () => {
  let dir = '';

  before(async () => {
    await ensureLibvirtd();
    dir = await mkdtemp(join(tmpdir(), 'hangar-libvirt-xml-'));
  });

  after(async () => {
    await removeDomains(prefix);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const f of libvirtFixtures()) {
    it(`define + dumpxml + read: ${f.name}`, async () => {
      const fixture = await loadFixture(f);
      // A name and UUID of this run only: the system libvirtd is shared with other tests.
      const def: VmDefinition = { ...fixture, id: randomUUID(), name: `${prefix}${fixture.name}`.slice(0, NAME_MAX_LENGTH).trimEnd() };
      const { xml } = writeDomainXml(def, { domainType: 'qemu' });
      const file = join(dir, `${f.name}.xml`);
      await writeFile(file, xml);
      await virsh(['define', file]);
      try {
        const dumped = await virsh(['dumpxml', '--inactive', def.id]);
        const { definition } = readDomainXml(dumped);
        assert.equal(definition.name, def.name, 'the name (escaped in the XML) comes back unchanged');
        assert.deepEqual(sharedSubset(withoutLibvirtDefaults(definition, def)), sharedSubset(expectedAfterDefine(def)));
      } finally {
        await virsh(['undefine', def.id, '--nvram']).catch(() => virsh(['undefine', def.id]));
      }
    });
  }

  it('a domain written from a Hangar definition boots on libvirt (TCG) to the guest\'s ready marker', async () => {
    const files = await libvirtGuestFiles(await ensureTestGuest());
    const serialLog = join(files.dir, 'serial.log');
    const def = parseDefinition({
      version: 1, id: randomUUID(), name: `${prefix}boot`, machine: 'q35', accel: 'tcg', memoryMiB: 256,
      boot: { order: ['disk'], kernel: { kernel: files.kernel, initrd: files.initrd, append: GUEST_CMDLINE } },
      nics: [{ id: 'net0', mac: '52:54:00:6b:00:01', network: { type: 'user' } }],
      channels: [{ id: 'agent', name: 'org.qemu.guest_agent.0' }],
      rng: { source: 'urandom' }, balloon: {}, inputs: [{ id: 'tablet0', type: 'tablet', bus: 'usb' }],
      video: { model: 'vga', display: 'vnc' }, watchdog: { action: 'reset' },
    });
    const file = join(files.dir, 'boot.xml');
    await writeFile(file, writeDomainXml(def, { domainType: 'qemu', serialLog }).xml);
    await virsh(['define', file]);
    try {
      await virsh(['start', def.name]);
      const started = Date.now();
      const deadline = Date.now() + 180_000; // TCG on a loaded 2-CPU host: about 7 s idle, far more with other lanes running
      while (!(existsSync(serialLog) && readFileSync(serialLog, 'utf8').includes(READY_MARKER))) {
        assert.ok(Date.now() < deadline, `no ${READY_MARKER} in ${serialLog} within 180 s; state: ${await virsh(['domstate', '--reason', def.name]).catch((e: Error) => e.message)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      process.stdout.write(`# libvirt start to ready marker: ${Date.now() - started} ms\n`);
      const { definition, notCarried } = readDomainXml(await virsh(['dumpxml', def.name]));
      assert.deepEqual(notCarried, [], 'the live XML (aliases, seclabel, PCI addresses added by libvirt) carries over whole');
      assert.deepEqual(sharedSubset(withoutLibvirtDefaults(definition, def)), sharedSubset(def), 'the running domain\'s live XML reads back to the definition');
    } finally {
      await virsh(['destroy', def.name]).catch(() => {});
      await virsh(['undefine', def.id, '--nvram']).catch(() => virsh(['undefine', def.id]));
      await files.cleanup();
    }
  });

  it('imports a domain as virt-manager writes it, listing exactly what is not carried', async () => {
    const name = `${prefix}virt-manager`;
    const xml = virtManagerXml(name);
    const file = join(dir, 'virt-manager.xml');
    await writeFile(file, xml);
    await virsh(['define', file]);
    try {
      const { definition, notCarried } = readDomainXml(await virsh(['dumpxml', '--inactive', name]));
      assert.deepEqual(notCarried, [
        'UEFI loader /usr/share/OVMF/OVMF_CODE_4M.fd: Hangar picks its OVMF build from the firmware descriptors',
        `UEFI variables /var/lib/libvirt/qemu/nvram/${name}_VARS.fd: the VM starts with fresh variables from the firmware's template (boot entries kept there are not carried)`,
        'CPU host-passthrough in a TCG (type qemu) domain: becomes max, since only KVM can pass the host CPU through',
        "interface 0 (52:54:00:4f:1a:2b): libvirt network 'default' becomes user-mode NAT (Hangar does not join libvirt networks; the guest is not reachable from the host)",
        'SPICE graphics: Hangar shows VNC; a VNC display is added instead',
        "channel spicevmc (com.redhat.spice.0): becomes Hangar's clipboard sharing through qemu-vdagent on the same port",
        'redirdev (2): USB redirection (redirdev) is not supported',
      ]);
      assert.equal(definition.machine, 'q35');
      assert.equal(definition.firmware, 'uefi');
      assert.equal(definition.memoryMiB, 2048);
      assert.equal(definition.cpu.vcpus, 2);
      assert.deepEqual(definition.disks.map((d) => [d.id, d.file, d.format, d.bus, d.discard, d.owned]), [['vda', '/var/lib/libvirt/images/vm-test.qcow2', 'qcow2', 'virtio-blk', true, false]]);
      assert.deepEqual(definition.cdroms, [{ id: 'sda', bus: 'sata' }]);
      assert.deepEqual(definition.nics.map((n) => [n.model, n.mac, n.network.type]), [['virtio-net', '52:54:00:4f:1a:2b', 'user']]);
      assert.deepEqual(definition.video, { model: 'qxl', vramMiB: 16, display: 'vnc', clipboard: true });
      assert.deepEqual(definition.channels.map((c) => c.name), ['org.qemu.guest_agent.0']);
      assert.deepEqual(definition.inputs.map((i) => [i.type, i.bus]), [['tablet', 'usb']]);
      assert.deepEqual(definition.usb, { model: 'qemu-xhci' });
      assert.deepEqual(definition.sound, { model: 'hda' });
      assert.deepEqual(definition.rng, { source: 'urandom' });
      assert.deepEqual(definition.boot.order, ['disk']);
    } finally {
      await virsh(['undefine', name, '--nvram']).catch(() => virsh(['undefine', name]));
    }
  });
});

/** A domain as virt-manager 4.1 (Debian 12) creates it for a Debian guest: q35, UEFI, SPICE. */
function virtManagerXml(name: string): string {
  return `<domain type="qemu">
  <name>${name}</name>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://debian.org/debian/12"/>
    </libosinfo:libosinfo>
  </metadata>
  <memory unit="KiB">2097152</memory>
  <currentMemory unit="KiB">2097152</currentMemory>
  <vcpu placement="static">2</vcpu>
  <os>
    <type arch="x86_64" machine="pc-q35-7.2">hvm</type>
    <loader readonly="yes" type="pflash">/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
    <nvram template="/usr/share/OVMF/OVMF_VARS_4M.fd">/var/lib/libvirt/qemu/nvram/${name}_VARS.fd</nvram>
    <boot dev="hd"/>
  </os>
  <features>
    <acpi/>
    <apic/>
    <vmport state="off"/>
  </features>
  <cpu mode="host-passthrough" check="none" migratable="on"/>
  <clock offset="utc">
    <timer name="rtc" tickpolicy="catchup"/>
    <timer name="pit" tickpolicy="delay"/>
    <timer name="hpet" present="no"/>
  </clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <pm>
    <suspend-to-mem enabled="no"/>
    <suspend-to-disk enabled="no"/>
  </pm>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2" discard="unmap"/>
      <source file="/var/lib/libvirt/images/vm-test.qcow2"/>
      <target dev="vda" bus="virtio"/>
    </disk>
    <disk type="file" device="cdrom">
      <driver name="qemu" type="raw"/>
      <target dev="sda" bus="sata"/>
      <readonly/>
    </disk>
    <controller type="usb" index="0" model="qemu-xhci" ports="15"/>
    <controller type="pci" index="0" model="pcie-root"/>
    <controller type="virtio-serial" index="0"/>
    <interface type="network">
      <mac address="52:54:00:4f:1a:2b"/>
      <source network="default"/>
      <model type="virtio"/>
    </interface>
    <serial type="pty">
      <target type="isa-serial" port="0">
        <model name="isa-serial"/>
      </target>
    </serial>
    <console type="pty">
      <target type="serial" port="0"/>
    </console>
    <channel type="unix">
      <target type="virtio" name="org.qemu.guest_agent.0"/>
    </channel>
    <channel type="spicevmc">
      <target type="virtio" name="com.redhat.spice.0"/>
    </channel>
    <input type="tablet" bus="usb"/>
    <input type="mouse" bus="ps2"/>
    <input type="keyboard" bus="ps2"/>
    <graphics type="spice" autoport="yes">
      <listen type="address"/>
      <image compression="off"/>
    </graphics>
    <sound model="ich9"/>
    <audio id="1" type="spice"/>
    <video>
      <model type="qxl" ram="65536" vram="65536" vgamem="16384" heads="1" primary="yes"/>
    </video>
    <redirdev bus="usb" type="spicevmc"/>
    <redirdev bus="usb" type="spicevmc"/>
    <memballoon model="virtio"/>
    <rng model="virtio">
      <backend model="random">/dev/urandom</backend>
    </rng>
  </devices>
</domain>
`;
}
