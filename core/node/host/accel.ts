// The accelerator probe: "probed, not assumed".
//
// A /dev/kvm node proves nothing on its own: nested or paravirtual KVM can create VMs that then
// die on their first x87/SSE instruction (QEMU run state `internal-error`), or never get
// past early boot. So KVM counts as working only when a real tiny guest runs under it to
// completion: a 512-byte boot sector, built below as bytes, that goes from 16-bit real mode
// through 32-bit protected mode into 64-bit long mode, runs some x87 and SSE arithmetic
// (which every ordinary OS and UEFI firmware does immediately) and prints a marker on COM1.
// TCG gets the same probe. The result is cached on disk, keyed by everything that could
// change it, so later calls are instant.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { homedir, release, tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import { formatQemuVersion, qemuInfo } from './binaries.ts';

export type Accel = 'kvm' | 'tcg';

export interface AccelProbe {
  kvm: { available: boolean; works: boolean; reason: string };
  tcg: { works: boolean; reason: string };
  best: Accel;
  /** ISO timestamp of when the probe actually ran (a cached result keeps its original time). */
  probedAt: string;
  /** e.g. "7.2.22" */
  qemuVersion: string;
}

export interface ProbeAcceleratorsOptions {
  /** qemu-system-x86_64 to probe (default: found via findBinary). */
  qemuPath?: string;
  /** Where to look for the kvm device node (default /dev). */
  devRoot?: string;
  /** Where the cached result lives (default $XDG_CACHE_HOME/hangar or ~/.cache/hangar). */
  cacheDir?: string;
  /** Time each probe guest gets to print its marker (default 20 s). */
  timeoutMs?: number;
  /** Ignore the cache and probe again. */
  force?: boolean;
  /** Where the probe's temp files go (default os.tmpdir()); always removed afterwards. */
  tmpDir?: string;
}

// ---------------------------------------------------------------------------------------------
// The probe guest
// ---------------------------------------------------------------------------------------------

/** Printed on COM1 by the probe guest when everything ran (from 64-bit mode, after x87 and SSE). */
export const PROBE_MARKER = 'HANGAR-ACCEL-OK';
/** Printed instead when the x87/SSE arithmetic gave wrong results. */
export const PROBE_BAD_MARKER = 'HANGAR-ACCEL-BAD';

/** Bump whenever the probe guest or the probe logic changes: invalidates cached results. */
const PROBE_REVISION = 2;

