// The libvirt domain XML reader and writer without libvirt: escaping, each device kind's mapping
// in both directions, the notCarried sentences, the round trip of every fixture, and errors.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDefinition } from '../../core/common/definition.ts';
import { HangarError } from '../../core/common/errors.ts';
import type { VmDefinition } from '../../core/common/model.ts';
import { readDomainXml } from '../../core/node/libvirt/domain-xml-read.ts';
import { writeDomainXml } from '../../core/node/libvirt/domain-xml-write.ts';
import { libvirtFixtures, loadFixture } from '../golden/libvirt/libvirt-golden.ts';
import { sharedSubset } from '../helpers/libvirt-subset.ts';

const UUID = '6f1c2a34-0b1e-4c5d-8e9f-0a1b2c3d4e53';

/** A minimal domain around some devices (and optional top-level elements). */
function domain(devices: string, top = '', type = 'kvm'): string {
  return `<domain type='${type}'>
  <name>unit</name>
  <uuid>${UUID}</uuid>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  ${top}
  <devices>${devices}</devices>
</domain>`;
}

function def(over: Record<string, unknown> = {}): VmDefinition {
  return parseDefinition({ version: 1, id: UUID, name: 'unit', machine: 'q35', ...over });
}

function invalidInput(re: RegExp): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof HangarError, `expected a HangarError, got ${String(e)}`);
    assert.equal(e.code, 'invalid-input');
    assert.match(e.message, re);
    return true;
  };
}

describe('libvirt XML escaping', () => {
  const name = `x <a> & "q" 'p' ]]>`;
  const description = `<script>alert('1')</script> & "more"\nsecond line`;

  it('escapes names, descriptions and paths in text and attributes, and reads them back unchanged', () => {
    const d = def({ name, description, disks: [{ id: 'disk0', file: `/tmp/a "b" & <c>'.qcow2` }] });
    const { xml } = writeDomainXml(d);
    assert.match(xml, /<name>x &lt;a&gt; &amp; &quot;q&quot; &apos;p&apos; \]\]&gt;<\/name>/);
    assert.match(xml, /<source file="\/tmp\/a &quot;b&quot; &amp; &lt;c&gt;&apos;\.qcow2"\/>/);
    assert.ok(!xml.includes('<script>') && !xml.includes('<a>'));
    const back = readDomainXml(xml).definition;
    assert.equal(back.name, name);
    assert.equal(back.description, description);
    assert.equal(back.disks[0]!.file, `/tmp/a "b" & <c>'.qcow2`);
  });

  it('reads entities and CDATA as libvirt would', () => {
    const { definition } = readDomainXml(domain('', `<description><![CDATA[a <b> & c]]></description><title>T &amp; &#233;</title>`));
    assert.equal(definition.description, 'T & é\n\na <b> & c');
  });

  it('replaces characters XML cannot hold, and says so', () => {
    const r = writeDomainXml(def({ description: 'bell\u0007here' }));
    assert.match(r.xml, /<description>bell\ufffdhere<\/description>/);
    assert.deepEqual(r.notCarried, ['characters XML cannot hold (control characters) were replaced by U+FFFD']);
  });
});

