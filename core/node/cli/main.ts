// The `hangar` command line: a thin client of the core daemon (started on demand).
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { randomUUID } from 'node:crypto';
import type { CoreApi, CreateVmRequest, VmInfo } from '../../common/api.ts';
import { HangarError, describeError } from '../../common/errors.ts';
import { shellQuote } from '../../common/shell.ts';
import { isActive } from '../../common/state.ts';
import { portForwardsOf } from '../../common/model-values.ts';
import type { NetworkDefinition, VmDefinition } from '../../common/model.ts';
import { cliConnect, takeConnectOption } from './connection.ts';
import { progressPrinter } from './progress.ts';
import { listText } from './list.ts';
import type { SnapshotProgress } from '../../common/snapshots.ts';
import { passthroughConsequences } from '../../common/passthrough-consequences.ts';
import { usbHostLabel } from '../../common/device-rows.ts';
import { displayCapabilities } from '../../common/display.ts';
import { cpuDetail, memoryDetail } from '../../common/cpu-memory.ts';
import type { CreateFlags } from './create-args.ts';
import { applyCpuMemoryFlags, CPU_MEMORY_OPTIONS, CPU_MEMORY_USAGE } from './cpu-memory-args.ts';
import type { CpuMemoryFlags } from './cpu-memory-args.ts';
import type { ShutdownMode } from '../../common/guest-agent.ts';
// Heavier modules (the daemon, zod, yaml, qemu-img) load only for the commands that need them,
// so `hangar list` starts fast.

const USAGE = `Usage: hangar [--connect NAME|URI] COMMAND [options]

Connections (--connect, or HANGAR_CONNECT; default: local, this computer's Hangar core):
  connect list [--json]              the saved connections (local is always there)
  connect add NAME URI               save one: ssh://[user@]host[:port] (a Hangar core there, through
                                     your ssh), qemu:///system, qemu:///session, qemu+ssh://[user@]host/system
  connect remove NAME | test NAME    forget one (its VMs are untouched) | check that it answers
  import --from-libvirt URI DOMAIN [--name NEW] [--copy-disks]
                                     a shut-off libvirt domain becomes a Hangar VM here (disks used in
                                     place, or copied); what cannot be carried over is listed
  export NAME --libvirt-xml          the VM as libvirt domain XML on stdout (virsh define FILE);
                                     what libvirt cannot hold is listed on stderr

VMs:
  list [--json]                      list VMs with their state and guest address (from the guest agent)
  show NAME [--json]                 show a VM's definition and state
  create --name NAME [options]       define a new VM (see: hangar create --help)
  edit NAME [--name N] [--memory MiB] [--vcpus N] [--accel auto|kvm|tcg] [--description T]
            [--cpu MODEL[,±FLAG]] [--maxcpus N] [--topology ..] [--numa ..] [--hugepages ..]
            [--maxmem SIZE] [--mem-merge on|off]   (see hangar create --help)
       [--allow-overcommit]          change a stopped VM (--allow-overcommit: vCPUs above host CPUs)
  start NAME [--discard-saved]       start a VM (a saved one is restored; --discard-saved boots afresh)
  save NAME                          save a running VM's RAM and device state to its folder and stop
                                     it (the VM is then "saved"; start restores it)
  migrate NAME --to CONNECTION [--copy-storage] [--bandwidth MiB/s] [--downtime MS]
                                     live-migrate a running or paused VM to another Hangar core
                                     (ssh://host, hangar+unix:///path/hangar.sock or a saved name);
                                     progress on stderr, Ctrl+C cancels (the VM keeps running here)
  shutdown NAME [--timeout S] [--no-wait]
                                     shut down through the guest agent when it answers, else ACPI
                                     (edit --shutdown-mode auto|agent|acpi); forced off after the timeout
  destroy NAME                       force off (like pulling the plug)
  reboot NAME | reset NAME           reboot (through the guest agent when it answers, else ACPI) | hard reset
  pause NAME | resume NAME           freeze | continue the VM's CPUs
  delete NAME [--delete-disks]       remove a stopped VM (disks kept unless asked)
  cmdline NAME                       print the QEMU command line
Guest agent (qemu-ga on the org.qemu.guest_agent.0 channel, which new VMs get):
  agent NAME info [--json]           the guest's OS, hostname and IP addresses (also in hangar show)
  agent NAME ping                    whether the agent answers (a timeout error when it does not)
  agent NAME exec [--timeout S] [--input TEXT] -- CMD [ARGS...]
                                     run a program in the guest: its output, and its exit code as ours
Devices:
  device list NAME [--json]          every device with its I/O virtualization mode (and pending changes)
  device add NAME KIND [SPEC]        add a disk, NIC, ... (hotplugged into a running VM where QEMU can)
  device edit NAME KIND ID SPEC      change a device (a running VM's CD-ROM medium changes at once)
  device remove NAME KIND ID         remove (unplugged from a running VM with the guest's consent)
  device resize NAME DISK SIZE       grow a disk (offline, or online while the VM runs)
  device balloon NAME SIZE           set a running VM's balloon target
Clones:
  clone SRC NEW [--linked] [--copy-unowned|--share-unowned] [--copy-tpm]
                                     a new VM (new id, MACs) with copies of SRC's disks (progress,
                                     Ctrl+C cancels), or --linked qcow2 overlays on them (SRC is then
                                     protected); SRC stopped or paused
Autostart:
  autostart NAME on|off              start the VM when the core starts (once per host boot)
  service install [--user|--system]  a systemd unit that starts the core at login (--user, default)
                                     or at boot (--system, as root); service remove undoes it
Snapshots:
  snapshot create NAME SNAP [--disk-only] [--external] [--description T]
                                     internal (qcow2; with RAM while running) or external overlays
  snapshot list NAME [--json]        the tree with the current position; problems found
  snapshot revert NAME SNAP          go back to a snapshot (what happened since is lost)
  snapshot delete NAME SNAP          delete one, merging its data into what depends on it
  snapshot screenshot NAME SNAP FILE.png
                                     the guest's screen when the snapshot was taken (a PNG)
CPU and memory:
  cpu NAME set N | add [N]           vCPUs, hotplugged into a running q35/pc VM's free slots (--maxcpus)
  cpu NAME pin vcpu0=0,..,emulator=1 | off
                                     pin threads to host CPUs, live on a running VM
  memory NAME resize SIZE            grow a running VM's memory by a DIMM (up to --maxmem); else next start
Host:
  host devices | usb | readiness     PCI devices with IOMMU groups, SR-IOV and host use; USB devices;
                                     what PCI passthrough still needs
  host bind | release ADDR           a PCI device (and its IOMMU group) to vfio-pci, or back to the host
  host sriov PF COUNT                set an SR-IOV PF's number of VFs; host vf PF VF mac=.. vlan=..
  host mdev list | create PARENT TYPE [UUID] | remove UUID
                                     mediated devices (vGPU slices); see hangar host --help
  host topology | memory | cpu-models
                                     host CPUs and NUMA nodes; memory, huge pages, KSM and committed
                                     guest memory; QEMU's CPU models usable here
  host ksm status|on|off | hugepages 2M|1G N
                                     switch KSM page merging; size a huge page pool
Display:
  screenshot NAME FILE.png           save the running VM's screen as a PNG
  send-key NAME KEYS...              press keys together, e.g. ctrl-alt-delete, ctrl-alt-f2, alt-sysrq
  display NAME [--listen ADDR:PORT [--allow-remote]]
                                     the VM's display; --listen serves it to VNC viewers (remote-viewer,
                                     vncviewer) on a loopback port with a one-time password
Console:
  console NAME [--grace S] [--no-replay]
                                     attach to the serial console (Ctrl+] detaches)
  log NAME [--tail N] [--follow]     print the serial output captured so far (or its last N lines);
                                     --follow keeps printing while the VM runs
  ssh NAME [--user U] [-- SSH_OPTIONS... [--] [COMMAND...]]
                                     log in to a running guest with your ssh (its port forward to guest
                                     port 22, else the guest agent's address); ssh's exit code is ours
Guest OSes:
  os list [--search TEXT] [--json]   guest OSes known to osinfo-db (generic entries first)
  os detect ISO [--json]             identify an install ISO and show the VM defaults for it
Performance:
  top [--once [--json]]              host CPU and memory, then running VMs sorted by CPU with memory,
                                     disk and network rates, refreshed every second (q or Ctrl-C quits);
                                     --once prints one table
  stats NAME [--json] [--history 10m]
                                     a running VM's CPU, memory, per-disk and per-NIC rates now, or
                                     min/mean/max over its history (kept an hour at 1 s, a day per minute)
Host:
  doctor [--json]                    check what this host can run
  daemon status|stop|run             manage the core daemon
  daemon stdio                       relay stdin/stdout to the core (what ssh:// connections run remotely)
Browser mode:
  serve [--port N] [--host ADDR --allow-remote]
                                     serve the UI on http://127.0.0.1:N (default 7480; 0 = any
                                     free port) with a token in the printed URL

Exit codes: 0 done, 1 failed, 2 refused as invalid (nothing changed), 75 the VM is busy with another
operation (nothing changed; try again when it is done)
`;