// Machine code, loaded by the BIOS at 0000:7C00. Assembled from the source below with GNU as
// (`as --32`, .intel_syntax) and checked with `objdump -D -b binary -m i8086|i386|i386:x86-64`;
// the comments are that disassembly (address, instruction). All jumps and calls are relative
// or absolute to 0x7Cxx, so the layout constants further down must not move.
//
//   16-bit: cli; zero ds/es/ss; sp=0x7c00; cld; dx=COM1; print "@16"; fast A20 (port 0x92);
//           lgdt; CR0.PE=1; far jmp to 32-bit code
//   32-bit: flat data segments; esp=0x7c00; print "@32"; zero 0x1000-0x3fff; PML4[0]->PDPT,
//           PDPT[0]->PD, PD[0] = 2 MiB identity page; CR3; CR4.PAE|OSFXSR|OSXMMEXCPT;
//           EFER.LME; CR0.PG; far jmp to 64-bit code
//   64-bit: print "@64"; x87: fninit; 1+1 -> fistp [0x5000]; must be 2; print "@FPU";
//           SSE: cvtsi2ss 3; addss; cvttss2si; must be 6; print "@SSE"; print the marker;
//           cli; hlt loop
const PROGRAM: readonly string[] = [
  // ---- 16-bit real mode ----
  'fa',                   // 7c00  cli
  '31c0',                 // 7c01  xor ax,ax
  '8ed8',                 // 7c03  mov ds,ax
  '8ec0',                 // 7c05  mov es,ax
  '8ed0',                 // 7c07  mov ss,ax
  'bc007c',               // 7c09  mov sp,0x7c00
  'fc',                   // 7c0c  cld
  'baf803',               // 7c0d  mov dx,0x3f8
  'be567d',               // 7c10  mov si,0x7d56              ; "@16\n"
  'e81a00',               // 7c13  call 0x7c30
  'e492',                 // 7c16  in al,0x92
  '0c02',                 // 7c18  or al,0x2
  '24fe',                 // 7c1a  and al,0xfe
  'e692',                 // 7c1c  out 0x92,al
  '0f0116507d',           // 7c1e  lgdtw ds:0x7d50            ; gdtr
  '0f20c0',               // 7c23  mov eax,cr0
  '0c01',                 // 7c26  or al,0x1
  '0f22c0',               // 7c28  mov cr0,eax
  'ea397c0800',           // 7c2b  jmp 0x8:0x7c39
  'ac',                   // 7c30  lods al,BYTE PTR ds:[si]
  '84c0',                 // 7c31  test al,al
  '7403',                 // 7c33  je 0x7c38
  'ee',                   // 7c35  out dx,al
  'ebf8',                 // 7c36  jmp 0x7c30
  'c3',                   // 7c38  ret
  // ---- 32-bit protected mode, flat segments ----
  '66b81000',             // 7c39  mov ax,0x10
  '8ed8',                 // 7c3d  mov ds,eax
  '8ec0',                 // 7c3f  mov es,eax
  '8ed0',                 // 7c41  mov ss,eax
  'bc007c0000',           // 7c43  mov esp,0x7c00
  'be5b7d0000',           // 7c48  mov esi,0x7d5b             ; "@32\n"
  'e85f000000',           // 7c4d  call 0x7cb1
  'bf00100000',           // 7c52  mov edi,0x1000
  '31c0',                 // 7c57  xor eax,eax
  'b9000c0000',           // 7c59  mov ecx,0xc00
  'f3ab',                 // 7c5e  rep stos DWORD PTR es:[edi],eax
  'c7050010000003200000', // 7c60  mov DWORD PTR ds:0x1000,0x2003
  'c7050020000003300000', // 7c6a  mov DWORD PTR ds:0x2000,0x3003
  'c7050030000083000000', // 7c74  mov DWORD PTR ds:0x3000,0x83
  'b800100000',           // 7c7e  mov eax,0x1000
  '0f22d8',               // 7c83  mov cr3,eax
  '0f20e0',               // 7c86  mov eax,cr4
  '0d20060000',           // 7c89  or eax,0x620
  '0f22e0',               // 7c8e  mov cr4,eax
  'b9800000c0',           // 7c91  mov ecx,0xc0000080
  '0f32',                 // 7c96  rdmsr
  '0d00010000',           // 7c98  or eax,0x100
  '0f30',                 // 7c9d  wrmsr
  '0f20c0',               // 7c9f  mov eax,cr0
  '0d00000080',           // 7ca2  or eax,0x80000000
  '0f22c0',               // 7ca7  mov cr0,eax
  'eaba7c00001800',       // 7caa  jmp 0x18:0x7cba
  'ac',                   // 7cb1  lods al,BYTE PTR ds:[esi]
  '84c0',                 // 7cb2  test al,al
  '7403',                 // 7cb4  je 0x7cb9
  'ee',                   // 7cb6  out dx,al
  'ebf8',                 // 7cb7  jmp 0x7cb1
  'c3',                   // 7cb9  ret
  // ---- 64-bit long mode ----
  '66baf803',             // 7cba  mov dx,0x3f8
  'be607d0000',           // 7cbe  mov esi,0x7d60             ; "@64\n"
  'e858000000',           // 7cc3  call 0x7d20
  'dbe3',                 // 7cc8  fninit
  'd9e8',                 // 7cca  fld1
  'd9e8',                 // 7ccc  fld1
  'dec1',                 // 7cce  faddp st(1),st
  'db1c2500500000',       // 7cd0  fistp DWORD PTR ds:0x5000
  '833c250050000002',     // 7cd7  cmp DWORD PTR ds:0x5000,0x2
  '7531',                 // 7cdf  jne 0x7d12
  'be657d0000',           // 7ce1  mov esi,0x7d65             ; "@FPU\n"
  'e835000000',           // 7ce6  call 0x7d20
  'b803000000',           // 7ceb  mov eax,0x3
  'f30f2ac0',             // 7cf0  cvtsi2ss xmm0,eax
  'f30f58c0',             // 7cf4  addss xmm0,xmm0
  'f30f2cc0',             // 7cf8  cvttss2si eax,xmm0
  '83f806',               // 7cfc  cmp eax,0x6
  '7511',                 // 7cff  jne 0x7d12
  'be6b7d0000',           // 7d01  mov esi,0x7d6b             ; "@SSE\n"
  'e815000000',           // 7d06  call 0x7d20
  'be717d0000',           // 7d0b  mov esi,0x7d71             ; marker
  'eb05',                 // 7d10  jmp 0x7d17
  'be827d0000',           // 7d12  mov esi,0x7d82             ; bad marker
  'e804000000',           // 7d17  call 0x7d20
  'fa',                   // 7d1c  cli
  'f4',                   // 7d1d  hlt
  'ebfc',                 // 7d1e  jmp 0x7d1c
  'ac',                   // 7d20  lods al,BYTE PTR ds:[rsi]
  '84c0',                 // 7d21  test al,al
  '7403',                 // 7d23  je 0x7d28
  'ee',                   // 7d25  out dx,al
  'ebf8',                 // 7d26  jmp 0x7d20
  'c3',                   // 7d28  ret
];