describe('readDomainXml: the domain', () => {
  it('normalizes the UUID and sizes in any unit', () => {
    const xml = domain('', '', 'kvm').replace(UUID, UUID.replaceAll('-', '').toUpperCase())
      .replace("<memory unit='MiB'>512</memory>", "<memory unit='GiB'>2</memory><currentMemory unit='MiB'>1024</currentMemory><maxMemory slots='4' unit='GiB'>8</maxMemory>");
    const { definition, notCarried } = readDomainXml(xml);
    assert.equal(definition.id, UUID);
    assert.equal(definition.memoryMiB, 2048);
    assert.equal(definition.memory?.maxMiB, 8192);
    assert.equal(definition.memory?.slots, 4);
    assert.deepEqual(notCarried, ['currentMemory 1024 MiB (a balloon target below memory): Hangar boots with the full 2048 MiB']);
  });

  it('gives a fresh UUID when the XML has none usable, and shortens long names', () => {
    const xml = domain('').replace(`<uuid>${UUID}</uuid>`, '').replace('<name>unit</name>', `<name>${'n'.repeat(70)}</name>`);
    const { definition, notCarried } = readDomainXml(xml);
    assert.equal(definition.name, 'n'.repeat(64));
    assert.match(definition.id, /^[0-9a-f-]{36}$/);
    assert.deepEqual(notCarried, ['name: shortened to 64 characters (Hangar\'s limit)', `uuid: none in the XML; the VM gets ${definition.id}`]);
  });

  it('maps vCPUs, topology, CPU modes and features', () => {
    const top = `<cpu mode='custom' match='exact'><model fallback='forbid'>Skylake-Client</model><topology sockets='1' dies='1' cores='2' threads='2'/>
      <feature policy='require' name='avx2'/><feature policy='disable' name='svm'/><feature policy='optional' name='vmx'/></cpu>`;
    const { definition, notCarried } = readDomainXml(domain('', top).replace('<vcpu>1</vcpu>', "<vcpu current='2'>4</vcpu>"));
    assert.deepEqual({ ...definition.cpu }, { model: 'Skylake-Client', vcpus: 2, maxVcpus: 4, features: ['+avx2', '-svm'], sockets: 1, dies: 1, cores: 2, threads: 2 });
    assert.deepEqual(notCarried, ['CPU feature vmx (policy optional): only required or disabled features are carried']);
    assert.equal(readDomainXml(domain('', "<cpu mode='host-passthrough'/>")).definition.cpu.model, 'host');
    assert.equal(readDomainXml(domain('', "<cpu mode='maximum'/>")).definition.cpu.model, 'max');
    const hm = readDomainXml(domain('', "<cpu mode='host-model'/>"));
    assert.equal(hm.definition.cpu.model, 'host');
    assert.deepEqual(hm.notCarried, ['CPU mode host-model: becomes host-passthrough (Hangar\'s "host" model)']);
  });

  it('maps machine types, firmware and direct kernel boot', () => {
    const pc = readDomainXml(domain('').replace('pc-q35-7.2', 'pc-i440fx-7.2'));
    assert.equal(pc.definition.machine, 'pc');
    assert.equal(pc.definition.firmware, 'bios');
    const secure = readDomainXml(domain('').replace("<os>", "<os firmware='efi'><firmware><feature enabled='yes' name='secure-boot'/></firmware>"));
    assert.equal(secure.definition.firmware, 'uefi-secure');
    const kernel = readDomainXml(domain('').replace('</os>', '<kernel>/boot/vmlinuz</kernel><initrd>/boot/initrd</initrd><cmdline>console=ttyS0</cmdline></os>'));
    assert.deepEqual(kernel.definition.boot.kernel, { kernel: '/boot/vmlinuz', initrd: '/boot/initrd', append: 'console=ttyS0' });
    assert.deepEqual(kernel.definition.boot.order, ['disk']);
  });

  it('takes the boot order from <os><boot> or from the devices\' <boot order>', () => {
    const os = readDomainXml(domain('').replace('</os>', "<boot dev='network'/><boot dev='cdrom'/><boot dev='hd'/></os>"));
    assert.deepEqual(os.definition.boot.order, ['network', 'cdrom', 'disk']);
    const dev = readDomainXml(domain(`<disk type='file' device='disk'><source file='/d.qcow2'/><target dev='vda' bus='virtio'/><boot order='2'/></disk>
      <disk type='file' device='cdrom'><target dev='sda' bus='sata'/><boot order='1'/></disk>`));
    assert.deepEqual(dev.definition.boot.order, ['cdrom', 'disk']);
  });

  it('lists what the domain has and Hangar has not', () => {
    const top = `<features><acpi/><apic/><hyperv mode='custom'><relaxed state='on'/></hyperv></features><clock offset='localtime'/>
      <on_reboot>destroy</on_reboot><seclabel type='static' model='selinux'><label>x</label></seclabel>
      <seclabel type='dynamic' model='dac' relabel='yes'/><resource><partition>/machine</partition></resource>`;
    const { notCarried } = readDomainXml(domain('', top, 'xen').replace("arch='x86_64'", "arch='aarch64'"));
    assert.deepEqual(notCarried, [
      'feature hyperv: not supported',
      'clock offset localtime: Hangar guests\' clock runs in UTC',
      'on_reboot destroy: Hangar does restart the guest (libvirt\'s restart)',
      '<seclabel>: not supported',
      'domain type xen: Hangar runs QEMU (kvm or tcg)',
      'architecture aarch64: Hangar runs x86_64 guests',
    ]);
  });
});