const CREATE_USAGE = `Usage: hangar create --name NAME [options]
  --file vm.json|vm.yaml             start from a definition file (flags override it)
  --description TEXT
  --machine q35|pc|microvm           (default q35)
  --firmware bios|uefi|uefi-secure   bios = SeaBIOS (default); uefi = OVMF; uefi-secure = OVMF with
                                     Secure Boot on and Microsoft keys enrolled (q35 only). UEFI
                                     VMs get their own variable store (uefi-vars.fd in the VM folder)
  --accel auto|kvm|tcg               (default auto: KVM only where it really works)
${CPU_MEMORY_USAGE}
  --kernel PATH [--initrd PATH] [--append CMDLINE]
  --disk PATH[,bus=virtio-blk|ide|sata|scsi][,format=qcow2|raw|...][,cache=MODE][,readonly]
  --new-disk SIZE[,bus=..][,format=qcow2|raw]   e.g. --new-disk 10G
  --import-disk PATH[,copy|,convert][,format=qcow2|raw][,bus=..]
                                     use an existing image (qcow2, raw, vmdk, vdi, vhdx). Default: in
                                     place, the VM uses the file where it is, reads AND writes it when
                                     it runs, and never deletes it. copy/convert: qemu-img makes the
                                     VM's own image in its folder (copy keeps qcow2/raw, convert makes
                                     qcow2 unless format=) with a progress bar; the source is only
                                     read. Ctrl+C cancels and leaves nothing behind
  --cdrom ISO[,bus=ide|sata|scsi]
  --nic user[,model=virtio-net|e1000|rtl8139][,mac=..][,hostfwd=tcp::HOST-:GUEST][,tftp=DIR,bootfile=FILE]
                                     user-mode NAT inside QEMU (guest 10.0.2.15). tftp= serves DIR at
                                     10.0.2.2 over TFTP, bootfile= is the file DHCP tells a
                                     network-booting guest to load (e.g. boot.ipxe)
  --nic passt[,model=..][,mac=..][,hostfwd=tcp::HOST-:GUEST]
                                     rootless user-mode networking by a per-VM passt process (package
                                     passt): the guest gets the host's address by DHCP; port forwards
                                     are bound by passt (logs/passt-NIC.log in the VM folder)
  --nic bridge,br=BRIDGE[,vhost=on][,model=..][,mac=..]
                                     on a host bridge (e.g. br0) like another machine on its LAN: QEMU's
                                     qemu-bridge-helper adds a tap device to it. Needs root or a setuid
                                     helper, and "allow BRIDGE" in /etc/qemu/bridge.conf; no port forwards.
                                     vhost=on (virtio-net): the data path in the host kernel, needs
                                     /dev/vhost-net (modprobe vhost_net)
  --nic tap,ifname=TAP[,vhost=on][,model=..][,mac=..]
                                     a tap device made beforehand (ip tuntap add dev TAP mode tap user
                                     $USER), so the VM needs no privileges; vhost=on as for bridge
  --nic vhost-user,socket=PATH[,server=on][,mac=..]
                                     virtio-net served by a vhost-user switch (OVS-DPDK, testpmd) on a
                                     unix socket: QEMU connects to it, or with server=on listens and
                                     waits at start for the switch; guest memory is shared on its own
  --nic isolated,network=NAME[,model=..][,mac=..]
                                     a VM-to-VM network, no root needed: VMs with the same NAME see each
                                     other and nothing else (multicast on 127.0.0.1); give them addresses
  --os ID|auto                       defaults from the OS (osinfo-db: memory, vCPUs, firmware, TPM, disk
                                     bus, NIC model); auto = detect from --cdrom; explicit flags win
  --tpm[=crb|tis]                    a TPM 2.0 (swtpm; state kept in the VM folder), CRB (default,
                                     what Windows 11 expects) or TIS interface
  --boot disk,cdrom,network          firmware boot order
  --shutdown-timeout SECONDS         ACPI shutdown grace before forcing off (default 60)
  --no-serial                        no serial console
  --display vnc|none                 the screen: vnc (the Display tab, hangar display) or none
                                     (headless). Default: vnc for VMs that boot from an ISO, disk or
                                     network (with a USB tablet and the shared clipboard), none for --kernel
  --video vga|virtio-gpu|bochs|qxl|none
                                     the video device (default: virtio-gpu where the OS drives it, else vga)
  --cloud-init user=NAME,password=PW,ssh-key=FILE,hostname=HOST
                                     unattended first boot of a cloud image (each part optional):
                                     a NoCloud seed (user-data/meta-data on a "cidata" CD-ROM, made
                                     with xorriso). The password is stored only as a SHA-512 hash;
                                     ssh-key is a public key file and may repeat
  --pxe                              network boot first: each NIC carries QEMU's iPXE option ROM
                                     (efi-*.rom: PXE under BIOS, EFI under UEFI; package ipxe-qemu)
  --allow-overcommit                 go ahead with new sparse disks larger than the free space, or
                                     more vCPUs than host CPUs (refused without it, with the numbers)
  --json                             print the new VM as JSON

Every file is checked before anything is written: disks are what qemu-img says (a format= that
contradicts it is refused), writable unless readonly, not used by another VM; a CD-ROM is an ISO9660
image; a kernel is a bzImage. Invalid input exits with code 2 and leaves nothing behind.
`;