const LOAD_ADDRESS = 0x7c00;
const GDT_OFFSET = 0x130;
const GDTR_OFFSET = 0x150;
/** null, 32-bit code (0x08), flat data (0x10), 64-bit code (0x18). */
const GDT: readonly bigint[] = [0n, 0x00cf9a000000ffffn, 0x00cf92000000ffffn, 0x00af9a000000ffffn];
/** NUL-terminated strings at the offsets the code above refers to. */
const MESSAGES: ReadonlyArray<readonly [number, string]> = [
  [0x156, '@16\n'],
  [0x15b, '@32\n'],
  [0x160, '@64\n'],
  [0x165, '@FPU\n'],
  [0x16b, '@SSE\n'],
  [0x171, `${PROBE_MARKER}\n`],
  [0x182, `${PROBE_BAD_MARKER}\n`],
];

/** The 512-byte MBR boot sector of the probe guest (ends with the 0x55 0xAA signature). */
export function buildProbeBootSector(): Uint8Array {
  const sector = new Uint8Array(512);
  const code = Buffer.from(PROGRAM.join(''), 'hex');
  if (code.length > GDT_OFFSET) throw new HangarError('internal', 'accelerator probe code overlaps its GDT');
  sector.set(code, 0);
  const view = new DataView(sector.buffer);
  GDT.forEach((d, i) => view.setBigUint64(GDT_OFFSET + i * 8, d, true));
  view.setUint16(GDTR_OFFSET, GDT.length * 8 - 1, true);
  view.setUint32(GDTR_OFFSET + 2, LOAD_ADDRESS + GDT_OFFSET, true);
  let end = GDTR_OFFSET + 6;
  for (const [offset, text] of MESSAGES) {
    if (offset < end) throw new HangarError('internal', 'accelerator probe strings overlap');
    sector.set(Buffer.from(text, 'latin1'), offset);
    end = offset + text.length + 1; // + NUL (already zero)
  }
  if (end > 510) throw new HangarError('internal', 'accelerator probe does not fit in a boot sector');
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

// ---------------------------------------------------------------------------------------------
// Running one probe guest
// ---------------------------------------------------------------------------------------------

type Stage = '16' | '32' | '64' | 'FPU' | 'SSE';

/** Where the guest stopped, judged from the last stage it reported. */
function stageText(last: Stage | undefined): string {
  switch (last) {
    case undefined: return 'before the boot sector printed anything';
    case '16': return 'while switching from 16-bit real mode to 32-bit protected mode';
    case '32': return 'while switching from 32-bit protected mode to 64-bit long mode';
    case '64': return 'at its first x87 FPU instruction, after reaching 64-bit long mode';
    case 'FPU': return 'at its first SSE instruction, after x87 FPU code worked';
    case 'SSE': return 'just before finishing, after x87 and SSE code worked';
  }
}

export interface GuestRunResult {
  works: boolean;
  /** Short cause (failure) or summary (success), without the accelerator sentence around it. */
  detail: string;
  /** A result that would be the same next time (not a timeout or a spawn hiccup): safe to cache. */
  definitive: boolean;
  elapsedMs: number;
  serial: string;
}

/** QEMU's -drive/-qmp option syntax: commas in values are doubled. */
function optEscape(v: string): string {
  return v.replace(/,/g, ',,');
}

/** First meaningful stderr line from QEMU (skipping warnings). */
function qemuErrorLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const real = lines.find((l) => !/warning:/i.test(l) && !/terminating on signal/i.test(l)) ?? lines[0] ?? '';
  return real.replace(/^qemu-system-[\w-]+:\s*/, '');
}

