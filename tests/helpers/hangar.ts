// Drives the real `hangar` CLI (and so the real core daemon and QEMU) against a private data dir.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
export const HANGAR_BIN = join(root, 'bin', 'hangar.mjs');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class HangarHarness {
  readonly home: string;
  /** Extra environment for every hangar process (CLI, daemon, serve), e.g. HANGAR_SYSFS_ROOT. */
  private readonly extraEnv: NodeJS.ProcessEnv;

  constructor(opts: { env?: NodeJS.ProcessEnv } = {}) {
    // Short path: QEMU's sockets live under it and unix sockets are limited to 107 bytes.
    this.home = mkdtempSync(join(tmpdir(), 'hgt-'));
    this.extraEnv = opts.env ?? {};
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, ...this.extraEnv, HANGAR_HOME: this.home, HANGAR_ENTRY: '' };
  }

  run(args: string[], opts: { input?: string; inputDelayMs?: number; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [HANGAR_BIN, ...args], { env: { ...this.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`hangar ${args.join(' ')} timed out; stdout: ${stdout} stderr: ${stderr}`));
      }, opts.timeoutMs ?? 90_000);
      child.on('exit', (code) => {
        clearTimeout(t);
        resolve({ code: code ?? -1, stdout, stderr });
      });
      if (opts.input !== undefined) {
        setTimeout(() => { child.stdin.end(opts.input); }, opts.inputDelayMs ?? 0);
      } else {
        child.stdin.end();
      }
    });
  }

  /** Runs a command that must succeed; returns stdout. */
  async ok(args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
    const r = await this.run(args, opts);
    if (r.code !== 0) throw new Error(`hangar ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  async json<T>(args: string[]): Promise<T> {
    return JSON.parse(await this.ok([...args, '--json'])) as T;
  }

  async state(name: string): Promise<string> {
    return (await this.json<{ state: string }>(['show', name])).state;
  }

  serialLog(id: string): string {
    try {
      return readFileSync(join(this.home, 'vms', id, 'logs', 'serial.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** Waits until the VM's serial log holds `text` at least `count` times. */
  async waitForSerial(id: string, text: string, count = 1, timeoutMs = 90_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.serialLog(id).split(text).length - 1 >= count) return;
      await sleep(200);
    }
    throw new Error(`"${text}" (x${count}) did not appear on the serial console within ${timeoutMs} ms; log tail:\n${this.serialLog(id).slice(-2000)}`);
  }

  async waitForState(name: string, state: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      last = await this.state(name);
      if (last === state) return;
      await sleep(250);
    }
    throw new Error(`VM ${name} did not become ${state} within ${timeoutMs} ms (last: ${last})`);
  }

  /** Types a command into the guest shell and returns what the console printed meanwhile. */
  async consoleCommand(name: string, command: string, graceSec = 3): Promise<string> {
    // The delay lets busybox's prompt finish its terminal query before input arrives.
    const r = await this.run(['console', name, '--no-replay', '--grace', String(graceSec)], { input: command + '\n', inputDelayMs: 700 });
    if (r.code !== 0) throw new Error(`console failed: ${r.stderr}`);
    return r.stdout;
  }

  /** Starts `hangar serve --port 0` (browser mode) and waits for the URL it prints. */
  serve(extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<ServeProcess> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [HANGAR_BIN, 'serve', '--port', '0', ...extraArgs],
        { env: { ...this.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`hangar serve printed no URL: ${out}`)); }, 30_000);
      const onData = (d: Buffer): void => {
        out += d.toString();
        const m = /Open: (http:\/\/\S+)/.exec(out);
        if (!m) return;
        clearTimeout(t);
        const url = new URL(m[1]!);
        resolve({
          url: m[1]!, origin: url.origin, port: Number(url.port), token: url.searchParams.get('token')!, output: () => out,
          stop: () => new Promise<void>((r) => {
            if (child.exitCode !== null) { r(); return; }
            child.once('exit', () => r());
            child.kill('SIGTERM');
          }),
        });
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('exit', (code) => { clearTimeout(t); reject(new Error(`hangar serve exited ${code}: ${out}`)); });
    });
  }

  async cleanup(): Promise<void> {
    const vms = await this.json<Array<{ name: string; state: string }>>(['list']).catch(() => []);
    for (const vm of vms) {
      if (!['stopped', 'crashed', 'broken'].includes(vm.state)) await this.run(['destroy', vm.name]).catch(() => {});
    }
    await this.run(['daemon', 'stop']).catch(() => {});
    await sleep(300);
    rmSync(this.home, { recursive: true, force: true });
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` every 200 ms until it returns a value other than undefined, and returns it; after
 * `ms`, fails naming `what` (and `detail()`, e.g. a log's tail, when given).
 */
export async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined> | T | undefined, detail?: () => string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${detail ? `; ${detail()}` : ''}`);
    await sleep(200);
  }
}

export interface ServeProcess {
  url: string;
  origin: string;
  port: number;
  token: string;
  output(): string;
  stop(): Promise<void>;
}

/** Whether a process exists (signal 0 delivers nothing, only checks). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Gone, or a zombie waiting for its parent (pid 1 here) to reap it: either way it runs nothing. */
export function exited(pid: number): boolean {
  if (!alive(pid)) return true;
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st[st.lastIndexOf(')') + 2] === 'Z';
  } catch {
    return true;
  }
}

/** Every live QEMU started with this -uuid, found in /proc (not from anything Hangar wrote). */
export function qemuPidsByUuid(uuid: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const args = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      const i = args.indexOf('-uuid');
      if (i >= 0 && args[i + 1] === uuid && /qemu-system/.test(args[0] ?? '')) pids.push(Number(name));
    } catch { /* gone */ }
  }
  return pids;
}
