// The Prometheus text exposition format (version 0.0.4) of the VMs' latest samples, for
// `/metrics` in browser mode: counters for CPU time and disk/NIC bytes and operations (Prometheus
// computes rates itself), gauges for memory.
import type { StatsSample } from '../../common/stats.ts';

function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

interface Family { help: string; type: 'counter' | 'gauge'; lines: string[] }

export function prometheusText(samples: readonly StatsSample[], runningCount: number): string {
  const fams = new Map<string, Family>();
  const put = (name: string, type: Family['type'], help: string, labels: Record<string, string>, value: number): void => {
    let f = fams.get(name);
    if (!f) { f = { help, type, lines: [] }; fams.set(name, f); }
    const l = Object.entries(labels).map(([k, v]) => `${k}="${label(v)}"`).join(',');
    f.lines.push(`${name}{${l}} ${Number.isFinite(value) ? value : 'NaN'}`);
  };
  put('hangar_vms_running', 'gauge', 'Running VMs.', {}, runningCount);
  for (const s of samples) {
    const vm = { vm: s.name, id: s.vmId };
    put('hangar_vm_cpu_seconds_total', 'counter', 'CPU time of the VM\'s QEMU process (all threads).', vm, s.cpuSeconds);
    put('hangar_vm_vcpu_seconds_total', 'counter', 'CPU time of the VM\'s vCPU threads.', vm, s.vcpuSeconds);
    put('hangar_vm_vcpus', 'gauge', 'vCPUs of the running VM.', vm, s.vcpus);
    put('hangar_vm_memory_resident_bytes', 'gauge', 'Host memory the QEMU process holds (RSS).', vm, s.rssBytes);
    put('hangar_vm_memory_bytes', 'gauge', 'Guest memory as defined.', vm, s.memoryBytes);
    if (s.balloonActualBytes !== undefined) put('hangar_vm_balloon_actual_bytes', 'gauge', 'Guest memory the balloon leaves the guest.', vm, s.balloonActualBytes);
    for (const d of s.disks) {
      const l = { ...vm, disk: d.id };
      put('hangar_vm_disk_read_bytes_total', 'counter', 'Bytes the guest read from the disk.', l, d.rdBytes);
      put('hangar_vm_disk_written_bytes_total', 'counter', 'Bytes the guest wrote to the disk.', l, d.wrBytes);
      put('hangar_vm_disk_read_ops_total', 'counter', 'Read operations on the disk.', l, d.rdOps);
      put('hangar_vm_disk_write_ops_total', 'counter', 'Write operations on the disk.', l, d.wrOps);
    }
    for (const n of s.nics) {
      if (!n.available) continue;
      const l = { ...vm, nic: n.id, device: n.device };
      put('hangar_vm_network_receive_bytes_total', 'counter', 'Bytes the guest received on the NIC.', l, n.rxBytes);
      put('hangar_vm_network_transmit_bytes_total', 'counter', 'Bytes the guest sent on the NIC.', l, n.txBytes);
      put('hangar_vm_network_receive_packets_total', 'counter', 'Packets the guest received on the NIC.', l, n.rxPackets);
      put('hangar_vm_network_transmit_packets_total', 'counter', 'Packets the guest sent on the NIC.', l, n.txPackets);
    }
  }
  let out = '';
  for (const [name, f] of fams) out += `# HELP ${name} ${f.help}\n# TYPE ${name} ${f.type}\n${f.lines.join('\n')}\n`;
  return out;
}