/**
 * Minimal QMP poller: negotiates capabilities and asks query-status every `intervalMs`,
 * reporting each run state. Errors are swallowed: QMP is a second opinion next to
 * stdout/stderr/exit, never the only signal.
 */
class StatusPoller {
  private sock: Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly path: string, private readonly onStatus: (s: string) => void,
    private readonly intervalMs = 200) {}

  start(): void {
    this.tryConnect();
  }

  private tryConnect(): void {
    if (this.closed) return;
    const sock = createConnection(this.path);
    this.sock = sock;
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      sock.write('{"execute":"qmp_capabilities"}\n');
      const poll = (): void => {
        if (this.closed || sock.destroyed) return;
        sock.write('{"execute":"query-status"}\n');
        this.timer = setTimeout(poll, this.intervalMs);
      };
      poll();
    });
    sock.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        try {
          const msg = JSON.parse(line) as { return?: { status?: unknown } };
          if (typeof msg.return?.status === 'string') this.onStatus(msg.return.status);
        } catch {
          // not JSON: ignore
        }
      }
    });
    sock.on('error', () => {
      // Socket not there yet (ENOENT/ECONNREFUSED) or QEMU went away: retry until closed.
      if (this.timer) clearTimeout(this.timer);
      if (!this.closed) this.timer = setTimeout(() => this.tryConnect(), 50);
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.sock?.destroy();
  }
}

async function killAndWait(proc: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (proc.exitCode === null && proc.signalCode === null) {
    try {
      proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  await exited;
}

/**
 * Boots the probe guest under `accel` and reports whether it printed the marker in time.
 * Always kills QEMU and removes its temp dir before returning.
 */
export async function runProbeGuest(qemuPath: string, accel: Accel, timeoutMs: number,
  tmpRoot: string = tmpdir()): Promise<GuestRunResult> {
  const dir = await mkdtemp(join(tmpRoot, 'hangar-accel-'));
  const started = Date.now();
  let proc: ChildProcess | undefined;
  let poller: StatusPoller | undefined;
  let exited: Promise<unknown> = Promise.resolve();
  try {
    const image = join(dir, 'probe.img');
    const sock = join(dir, 'qmp.sock');
    await writeFile(image, buildProbeBootSector());
    const args = [
      '-accel', accel, '-machine', 'pc', '-m', '16',
      '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
      '-serial', 'stdio',
      '-drive', `file=${optEscape(image)},format=raw,if=ide`,
      '-qmp', `unix:${optEscape(sock)},server=on,wait=off`,
    ];

    return await new Promise<GuestRunResult>((resolve) => {
      let serial = '';
      let stderr = '';
      let last: Stage | undefined;
      let settled = false;
      const timer = setTimeout(() => {
        finish(false, `the probe guest did not finish within ${(timeoutMs / 1000).toFixed(1)} s and got stuck ${stageText(last)}`, false);
      }, timeoutMs);

      const finish = (works: boolean, detail: string, definitive: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ works, detail, definitive, elapsedMs: Date.now() - started, serial });
      };
      const stoppedWith = (state: string): void => {
        finish(false, `guest stopped with ${state} ${stageText(last)}`, true);
      };

      const p = spawn(qemuPath, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LC_ALL: 'C' },
      });
      proc = p;
      exited = new Promise((r) => {
        p.once('close', r);
        p.once('error', r);
      });
      p.once('error', (e) => finish(false, `could not start ${qemuPath}: ${e.message}`, false));
      p.stdout?.setEncoding('latin1').on('data', (d: string) => {
        serial += d;
        for (const m of serial.matchAll(/@(16|32|64|FPU|SSE)\n/g)) last = m[1] as Stage;
        if (serial.includes(PROBE_MARKER)) {
          finish(true, `the probe guest reached 64-bit mode and ran x87/SSE code in ${((Date.now() - started) / 1000).toFixed(1)} s`, true);
        } else if (serial.includes(PROBE_BAD_MARKER)) {
          finish(false, 'the probe guest ran but its x87/SSE arithmetic gave wrong results', true);
        }
      });
      p.stderr?.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
        if (/KVM internal error|emulation failure/i.test(stderr)) stoppedWith('internal-error');
      });
      p.once('exit', (code, signal) => {
        // Give stdout a moment to drain: the marker may arrive with the exit.
        setTimeout(() => {
          const why = qemuErrorLine(stderr);
          const how = code !== null ? `code ${code}` : `signal ${signal}`;
          finish(false, `QEMU exited (${how}) ${stageText(last)}${why ? `: ${why}` : ''}`, true);
        }, 50);
      });

      poller = new StatusPoller(sock, (status) => {
        if (status === 'internal-error' || status === 'guest-panicked' || status === 'shutdown' ||
            status === 'io-error') stoppedWith(status);
      });
      poller.start();
    });
  } finally {
    poller?.close();
    if (proc) await killAndWait(proc, exited);
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// probeAccelerators
// ---------------------------------------------------------------------------------------------

export function defaultCacheDir(env: Record<string, string | undefined> = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), 'hangar');
}