describe('readDomainXml: devices', () => {
  it('disks: file images with format, bus, cache, aio, discard, iothread, read-only', () => {
    const { definition, notCarried } = readDomainXml(domain(`
      <disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none' io='native' discard='unmap' iothread='1'/><source file='/a.qcow2'/><target dev='vda' bus='virtio'/></disk>
      <disk type='file' device='disk'><source file='/b.img'/><target dev='sda' bus='scsi'/><readonly/></disk>
      <disk type='file' device='disk'><driver name='qemu' type='vhd'/><source file='/c.vhd'/><target dev='sdb' bus='sata'/><alias name='ua-legacy'/></disk>`));
    assert.deepEqual(definition.disks, [
      { id: 'vda', file: '/a.qcow2', format: 'qcow2', bus: 'virtio-blk', cache: 'none', readOnly: false, aio: 'native', discard: true, iothread: true, owned: false },
      { id: 'sda', file: '/b.img', format: 'raw', bus: 'scsi', cache: 'writeback', readOnly: true, discard: false, iothread: false, owned: false },
      { id: 'legacy', file: '/c.vhd', format: 'vpc', bus: 'sata', cache: 'writeback', readOnly: false, discard: false, iothread: false, owned: false },
    ]);
    assert.deepEqual(notCarried, []);
  });

  it('disks Hangar cannot use are listed, one sentence each', () => {
    const { definition, notCarried } = readDomainXml(domain(`
      <disk type='network' device='disk'><driver name='qemu' type='raw'/><source protocol='rbd' name='pool/img'/><target dev='vdb' bus='virtio'/></disk>
      <disk type='block' device='disk'><source dev='/dev/sdz'/><target dev='vdc' bus='virtio'/></disk>
      <disk type='volume' device='disk'><source pool='default' volume='x.qcow2'/><target dev='vdd' bus='virtio'/></disk>
      <disk type='file' device='floppy'><source file='/f.img'/><target dev='fda' bus='fdc'/></disk>
      <disk type='file' device='disk'><source file='/u.img'/><target dev='sdc' bus='usb'/></disk>
      <disk type='file' device='disk'><source file='/s.img'/><target dev='vde' bus='virtio'/><shareable/></disk>
      <disk type='file' device='disk'><source file='/r.img'/><target dev='sdd' bus='sata'/><readonly/></disk>
      <disk type='file' device='disk'><driver name='qemu' type='raw' io='native'/><source file='/n.img'/><target dev='vdf' bus='virtio'/></disk>`));
    assert.deepEqual(notCarried, [
      'disk vdb: network-backed (rbd) disks are not supported',
      'disk vdc: host block devices (/dev/sdz) are not supported; Hangar uses image files',
      'disk vdd: storage pool volumes (pool default, volume x.qcow2) are not supported; use the volume\'s path (virsh vol-path)',
      'floppy fda: floppy devices are not supported',
      'disk sdc: disks on bus usb are not supported (Hangar has virtio, sata, scsi and ide)',
      'disk vde: shareable (several guests writing one disk) is not supported',
      'disk sdd: a read-only SATA hard disk is not supported by QEMU; attach it on virtio or scsi',
      'disk vdf: I/O mode native without cache none/directsync becomes threads',
    ]);
    assert.deepEqual(definition.disks.map((d) => [d.id, d.aio]), [['vde', undefined], ['vdf', 'threads']]);
  });

  it('CD-ROMs: empty or with a medium, on ide, sata or scsi', () => {
    const { definition } = readDomainXml(domain(`
      <disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>
      <disk type='file' device='cdrom'><source file='/i.iso'/><target dev='sdb' bus='scsi'/><readonly/></disk>`));
    assert.deepEqual(definition.cdroms, [{ id: 'sda', bus: 'sata' }, { id: 'sdb', bus: 'scsi', file: '/i.iso' }]);
  });

  it('NICs: bridge, existing tap, vhost-user, slirp and passt user networking', () => {
    const { definition, notCarried } = readDomainXml(domain(`
      <interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><model type='virtio'/><driver name='vhost'/></interface>
      <interface type='ethernet'><mac address='52:54:00:00:00:02'/><target dev='tap7' managed='no'/><model type='e1000'/></interface>
      <interface type='vhostuser'><mac address='52:54:00:00:00:03'/><source type='unix' path='/run/vhu.sock' mode='server'/><model type='virtio'/></interface>
      <interface type='user'><mac address='52:54:00:00:00:04'/></interface>
      <interface type='user'><mac address='52:54:00:00:00:05'/><model type='virtio'/><backend type='passt'/>
        <portForward proto='tcp'><range start='2222' to='22'/></portForward>
        <portForward proto='udp' address='127.0.0.1'><range start='5000' end='5001' to='6000'/></portForward></interface>`));
    assert.deepEqual(definition.nics, [
      { id: 'net0', model: 'virtio-net', mac: '52:54:00:00:00:01', network: { type: 'bridge', bridge: 'br0', vhost: true } },
      { id: 'net1', model: 'e1000', mac: '52:54:00:00:00:02', network: { type: 'tap', ifname: 'tap7', vhost: false } },
      { id: 'net2', model: 'virtio-net', mac: '52:54:00:00:00:03', network: { type: 'vhost-user', socket: '/run/vhu.sock', server: true } },
      { id: 'net3', model: 'rtl8139', mac: '52:54:00:00:00:04', network: { type: 'user', portForwards: [] } },
      { id: 'net4', model: 'virtio-net', mac: '52:54:00:00:00:05', network: { type: 'passt', portForwards: [
        { protocol: 'tcp', hostAddress: '', hostPort: 2222, guestPort: 22 },
        { protocol: 'udp', hostAddress: '127.0.0.1', hostPort: 5000, guestPort: 6000 },
        { protocol: 'udp', hostAddress: '127.0.0.1', hostPort: 5001, guestPort: 6001 },
      ] } },
    ]);
    assert.deepEqual(notCarried, []);
  });

  it('NICs Hangar cannot use, and ones it converts', () => {
    const { definition, notCarried } = readDomainXml(domain(`
      <interface type='direct'><mac address='52:54:00:00:00:11'/><source dev='eth0' mode='bridge'/></interface>
      <interface type='network'><mac address='52:54:00:00:00:12'/><source network='default'/><model type='e1000e'/></interface>
      <interface type='user'><model type='virtio'/></interface>`));
    const mac = definition.nics[1]!.mac;
    assert.match(mac, /^52:54:00(:[0-9a-f]{2}){3}$/);
    assert.deepEqual(notCarried, [
      'interface 0 (52:54:00:00:00:11): type=direct (macvtap) is not supported',
      'interface 1 (52:54:00:00:00:12): NIC model e1000e becomes e1000 (Hangar has virtio, e1000 and rtl8139)',
      'interface 1 (52:54:00:00:00:12): libvirt network \'default\' becomes user-mode NAT (Hangar does not join libvirt networks; the guest is not reachable from the host)',
      `interface 2: no MAC address in the XML; it gets ${mac}`,
    ]);
  });

  it('video and graphics', () => {
    const vga = readDomainXml(domain("<video><model type='vga' vram='16384'/></video><graphics type='vnc' port='-1' autoport='yes' passwd='x'/>"));
    assert.deepEqual(vga.definition.video, { model: 'vga', vramMiB: 16, display: 'vnc', clipboard: false });
    assert.deepEqual(vga.notCarried, ['VNC password: Hangar\'s display is reached through the core, without a VNC password']);
    const cirrus = readDomainXml(domain("<video><model type='cirrus'/></video>"));
    assert.deepEqual(cirrus.definition.video, { model: 'vga', display: 'none', clipboard: false });
    assert.deepEqual(cirrus.notCarried, ['video: Cirrus becomes standard VGA (Hangar has vga, virtio, qxl and bochs)']);
    const virtio = readDomainXml(domain("<video><model type='virtio'/></video><graphics type='spice'/>"));
    assert.deepEqual(virtio.definition.video, { model: 'virtio-gpu', display: 'vnc', clipboard: false });
    assert.deepEqual(virtio.notCarried, ['SPICE graphics: Hangar shows VNC; a VNC display is added instead']);
  });

  it('serial console, serial ports and channels', () => {
    const { definition, notCarried } = readDomainXml(domain(`
      <serial type='pty'><target port='0'/></serial><console type='pty'><target type='serial' port='0'/></console>
      <serial type='file'><source path='/var/log/x.log'/><target port='1'/></serial>
      <serial type='unix'><source mode='bind' path='/run/x.sock'/><target port='2'/><alias name='ua-debug'/></serial>
      <serial type='tcp'><source mode='bind' host='127.0.0.1' service='4555'/><target port='3'/></serial>
      <channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
      <channel type='qemu-vdagent'><source><clipboard copypaste='yes'/></source><target type='virtio' name='com.redhat.spice.0'/></channel>
      <channel type='pty'><target type='guestfwd' address='10.0.2.1' port='4600'/></channel>`));
    assert.deepEqual(definition.serial, { enabled: true });
    assert.deepEqual(definition.serialPorts, [{ id: 'serial1', output: 'log' }, { id: 'debug', output: 'socket' }]);
    assert.deepEqual(definition.channels, [{ id: 'agent', name: 'org.qemu.guest_agent.0' }]);
    assert.equal(definition.video.clipboard, true);
    assert.deepEqual(notCarried, [
      'serial port 3: type=tcp is not supported (Hangar logs to a file or serves a unix socket)',
      'channel guestfwd: only virtio-serial channels are supported',
    ]);
    assert.deepEqual(readDomainXml(domain('')).definition.serial, { enabled: false });
  });

  it('rng, balloon, TPM, watchdog, sound, vsock', () => {
    const { definition, notCarried } = readDomainXml(domain(`
      <rng model='virtio'><backend model='builtin'/></rng>
      <memballoon model='virtio' autodeflate='on' freePageReporting='on'/>
      <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>
      <watchdog model='itco' action='reset'/>
      <watchdog model='i6300esb' action='dump'/>
      <sound model='ich6'/><sound model='sb16'/>
      <vsock model='virtio'><cid auto='no' address='7'/></vsock>`));
    assert.deepEqual(definition.rng, { source: 'urandom' });
    assert.deepEqual(definition.balloon, { freePageReporting: true, deflateOnOom: true });
    assert.deepEqual(definition.tpm, { model: 'tpm-crb' });
    assert.deepEqual(definition.watchdog, { model: 'i6300esb', action: 'reset' });
    assert.deepEqual(definition.sound, { model: 'hda' });
    assert.deepEqual(definition.vsock, { cid: 7 });
    assert.deepEqual(notCarried, [
      'TPM: its state (keys, measurements) stays in libvirt\'s swtpm folder; the VM starts with a new TPM',
      'watchdog action dump: not supported; the guest is reset',
      'sound card sb16: not supported (Hangar has one HDA or AC97 card)',
    ]);
    const other = readDomainXml(domain(`<rng model='virtio'><backend model='random'>/dev/random</backend></rng><memballoon model='none'/>
      <tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm><sound model='ac97'/>`));
    assert.deepEqual(other.definition.rng, { source: 'random' });
    assert.equal(other.definition.balloon, undefined);
    assert.equal(other.definition.tpm, undefined);
    assert.deepEqual(other.definition.sound, { model: 'ac97' });
    assert.deepEqual(other.notCarried, ['TPM: the passthrough back end is not supported (Hangar emulates a TPM 2.0 with swtpm)']);
  });

  it('USB and SCSI controllers, input devices', () => {
    const { definition, notCarried } = readDomainXml(domain(`
      <controller type='usb' index='0' model='ich9-ehci1'/><controller type='usb' index='0' model='ich9-uhci1'><master startport='0'/></controller>
      <controller type='scsi' index='0' model='lsilogic'/><controller type='sata' index='0'/><controller type='pci' index='0' model='pcie-root'/>
      <input type='tablet' bus='usb'/><input type='keyboard' bus='virtio'/><input type='mouse' bus='ps2'/><input type='keyboard' bus='ps2'/>
      <input type='keyboard' bus='ps2'><alias name='ua-kbd'/></input><input type='evdev'><source dev='/dev/input/event1'/></input>`));
    assert.deepEqual(definition.usb, { model: 'ich9-ehci' });
    assert.deepEqual(definition.inputs, [
      { id: 'tablet0', type: 'tablet', bus: 'usb' },
      { id: 'keyboard0', type: 'keyboard', bus: 'virtio' },
      { id: 'kbd', type: 'keyboard', bus: 'ps2' },
    ]);
    assert.deepEqual(notCarried, ['SCSI controller lsilogic: Hangar\'s SCSI disks sit on virtio-scsi', 'input evdev: host input devices are not supported']);
    const uhci = readDomainXml(domain("<controller type='usb' index='0' model='piix3-uhci'/>"));
    assert.deepEqual(uhci.definition.usb, { model: 'ich9-ehci' });
    assert.deepEqual(uhci.notCarried, ['USB controller piix3-uhci: becomes ich9-ehci with UHCI companions']);
    const nec = readDomainXml(domain("<controller type='usb' index='0' model='pci-ohci'/>"));
    assert.deepEqual(nec.definition.usb, { model: 'qemu-xhci' });
    assert.deepEqual(nec.notCarried, ['USB controller pci-ohci: becomes qemu-xhci']);
    assert.equal(readDomainXml(domain("<controller type='usb' model='none'/>")).definition.usb, undefined);
  });

  it('shared folders, host devices, and device kinds Hangar lacks', () => {
    const { definition, notCarried } = readDomainXml(domain(`
      <filesystem type='mount' accessmode='mapped'><source dir='/srv/a'/><target dir='a'/><readonly/></filesystem>
      <filesystem type='mount' accessmode='squash'><source dir='/srv/b'/><target dir='b'/></filesystem>
      <filesystem type='mount'><driver type='virtiofs'/><source dir='/srv/c'/><target dir='c'/></filesystem>
      <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x03' slot='0x10' function='0x1'/></source><rom bar='off'/></hostdev>
      <hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='4B20D080-1B54-4048-85B3-A6A62D165C01'/></source></hostdev>
      <hostdev mode='subsystem' type='usb'><source><vendor id='0x1050'/><product id='0x0407'/></source></hostdev>
      <hostdev mode='subsystem' type='usb'><source><address bus='1' device='4'/></source></hostdev>
      <smartcard mode='passthrough' type='spicevmc'/><panic model='isa'/>`));
    assert.deepEqual(definition.shares, [
      { id: 'share0', driver: 'virtio-9p', source: '/srv/a', tag: 'a', readOnly: true, securityModel: 'mapped-xattr' },
      { id: 'share1', driver: 'virtio-9p', source: '/srv/b', tag: 'b', readOnly: false, securityModel: 'none' },
      { id: 'share2', driver: 'virtiofs', source: '/srv/c', tag: 'c', readOnly: false, securityModel: 'mapped-xattr' },
    ]);
    assert.deepEqual(definition.hostPci, [{ id: 'hostpci0', address: '0000:03:10.1', managed: true, rom: false }]);
    assert.deepEqual(definition.mdevs, [{ id: 'mdev0', uuid: '4b20d080-1b54-4048-85b3-a6a62d165c01' }]);
    assert.deepEqual(definition.hostUsb, [{ id: 'usbhost0', vendorId: '1050', productId: '0407' }]);
    assert.deepEqual(notCarried, [
      'host device usb picked by bus and device number: not supported',
      'smartcard: smartcards are not supported',
      'panic: panic notifiers are not supported',
    ]);
  });
});