function parse(args: string[], options: ParseArgsConfig['options']): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const r = parseArgs({ args, options: { ...options, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    return { values: r.values as Record<string, unknown>, positionals: r.positionals };
  } catch (e) {
    throw new HangarError('invalid-input', (e as Error).message, 'see `hangar --help`');
  }
}

function one(positionals: string[], what = 'a VM name'): string {
  if (positionals.length !== 1) throw new HangarError('invalid-input', `expected ${what}, got ${positionals.length ? positionals.map((p) => JSON.stringify(p)).join(' ') : 'nothing'}`);
  return positionals[0]!;
}

function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

function printJson(v: unknown): void {
  print(JSON.stringify(v, null, 2));
}

function mib(n?: number): string {
  if (n === undefined) return '-';
  return n >= 1024 && n % 1024 === 0 ? `${n / 1024} GiB` : `${n} MiB`;
}

const firmwareLabel: Record<VmDefinition['firmware'], string> = {
  bios: 'BIOS (SeaBIOS)',
  uefi: 'UEFI (OVMF)',
  'uefi-secure': 'UEFI with Secure Boot (OVMF, Microsoft keys enrolled)',
};

function showText(v: VmInfo): string {
  const d = v.definition;
  const lines = [`Name:        ${v.name}`, `Id:          ${v.id}`, `State:       ${v.state}${v.reason ? ` (${v.reason})` : ''}`, `Folder:      ${v.dir}`];
  if (v.pid) lines.push(`QEMU pid:    ${v.pid}`);
  if (v.accelInUse) lines.push(`Accelerator: ${v.accelInUse}${v.accelNote ? ` (${v.accelNote})` : ''}`);
  for (const n of v.startNotes ?? []) lines.push(`Note:        ${n}`);
  if (d) {
    if (d.description) lines.push(`Description: ${d.description}`);
    if (d.osId) lines.push(`OS:          ${d.osId} (defaults from its preset)`);
    lines.push(`Machine:     ${d.machine}, accel ${d.accel}, CPU ${d.cpu.model} x${d.cpu.vcpus}, memory ${mib(d.memoryMiB)}`);
    const cpu = cpuDetail(d);
    if (cpu) lines.push(`CPU:         ${cpu}`);
    const memory = memoryDetail(d);
    if (memory) lines.push(`Memory:      ${memory}`);
    lines.push(`Firmware:    ${firmwareLabel[d.firmware]}`);
    lines.push(`Autostart:   ${d.autostart ? 'on (starts with the core, once per host boot)' : 'off'}`);
    if (d.boot.kernel) lines.push(`Boot:        kernel ${d.boot.kernel.kernel}${d.boot.kernel.initrd ? ` initrd ${d.boot.kernel.initrd}` : ''} append "${d.boot.kernel.append}"`);
    else lines.push(`Boot order:  ${d.boot.order.join(', ')}`);
    for (const k of d.disks) lines.push(`Disk ${k.id}:  ${k.file} (${k.format}, ${k.bus}, cache ${k.cache}${k.readOnly ? ', read-only' : ''})`);
    for (const c of d.cdroms) lines.push(`CD-ROM ${c.id}: ${c.file ?? '(empty)'} (${c.bus})`);
    for (const n of d.nics) lines.push(`NIC ${n.id}:   ${n.model} ${n.mac} ${networkLabel(n.network)}${portForwardsOf(n.network).map((f) => ` ${f.protocol}/${f.hostAddress}:${f.hostPort}->${f.guestPort}`).join('')}`);
    if (d.tpm) lines.push(`TPM:         TPM 2.0 (${d.tpm.model}, swtpm, state in ${v.dir}/tpm)`);
    if (d.video.model !== 'none') lines.push(`Video:       ${d.video.model}${d.video.vramMiB ? ` (${d.video.vramMiB} MiB)` : ''}`);
    lines.push(`Display:     ${displayLine(d)}`);
    for (const i of d.inputs) lines.push(`Input ${i.id}: ${i.type} on ${i.bus}`);
    if (d.usb) lines.push(`USB:         ${d.usb.model}`);
    if (d.sound) lines.push(`Sound:       ${d.sound.model}`);
    if (d.watchdog) lines.push(`Watchdog:    ${d.watchdog.model}, action ${d.watchdog.action}`);
    if (d.rng) lines.push(`RNG:         virtio-rng from /dev/${d.rng.source}`);
    if (d.balloon) lines.push(`Balloon:     virtio-balloon${d.balloon.freePageReporting ? ', free page reporting' : ''}${d.balloon.deflateOnOom ? ', deflate on OOM' : ''}`);
    for (const sh of d.shares) lines.push(`Share ${sh.id}: ${sh.source} as "${sh.tag}" (virtio-9p, ${sh.securityModel}${sh.readOnly ? ', read-only' : ''})`);
    for (const p of d.hostPci) lines.push(`Host PCI ${p.id}: ${p.address} (vfio-pci${p.managed ? ', bound at start' : ', must already be on vfio-pci'}${p.rom ? '' : ', ROM hidden'})`);
    for (const m of d.mdevs) lines.push(`Mdev ${m.id}:  ${m.uuid}${m.parent ? ` on ${m.parent}` : ''}${m.type ? ` (${m.type})` : ''}`);
    for (const u of d.hostUsb) lines.push(`Host USB ${u.id}: ${usbHostLabel(u)}`);
    for (const c of passthroughConsequences(d)) lines.push(`Consequence: ${c}`);
    lines.push(`Serial:      ${d.serial.enabled ? 'yes' : 'no'}`);
  }
  // What is saved for the next start but not in the running VM (the lines above show what is saved).
  for (const p of v.pending ?? []) lines.push(`Pending:     ${p.summary} (at the next start)`);
  return lines.join('\n');
}

function displayLine(d: VmDefinition): string {
  const caps = displayCapabilities(d);
  if (!caps.vnc) return `none (${caps.reason})`;
  return `VNC (app Display tab, hangar display --listen)${caps.clipboard ? ', shared clipboard' : ', no shared clipboard'}${caps.resize ? ', resizes to the window' : ''}`;
}

function networkLabel(net: NetworkDefinition): string {
  switch (net.type) {
    case 'passt': return 'passt (user-mode)';
    case 'bridge': return `bridge ${net.bridge}`;
    case 'isolated': return `isolated network ${net.network}`;
    default: return 'user-mode NAT';
  }
}

/** A snapshot operation with its progress events drawn on stderr. */
async function withSnapshotProgress<T>(fn: (api: CoreApi) => Promise<T>, step: (e: SnapshotProgress) => string): Promise<T> {
  const progress = progressPrinter(process.stderr);
  const conn = await cliConnect({ autostart: true, events: { snapshotProgress: (e) => { if (e.step !== 'done') progress.update(step(e), e.fraction); } } });
  try {
    return await fn(conn.api);
  } finally {
    progress.end();
    conn.close();
  }
}

/** create with a requestId: progress events drawn on stderr, Ctrl+C cancels (nothing is left behind). */
function createWithProgress(req: CreateVmRequest): Promise<VmInfo> {
  return withCopyProgress((api, requestId) => api.create({ ...req, requestId }));
}

/** A create or clone that copies disks: progress events drawn on stderr, Ctrl+C cancels (nothing is left behind). */
async function withCopyProgress(call: (api: CoreApi, requestId: string) => Promise<VmInfo>): Promise<VmInfo> {
  const requestId = randomUUID();
  const progress = progressPrinter(process.stderr);
  const conn = await cliConnect({
    autostart: true,
    events: { createProgress: (e) => { if (e.requestId === requestId) progress.update(e.step, e.fraction); } },
  });
  let cancelling = false;
  const onSigint = (): void => {
    if (cancelling) return;
    cancelling = true;
    progress.end();
    process.stderr.write('cancelling ...\n');
    void conn.api.cancelCreate(requestId).catch(() => {});
  };
  process.on('SIGINT', onSigint);
  try {
    return await call(conn.api, requestId);
  } finally {
    process.off('SIGINT', onSigint);
    progress.end();
    conn.close();
  }
}

async function withCore<T>(fn: (api: CoreApi) => Promise<T>): Promise<T> {
  const conn = await cliConnect({ autostart: true });
  try {
    return await fn(conn.api);
  } finally {
    conn.close();
  }
}

const simpleActions = ['start', 'destroy', 'reboot', 'reset', 'pause', 'resume'] as const;
const pastTense: Record<string, string> = { start: 'started', destroy: 'forced off', reboot: 'rebooting', reset: 'reset', pause: 'paused', resume: 'resumed' };

/** What a lifecycle command was after: the states that mean it happened. */
const goalStates: Record<string, (state: string) => boolean> = {
  start: isActive as (s: string) => boolean, destroy: (s) => s === 'stopped', shutdown: (s) => s === 'stopped',
  reboot: (s) => s === 'running' || s === 'rebooting', reset: (s) => s === 'running', pause: (s) => s === 'paused', resume: (s) => s === 'running',
};

/** How long a CLI whose core went away mid-request keeps trying to reach the core that replaces it. */
const RECONNECT_MS = 30_000;

/**
 * The VM's info from the core that replaces a lost one, or null when none answers in time. The
 * first attempt can still reach the dying core's socket (the kernel queues a connection until the
 * listening fd is closed), so a connection lost again is retried, not final.
 */
async function reconnectedInfo(ref: string): Promise<VmInfo | null> {
  const deadline = Date.now() + RECONNECT_MS;
  for (;;) {
    try {
      return await withCore((api) => api.get(ref));
    } catch (e) {
      if (!(e instanceof HangarError && e.code === 'daemon-unavailable') || Date.now() > deadline) return null;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/**
 * A lifecycle request whose core went away mid-way (killed, crashed) lost its answer, not its VM:
 * connect again (a new core starts and re-attaches every VM) and report what the VM really is.
 * Returns the VM's info and, when the core was lost, a line saying so.
 */
async function lifecycleCall(ref: string, verb: string, fn: (api: CoreApi) => Promise<VmInfo>): Promise<{ info: VmInfo; lostCore?: string }> {
  const conn = await cliConnect({ autostart: true });
  try {
    return { info: await fn(conn.api) };
  } catch (e) {
    if (!(e instanceof HangarError && e.code === 'daemon-unavailable')) throw e;
    const info = await reconnectedInfo(ref);
    if (!info) throw e;
    const now = `${info.state}${info.reason ? ` (${info.reason})` : ''}`;
    const line = `the Hangar core stopped during the ${verb} of VM "${info.name}" (${e.message}); a new core re-attached it: it is ${now}`;
    if (!(goalStates[verb]?.(info.state) ?? false)) {
      throw new HangarError('daemon-unavailable', line, `${verb} it again if you still want to (see \`hangar show ${info.name}\`)`);
    }
    return { info, lostCore: line };
  } finally {
    conn.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = takeConnectOption(argv);
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    print(USAGE);
    return cmd ? 0 : 2;
  }
  switch (cmd) {
    case 'list': {
      const { values } = parse(rest, {});
      const vms = await withCore((api) => api.list());
      if (values.json) printJson(vms);
      else print(listText(vms));
      return 0;
    }
    case 'show': {
      const { values, positionals } = parse(rest, {});
      const info = await withCore((api) => api.get(one(positionals)));
      if (values.json) {
        // Scripts poll this: it never waits for a guest (`hangar agent NAME info --json` asks the agent).
        printJson(info);
        return 0;
      }
      // A running guest with the agent channel: what the agent says (OS, hostname, IPs), asked briefly.
      const hasAgent = info.state === 'running' && info.definition?.channels.some((c) => c.name === 'org.qemu.guest_agent.0');
      const agent = hasAgent ? await withCore((api) => api.agentInfo(info.name, { timeoutMs: 1500 })) : undefined;
      print(showText(info) + (agent ? `\n${(await import('./agent.ts')).agentInfoLines(agent).join('\n')}` : ''));
      return 0;
    }
    case 'agent': {
      // Everything after "--" is the guest's command line, options included.
      const dash = rest.indexOf('--');
      const command = dash >= 0 ? rest.slice(dash + 1) : [];
      const { values, positionals } = parse(dash >= 0 ? rest.slice(0, dash) : rest, { timeout: { type: 'string' }, input: { type: 'string' } });
      const [name, sub, ...extra] = positionals;
      const agent = await import('./agent.ts');
      if (extra.length) throw new HangarError('invalid-input', `unexpected ${extra.map((p) => JSON.stringify(p)).join(' ')} (put the guest's command after --)`, agent.AGENT_USAGE);
      return agent.agentCommand(name, sub, values, command, withCore, print, (m) => process.stderr.write(`${m}\n`));
    }
    case 'create': {
      // `--tpm` alone means the default model: parseArgs has no optional values, so spell it out.
      const args = rest.map((a) => (a === '--tpm' ? '--tpm=crb' : a));
      const { values, positionals } = parse(args, {
        tpm: { type: 'string' },
        name: { type: 'string' }, description: { type: 'string' }, memory: { type: 'string' },
        machine: { type: 'string' }, firmware: { type: 'string' }, accel: { type: 'string' }, kernel: { type: 'string' },
        initrd: { type: 'string' }, append: { type: 'string' }, disk: { type: 'string', multiple: true },
        'new-disk': { type: 'string', multiple: true }, 'import-disk': { type: 'string', multiple: true }, cdrom: { type: 'string', multiple: true },
        nic: { type: 'string', multiple: true }, boot: { type: 'string' }, 'shutdown-timeout': { type: 'string' },
        'no-serial': { type: 'boolean' }, display: { type: 'string' }, video: { type: 'string' }, file: { type: 'string' }, os: { type: 'string' },
        'cloud-init': { type: 'string' }, pxe: { type: 'boolean' }, 'allow-overcommit': { type: 'boolean' }, ...CPU_MEMORY_OPTIONS,
      });
      if (values.help) { print(CREATE_USAGE); return 0; }
      if (positionals.length) throw new HangarError('invalid-input', `unexpected argument "${positionals[0]}"`, 'pass the name with --name');
      const { buildCreateRequest } = await import('./create-args.ts');
      const req = await buildCreateRequest(values as CreateFlags);
      let info: VmInfo;
      try {
        info = await createWithProgress(req);
      } catch (e) {
        if (!(e instanceof HangarError && e.code === 'cancelled')) throw e;
        process.stderr.write('hangar: cancelled; nothing was created\n');
        return 130;
      }
      if (values.json) printJson(info);
      else print(`Created VM "${info.name}" (${info.id}) in ${info.dir}`);
      return 0;
    }
    case 'edit': {
      const { values, positionals } = parse(rest, {
        name: { type: 'string' }, description: { type: 'string' }, memory: { type: 'string' },
        accel: { type: 'string' }, 'shutdown-timeout': { type: 'string' }, 'shutdown-mode': { type: 'string' }, 'allow-overcommit': { type: 'boolean' }, ...CPU_MEMORY_OPTIONS,
      });
      const patch: Record<string, unknown> = {};
      const num = (k: string): number => {
        const v = values[k] as string;
        if (!/^\d+$/.test(v)) throw new HangarError('invalid-input', `--${k} must be a whole number, got "${v}"`);
        return parseInt(v, 10);
      };
      if (values.name !== undefined) patch.name = values.name;
      if (values.description !== undefined) patch.description = values.description;
      if (values.memory !== undefined) patch.memoryMiB = num('memory');
      applyCpuMemoryFlags(values as CpuMemoryFlags, patch);
      if (values.accel !== undefined) patch.accel = values.accel;
      if (values['shutdown-timeout'] !== undefined) patch.shutdownTimeoutSec = num('shutdown-timeout');
      if (values['shutdown-mode'] !== undefined) {
        // Any state (a running VM's next Shut Down follows it); checked by the core.
        const mode = values['shutdown-mode'] as ShutdownMode;
        const info = await withCore((api) => api.setShutdownMode(one(positionals), mode));
        if (!Object.keys(patch).length) {
          if (values.json) printJson(info);
          else print(`Updated VM "${info.name}": Shut Down and Reboot go through ${mode === 'auto' ? 'the guest agent when it answers, else ACPI' : mode === 'agent' ? 'the guest agent' : 'ACPI'}`);
          return 0;
        }
      }
      if (!Object.keys(patch).length) throw new HangarError('invalid-input', 'nothing to change', 'pass at least one of --name --description --memory --vcpus --accel --shutdown-timeout, or a CPU or memory flag (hangar edit --help)');
      const info = await withCore((api) => api.edit(one(positionals), patch, values['allow-overcommit'] ? { allowOvercommit: true } : undefined));
      if (values.json) printJson(info);
      else print(`Updated VM "${info.name}"`);
      return 0;
    }
    case 'shutdown': {
      const { values, positionals } = parse(rest, { timeout: { type: 'string' }, 'no-wait': { type: 'boolean' } });
      let timeoutSec: number | undefined;
      if (values.timeout !== undefined) {
        timeoutSec = Number(values.timeout);
        if (!Number.isFinite(timeoutSec) || timeoutSec <= 0) throw new HangarError('invalid-input', `--timeout must be a positive number of seconds, got "${values.timeout as string}"`);
      }
      const wait = !values['no-wait'];
      const name = one(positionals);
      const { info, lostCore } = await lifecycleCall(name, 'shutdown', (api) => api.shutdown(name, { ...(timeoutSec !== undefined ? { timeoutSec } : {}), wait }));
      if (lostCore) process.stderr.write(`hangar: ${lostCore}\n`);
      if (values.json) printJson(info);
      else print(wait || lostCore ? `VM "${info.name}" is ${info.state}${info.reason ? ` (${info.reason})` : ''}` : `Sent the ACPI power button to "${info.name}"`);
      return 0;
    }
    case 'delete': {
      const { values, positionals } = parse(rest, { 'delete-disks': { type: 'boolean' } });
      const r = await withCore((api) => api.delete(one(positionals), { deleteDisks: Boolean(values['delete-disks']) }));
      if (values.json) printJson(r);
      else {
        print(`Deleted VM "${positionals[0]}"`);
        for (const f of r.keptFiles) print(`  kept ${f}`);
      }
      return 0;
    }
    case 'cmdline': {
      const { values, positionals } = parse(rest, {});
      const args = await withCore((api) => api.commandLine(one(positionals)));
      if (values.json) printJson(args);
      else print(args.map(shellQuote).join(' '));
      return 0;
    }
    case 'console': {
      const { values, positionals } = parse(rest, { grace: { type: 'string' }, 'no-replay': { type: 'boolean' } });
      const { runConsole, parseGrace } = await import('./console.ts');
      return runConsole(one(positionals), { graceSec: parseGrace(values.grace as string | undefined), replay: !values['no-replay'] });
    }
    case 'ssh': {
      // After "--": ssh's own options, then the guest's command (see hangar ssh --help).
      const dash = rest.indexOf('--');
      const { values, positionals } = parse(dash >= 0 ? rest.slice(0, dash) : rest, { user: { type: 'string', short: 'l' } });
      const ssh = await import('./ssh.ts');
      if (values.help) { print(ssh.SSH_USAGE); return 0; }
      return ssh.sshCommand(one(positionals), values.user as string | undefined, dash >= 0 ? rest.slice(dash + 1) : []);
    }
    case 'log': {
      const { values, positionals } = parse(rest, { follow: { type: 'boolean', short: 'f' }, tail: { type: 'string', short: 'n' } });
      const { printLog, parseTail } = await import('./log.ts');
      const tailLines = parseTail(values.tail as string | undefined);
      await withCore((api) => printLog(api, one(positionals), { tailLines, follow: values.follow === true }));
      return 0;
    }
    case 'screenshot': {
      const { positionals } = parse(rest, {});
      if (positionals.length !== 2) throw new HangarError('invalid-input', 'screenshot takes a VM and a file', 'hangar screenshot NAME FILE.png');
      return (await import('./display.ts')).screenshotCommand(positionals[0]!, positionals[1], withCore, print);
    }
    case 'send-key': {
      const { positionals } = parse(rest, {});
      const [name, ...keys] = positionals;
      return (await import('./display.ts')).sendKeyCommand(one(name ? [name] : []), keys, withCore, print);
    }
    case 'display': {
      const { values, positionals } = parse(rest, { listen: { type: 'string' }, 'allow-remote': { type: 'boolean' } });
      return (await import('./display.ts')).displayCommand(one(positionals), values, withCore, print, (m) => process.stderr.write(`${m}\n`));
    }
    case 'top': {
      const { values, positionals } = parse(rest, { once: { type: 'boolean' } });
      if (positionals.length) throw new HangarError('invalid-input', `top takes no VM names, got ${positionals.map((p) => JSON.stringify(p)).join(' ')}`, 'hangar top [--once [--json]]');
      return (await import('./stats.ts')).topCommand(values, withCore, print);
    }
    case 'stats': {
      const { values, positionals } = parse(rest, { history: { type: 'string' } });
      return (await import('./stats.ts')).statsCommand(one(positionals), values, withCore, print);
    }
    case 'doctor': {
      const { values } = parse(rest, {});
      const checks = await withCore((api) => api.doctor());
      if (values.json) printJson(checks);
      else {
        print((await import('../host/doctor.ts')).formatDoctorReport({ checks }));
        print(`\n${(await import('../../common/device-advice.ts')).adviceText(checks)}`);
      }
      return checks.some((c) => c.status === 'error') ? 1 : 0;
    }
    case 'device': {
      const [sub, ...args] = rest;
      const { values, positionals } = parse(args, { 'delete-file': { type: 'boolean' }, timeout: { type: 'string' }, 'allow-overcommit': { type: 'boolean' } });
      return (await import('./device.ts')).deviceCommand(sub, positionals, values, withCore, print);
    }
    case 'snapshot': {
      const [sub, ...args] = rest;
      const { values, positionals } = parse(args, { 'disk-only': { type: 'boolean' }, external: { type: 'boolean' }, description: { type: 'string' } });
      const snap = await import('./snapshot.ts');
      return snap.snapshotCommand(sub, positionals, values, withCore, print, (fn) => withSnapshotProgress(fn, snap.snapshotProgressStep));
    }
    case 'clone': {
      const { values, positionals } = parse(rest, {
        linked: { type: 'boolean' }, 'copy-unowned': { type: 'boolean' }, 'share-unowned': { type: 'boolean' }, 'copy-tpm': { type: 'boolean' }, description: { type: 'string' },
      });
      if (positionals.length !== 2) throw new HangarError('invalid-input', `expected SOURCE NEW-NAME, got ${positionals.map((p) => JSON.stringify(p)).join(' ') || 'nothing'}`, 'hangar clone SOURCE NEW-NAME [--linked]');
      if (values['copy-unowned'] && values['share-unowned']) throw new HangarError('invalid-input', '--copy-unowned and --share-unowned exclude each other', 'choose one');
      const [src, name] = positionals as [string, string];
      const info = await withCopyProgress((api, requestId) => api.clone(src, {
        name, requestId,
        ...(values.linked ? { linked: true } : {}),
        ...(values['copy-unowned'] ? { unowned: 'copy' as const } : values['share-unowned'] ? { unowned: 'share' as const } : {}),
        ...(values['copy-tpm'] ? { copyTpm: true } : {}),
        ...(values.description !== undefined ? { description: String(values.description) } : {}),
      }));
      if (values.json) printJson(info);
      else print(`Cloned VM "${src}" as "${info.name}" (${info.id}) in ${info.dir}${values.linked ? ` (linked: "${src}" is protected while this clone exists)` : ''}`);
      return 0;
    }
    case 'migrate': {
      const { values, positionals } = parse(rest, { to: { type: 'string' }, 'copy-storage': { type: 'boolean' }, bandwidth: { type: 'string' }, downtime: { type: 'string' } });
      const name = one(positionals);
      if (typeof values.to !== 'string' || !values.to) throw new HangarError('invalid-input', 'migrate needs --to CONNECTION', 'hangar migrate NAME --to CONNECTION [--copy-storage]');
      const num = (v: unknown, what: string): number | undefined => {
        if (v === undefined) return undefined;
        const n = Number(v);
        if (!Number.isFinite(n) || n <= 0) throw new HangarError('invalid-input', `--${what} must be a positive number, got ${JSON.stringify(v)}`);
        return n;
      };
      const { migrateCommand } = await import('./migrate.ts');
      await migrateCommand(name, {
        to: values.to, copyStorage: values['copy-storage'] === true, json: values.json === true,
        ...(values.bandwidth !== undefined ? { bandwidth: num(values.bandwidth, 'bandwidth')! } : {}),
        ...(values.downtime !== undefined ? { downtime: Math.round(num(values.downtime, 'downtime')!) } : {}),
      }, print);
      return 0;
    }
    case 'save': {
      const { values, positionals } = parse(rest, {});
      const name = one(positionals);
      const info = await withSnapshotProgress((api) => api.save(name), (e) => e.step);
      if (values.json) printJson(info);
      else print(`VM "${info.name}" saved: its RAM and device state are in ${info.dir}; \`hangar start ${info.name}\` restores it`);
      return 0;
    }
    case 'autostart': {
      const { values, positionals } = parse(rest, {});
      if (positionals.length !== 2 || !['on', 'off'].includes(positionals[1]!)) {
        throw new HangarError('invalid-input', `expected NAME on|off, got ${positionals.map((p) => JSON.stringify(p)).join(' ') || 'nothing'}`, 'hangar autostart NAME on|off');
      }
      const info = await withCore((api) => api.setAutostart(positionals[0]!, positionals[1] === 'on'));
      if (values.json) printJson(info);
      else print(`VM "${info.name}" ${positionals[1] === 'on' ? 'starts with the core (once per host boot; `hangar service install` starts the core at login or boot)' : 'no longer starts with the core'}`);
      return 0;
    }
    case 'service': {
      const [sub, ...args] = rest;
      const { values, positionals } = parse(args, { user: { type: 'boolean' }, system: { type: 'boolean' }, 'no-enable': { type: 'boolean' } });
      return (await import('./service.ts')).serviceCommand(sub, positionals, values, print);
    }
    case 'host': {
      const [sub, ...args] = rest;
      const { values, positionals } = parse(args, { accel: { type: 'string' } });
      return (await import('./host.ts')).hostCommand(sub, values, print, process.env, positionals, withCore);
    }
    case 'cpu': {
      const { values, positionals } = parse(rest, {});
      return (await import('./cpu-memory.ts')).cpuCommand(positionals, values, withCore, print);
    }
    case 'memory': {
      const { values, positionals } = parse(rest, {});
      return (await import('./cpu-memory.ts')).memoryCommand(positionals, values, withCore, print);
    }
    case 'os': {
      const [sub, ...args] = rest;
      const { values, positionals } = parse(args, { search: { type: 'string' } });
      return (await import('./os.ts')).osCommand(sub, positionals, values, print);
    }
    case 'daemon':
      return daemonCommand(rest);
    case 'import': {
      const { values, positionals } = parse(rest, { 'from-libvirt': { type: 'string' }, name: { type: 'string' }, 'copy-disks': { type: 'boolean' } });
      return (await import('./libvirt-io.ts')).importCommand(positionals, values, (req) => values['copy-disks'] ? createWithProgress(req) : withCore((api) => api.create(req)), print,
        (s) => process.stderr.write(`${s}\n`));
    }
    case 'export': {
      const { values, positionals } = parse(rest, { 'libvirt-xml': { type: 'boolean' } });
      return withCore(async (api) => (await import('./libvirt-io.ts')).exportCommand(positionals, values, api, print, (s) => process.stderr.write(`${s}\n`)));
    }
    case 'connect': {
      const [sub, ...args] = rest;
      const { values, positionals } = parse(args, {});
      return (await import('./connect.ts')).connectCommand(sub, positionals, values, print);
    }
    case 'serve': {
      const { values } = parse(rest, { port: { type: 'string' }, host: { type: 'string' }, 'allow-remote': { type: 'boolean' } });
      return (await import('./serve.ts')).serveCommand(values, print);
    }
    default:
      if ((simpleActions as readonly string[]).includes(cmd)) {
        const { values, positionals } = parse(rest, cmd === 'start' ? { 'discard-saved': { type: 'boolean' } } : {});
        const action = cmd as (typeof simpleActions)[number];
        const name = one(positionals);
        const { info, lostCore } = await lifecycleCall(name, action, (api) => action === 'start' ? api.start(name, values['discard-saved'] ? { discardSaved: true } : {}) : api[action](name));
        if (lostCore) process.stderr.write(`hangar: ${lostCore}\n`);
        if (values.json) printJson(info);
        else print(`VM "${info.name}" ${pastTense[action]}${isActive(info.state) || action === 'destroy' ? '' : ` (now ${info.state})`}`);
        if (!values.json) for (const n of info.startNotes ?? []) print(`Note: ${n}`);
        return 0;
      }
      throw new HangarError('invalid-input', `unknown command "${cmd}"`, 'see `hangar --help`');
  }
}

async function daemonCommand(rest: string[]): Promise<number> {
  const { values, positionals } = parse(rest, { foreground: { type: 'boolean' } });
  const sub = one(positionals, 'status, stop, run or stdio');
  if (sub === 'stdio') {
    // What `ssh host hangar daemon stdio` runs for a remote connection: stdout is the channel.
    return (await import('../connections/daemon-stdio.ts')).runDaemonStdio();
  }
  if (sub === 'run') {
    const { runDaemon } = await import('../daemon.ts');
    await runDaemon({ quietIfRunning: !values.foreground });
    return -1; // keep running
  }
  if (sub === 'status') {
    try {
      const conn = await cliConnect({ autostart: false });
      const s = await conn.api.daemonStatus();
      conn.close();
      if (values.json) printJson(s);
      else print(`running: pid ${s.pid}, ${s.vmCount} VMs (${s.runningCount} active), RSS ${Math.round(s.rssBytes / 1048576)} MiB\nsocket: ${s.socketPath}\ndata:   ${s.dataDir}`);
      return 0;
    } catch (e) {
      if (e instanceof HangarError && e.code === 'daemon-unavailable') {
        if (values.json) printJson({ running: false });
        else print('not running (it starts on the next hangar command)');
        return 3;
      }
      throw e;
    }
  }
  if (sub === 'stop') {
    try {
      const conn = await cliConnect({ autostart: false });
      const { pid } = await conn.api.daemonStatus();
      await conn.api.daemonStop();
      conn.close();
      // Gone before this returns: a command right after must not reach a core on its way out.
      const deadline = Date.now() + 15_000;
      const alive = (): boolean => { try { process.kill(pid, 0); return true; } catch { return false; } };
      while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      if (alive()) throw new HangarError('timeout', `the core (pid ${pid}) was asked to stop but still runs after 15 s`, `see its log; kill ${pid} ends it (VMs keep running)`);
      print('core daemon stopped (VMs keep running)');
    } catch (e) {
      if (!(e instanceof HangarError && e.code === 'daemon-unavailable')) throw e;
      print('not running');
    }
    return 0;
  }
  throw new HangarError('invalid-input', `unknown daemon command "${sub}"`, 'use status, stop, run or stdio');
}

export async function runCli(argv: string[]): Promise<void> {
  // `hangar os list | head`: a reader that went away is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(0); else throw e; });
  try {
    const code = await main(argv);
    if (code >= 0) process.exitCode = code;
  } catch (e) {
    process.stderr.write(`hangar: error: ${describeError(e)}\n`);
    // Exit 2: the request itself was refused (bad input, a name taken), before anything changed.
    // Exit 75 (EX_TEMPFAIL): the VM is busy with another operation; the same command may work in a moment.
    process.exitCode = e instanceof HangarError && (e.code === 'invalid-input' || e.code === 'already-exists') ? 2
      : e instanceof HangarError && e.code === 'busy' ? 75 : 1;
  }
}