type KvmNode = 'absent' | 'no-access' | 'rw';

async function kvmNodeState(devRoot: string): Promise<KvmNode> {
  const node = join(devRoot, 'kvm');
  try {
    await stat(node);
  } catch {
    return 'absent';
  }
  try {
    await access(node, constants.R_OK | constants.W_OK);
    return 'rw';
  } catch {
    return 'no-access';
  }
}

const KVM_FALLBACK = 'Hangar will use TCG software emulation';

interface CacheFile {
  key: string;
  probe: AccelProbe;
}

function isProbe(v: unknown): v is AccelProbe {
  const p = v as AccelProbe | null;
  return !!p && typeof p === 'object' &&
    typeof p.kvm?.available === 'boolean' && typeof p.kvm.works === 'boolean' && typeof p.kvm.reason === 'string' &&
    typeof p.tcg?.works === 'boolean' && typeof p.tcg.reason === 'string' &&
    (p.best === 'kvm' || p.best === 'tcg') && typeof p.probedAt === 'string' && typeof p.qemuVersion === 'string';
}

async function readCache(file: string, key: string): Promise<AccelProbe | null> {
  try {
    const data = JSON.parse(await readFile(file, 'utf8')) as Partial<CacheFile>;
    return data.key === key && isProbe(data.probe) ? data.probe : null;
  } catch {
    return null;
  }
}

async function writeCache(dir: string, file: string, content: CacheFile): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(tmp, `${JSON.stringify(content, null, 2)}\n`);
    await rename(tmp, file);
  } catch {
    // The cache is an optimisation: an unwritable cache dir just means probing next time too.
  }
}

const inFlight = new Map<string, Promise<AccelProbe>>();

/**
 * Finds out which accelerators can really run guests on this host. Cached on disk (see the
 * file header); `force` re-probes. Throws 'host-missing' when QEMU itself is not installed.
 */