describe('readDomainXml: errors', () => {
  it('malformed XML is invalid-input naming the problem and where', () => {
    assert.throws(() => readDomainXml("<domain type='kvm'><name>x</name><memory>1</domain>"), invalidInput(/^malformed domain XML at line 1, column \d+: .*memory/));
    assert.throws(() => readDomainXml("<domain type='kvm'><name>a & b</name></domain>"), invalidInput(/^malformed domain XML at line 1/));
    assert.throws(() => readDomainXml(''), invalidInput(/the domain XML is empty/));
  });

  it('other documents, missing parts and bad sizes are invalid-input', () => {
    assert.throws(() => readDomainXml("<network><name>default</name></network>"), invalidInput(/not a libvirt domain: the root element is <network>, not <domain>/));
    assert.throws(() => readDomainXml("<domain type='kvm'><memory>1048576</memory></domain>"), invalidInput(/has no <name>/));
    assert.throws(() => readDomainXml("<domain type='kvm'><name>x</name></domain>"), invalidInput(/has no <memory>/));
    assert.throws(() => readDomainXml("<domain type='kvm'><name>x</name><memory unit='parsecs'>3</memory></domain>"), invalidInput(/memory: "3" parsecs is not a size/));
  });

  it('a domain Hangar\'s rules refuse is invalid-input naming the rule', () => {
    const ide = Array.from({ length: 5 }, (_, i) => `<disk type='file' device='disk'><source file='/d${i}.img'/><target dev='hd${'abcde'[i]!}' bus='ide'/></disk>`).join('');
    assert.throws(() => readDomainXml(domain(ide).replace('pc-q35-7.2', 'pc')), invalidInput(/domain "unit" cannot become a Hangar VM: .*4 IDE slots/));
  });
});