export async function probeAccelerators(opts: ProbeAcceleratorsOptions = {}): Promise<AccelProbe> {
  const info = await qemuInfo(opts.qemuPath);
  const devRoot = opts.devRoot ?? '/dev';
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const cacheFile = join(cacheDir, 'accel-probe.json');
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const kvmNode = await kvmNodeState(devRoot);
  const key = JSON.stringify({
    revision: PROBE_REVISION, qemu: info.path, version: info.versionText, kernel: release(), kvm: kvmNode,
  });

  if (!opts.force) {
    const cached = await readCache(cacheFile, key);
    if (cached) return cached;
  }
  const flightKey = `${cacheFile}\n${key}`;
  const pending = inFlight.get(flightKey);
  if (pending) return pending;

  const run = (async (): Promise<AccelProbe> => {
    const probedAt = new Date().toISOString();
    const [kvmRun, tcgRun] = await Promise.all([
      kvmNode === 'rw' ? runProbeGuest(info.path, 'kvm', timeoutMs, opts.tmpDir) : Promise.resolve(null),
      runProbeGuest(info.path, 'tcg', timeoutMs, opts.tmpDir),
    ]);

    let kvm: AccelProbe['kvm'];
    if (kvmNode === 'absent') {
      kvm = {
        available: false, works: false,
        reason: `no ${join(devRoot, 'kvm')}: hardware virtualization is off in the firmware settings or the kvm ` +
          `module is not loaded (modprobe kvm_intel or kvm_amd); ${KVM_FALLBACK}`,
      };
    } else if (kvmNode === 'no-access') {
      kvm = {
        available: false, works: false,
        reason: `${join(devRoot, 'kvm')} exists but this user cannot open it for reading and writing ` +
          `(add yourself to the kvm group: sudo usermod -aG kvm $USER, then log in again); ${KVM_FALLBACK}`,
      };
    } else if (kvmRun?.works) {
      kvm = { available: true, works: true, reason: `KVM runs guests: ${kvmRun.detail}` };
    } else {
      kvm = {
        available: true, works: false,
        reason: `KVM is present but cannot run guests here (${kvmRun?.detail ?? 'not probed'}); ${KVM_FALLBACK}`,
      };
    }
    const tcg: AccelProbe['tcg'] = tcgRun.works
      ? { works: true, reason: `TCG software emulation runs guests: ${tcgRun.detail}` }
      : {
        works: false,
        reason: `TCG software emulation cannot run guests here (${tcgRun.detail}); ` +
          'check the QEMU installation: apt-get install --reinstall qemu-system-x86',
      };

    const probe: AccelProbe = {
      kvm, tcg, best: kvm.works ? 'kvm' : 'tcg', probedAt, qemuVersion: formatQemuVersion(info.version),
    };
    // Only cache answers that would come out the same next time: a timeout under load or a
    // spawn hiccup must not pin a wrong verdict until the next kernel or QEMU upgrade.
    const definitive = tcgRun.works && (kvmRun === null || kvmRun.definitive);
    if (definitive) await writeCache(cacheDir, cacheFile, { key, probe });
    return probe;
  })();
  inFlight.set(flightKey, run);
  try {
    return await run;
  } finally {
    inFlight.delete(flightKey);
  }
}

// ---------------------------------------------------------------------------------------------
// resolveAccel
// ---------------------------------------------------------------------------------------------

/** The probe's KVM reason without the wrapper sentence and the "Hangar will use TCG" clause. */
function kvmCause(probe: AccelProbe): string {
  const cause = probe.kvm.reason.replace(/;\s*Hangar will use TCG software emulation\s*$/, '');
  const inner = /^KVM is present but cannot run guests here \((.*)\)$/.exec(cause);
  return inner?.[1] ?? cause;
}

/**
 * Turns a VM's requested accelerator into the one to use. 'auto' picks KVM when it works and
 * TCG otherwise (with a note saying why); an explicit 'kvm' that cannot work is an error with
 * the fix, never a silent downgrade.
 */
export function resolveAccel(requested: 'auto' | Accel, probe: AccelProbe): { accel: Accel; note?: string } {
  const tcgBroken = (): HangarError => new HangarError('qemu-failed',
    `QEMU cannot run guests on this host: ${probe.tcg.reason}`,
    'check the QEMU installation: apt-get install --reinstall qemu-system-x86');

  switch (requested) {
    case 'kvm':
      if (probe.kvm.works) return { accel: 'kvm' };
      throw new HangarError('host-missing',
        `KVM cannot run guests on this host: ${kvmCause(probe)}. Set the VM's accelerator to tcg or auto.`,
        "set the VM's accelerator to tcg or auto" +
          (probe.kvm.available ? '' : ' (or make KVM available: enable virtualization in the firmware, load kvm_intel/kvm_amd, join the kvm group)'),
        { kvm: probe.kvm });
    case 'tcg':
      if (probe.tcg.works) return { accel: 'tcg' };
      throw tcgBroken();
    case 'auto':
      if (probe.kvm.works) return { accel: 'kvm' };
      if (probe.tcg.works) return { accel: 'tcg', note: probe.kvm.reason };
      throw tcgBroken();
    default:
      throw new HangarError('invalid-input', `unknown accelerator "${String(requested)}"`, 'use auto, kvm or tcg');
  }
}