describe('writeDomainXml', () => {
  it('writes the machine, firmware and Secure Boot\'s SMM', () => {
    const { xml } = writeDomainXml(def({ firmware: 'uefi-secure', accel: 'tcg' }));
    assert.match(xml, /^<domain type="qemu">/);
    assert.match(xml, /<os firmware="efi">\s*<type arch="x86_64" machine="q35">hvm<\/type>\s*<firmware>\s*<feature enabled="yes" name="enrolled-keys"\/>\s*<feature enabled="yes" name="secure-boot"\/>/);
    assert.match(xml, /<smm state="on"\/>/);
    assert.match(writeDomainXml(def(), { domainType: 'qemu', emulator: '/opt/qemu' }).xml, /^<domain type="qemu">[\s\S]*<emulator>\/opt\/qemu<\/emulator>/);
  });

  it('writes "none" for a missing USB controller and balloon, so libvirt adds none of its own', () => {
    const { xml } = writeDomainXml(def());
    assert.match(xml, /<controller type="usb" model="none"\/>/);
    assert.match(xml, /<memballoon model="none"\/>/);
  });

  it('ich9-ehci is the EHCI and its three UHCI companions', () => {
    const { xml } = writeDomainXml(def({ usb: { model: 'ich9-ehci' } }));
    assert.equal(xml.match(/<controller type="usb" index="0" model="ich9-/g)?.length, 4);
    assert.match(xml, /model="ich9-uhci3">\s*<master startport="4"\/>/);
  });

  it('vhost-user and virtiofs get shared memfd memory', () => {
    const { xml } = writeDomainXml(def({ nics: [{ id: 'n0', mac: '52:54:00:00:00:01', network: { type: 'vhost-user', socket: '/run/v.sock' } }] }));
    assert.match(xml, /<memoryBacking>\s*<source type="memfd"\/>\s*<access mode="shared"\/>/);
    assert.match(xml, /<interface type="vhostuser">[\s\S]*<source type="unix" path="\/run\/v.sock" mode="client"\/>/);
  });

  it('passt NICs: libvirt\'s passt back end when it has one, else slirp (said)', () => {
    const d = def({ nics: [{ id: 'n0', mac: '52:54:00:00:00:01', network: { type: 'passt', portForwards: [{ hostPort: 2222, guestPort: 22 }] } }] });
    const modern = writeDomainXml(d, { passt: true });
    assert.match(modern.xml, /<backend type="passt"\/>\s*<portForward proto="tcp" address="127.0.0.1">\s*<range start="2222" to="22"\/>/);
    assert.deepEqual(readDomainXml(modern.xml).definition.nics[0]!.network, d.nics[0]!.network);
    assert.deepEqual(writeDomainXml(d).notCarried, ['NIC n0: this libvirt has no passt back end; written as libvirt user networking (slirp) without its 1 port forward(s)']);
  });

  it('lists the Hangar-only parts it cannot write', () => {
    const d = def({
      nics: [
        { id: 'iso', mac: '52:54:00:00:00:01', network: { type: 'isolated', network: 'lab' } },
        { id: 'usr', mac: '52:54:00:00:00:02', network: { type: 'user', portForwards: [{ hostPort: 8080, guestPort: 80 }], tftp: '/srv/tftp' } },
      ],
      disks: [{ id: 'fast', file: '/d.raw', format: 'raw', bus: 'vhost-user-blk' }, { id: 'win', file: '/w.vhdx', format: 'vhdx' }],
      hostUsb: [{ id: 'port', hostbus: 1, hostport: '1.4' }],
      memory: { maxMiB: 2048, hotplug: 'dimm' },
      cloudInit: { user: 'me' },
      cdroms: [{ id: 'seed', role: 'cloud-init' }],
    });
    assert.deepEqual(writeDomainXml(d).notCarried, [
      'memory hotplug up to 2048 MiB: libvirt needs guest NUMA nodes for it; not written',
      'disk fast: vhost-user-blk is served by Hangar\'s own qemu-storage-daemon; written as a virtio disk on the same image',
      'disk win: libvirt has no VHDX image format; not written (convert it with qemu-img convert -O qcow2)',
      'CD-ROM seed: the cloud-init seed is built by the Hangar core at start; written as an empty drive',
      'NIC iso: the isolated network \'lab\' is Hangar\'s own (multicast on the host\'s loopback); not written',
      'NIC usr: libvirt\'s slirp user networking has no port forwards (use passt): 1 forward(s) not written',
      'NIC usr: the built-in TFTP server / boot file of user networking is not written',
      'USB host device port: picked by bus 1 port 1.4; libvirt picks USB devices by vendor:product or bus/device number',
      'cloud-init settings: Hangar builds the NoCloud seed itself; libvirt has no equivalent',
    ]);
  });

  it('refuses a microvm, which libvirt cannot define', () => {
    const d = def({ machine: 'microvm', boot: { kernel: { kernel: '/k' } } });
    assert.throws(() => writeDomainXml(d), (e: unknown) => e instanceof HangarError && e.code === 'unsupported' && /microvm/.test(e.message));
  });

  it('round trip: every fixture reads back to the same shared subset', async () => {
    for (const f of libvirtFixtures()) {
      const d = await loadFixture(f);
      for (const passt of [false, true]) {
        const back = readDomainXml(writeDomainXml(d, { passt }).xml).definition;
        assert.deepEqual(sharedSubset(back, { passt }), sharedSubset({ ...d, accel: d.accel === 'tcg' ? 'tcg' : 'kvm' }, { passt }), `${f.name} (passt ${passt})`);
      }
    }
  });
});
