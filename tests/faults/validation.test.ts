// One validation for every entry point (issue 20, "Already found" #6): each bad create/edit/device
// add is refused by the CLI with exit code 2 and its message, by the API (a client of the same
// daemon) with the same error, and leaves the data dir exactly as it was.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreApi, CreateVmRequest } from '../../core/common/api.ts';
import type { HangarError } from '../../core/common/errors.ts';
import { ensureTestGuest } from '../guest/guest.ts';
import { HangarHarness } from '../helpers/hangar.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
let api: CoreApi;
let closeApi: () => void;

/** Every path under the data dir with its size: "nothing left behind" is this, unchanged. */
function tree(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.name.endsWith('.sock') || e.name === 'logs' || e.name.startsWith('daemon')) continue;
    out.push(`${prefix}${e.name}${e.isFile() ? ` ${statSync(p).size}` : ''}`);
    if (e.isDirectory()) out.push(...tree(p, `${prefix}${e.name}/`));
  }
  return out.sort();
}

async function apiError(p: Promise<unknown>): Promise<HangarError> {
  try {
    await p;
  } catch (e) {
    return e as HangarError;
  }
  throw new Error('the API accepted it');
}

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
  await h.ok(['create', '--name', 'base', '--memory', '128', '--accel', 'tcg', '--kernel', guest.kernel, '--initrd', guest.initrd]);
  process.env.HANGAR_HOME = h.home;
  const { connectCore } = await import('../../core/node/rpc/client.ts');
  const conn = await connectCore({ autostart: false });
  api = conn.api;
  closeApi = () => conn.close();
});

after(async () => {
  closeApi?.();
  await h?.cleanup();
});

describe('one validation: CLI exit 2, the same API error, nothing left behind', () => {
  const text = (): string => { const p = join(h.home, 'notes.txt'); writeFileSync(p, 'not a disk\n'.repeat(100)); return p; };
  const qcow = (): string => { const p = join(h.home, 'real.qcow2'); execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', p, '16M']); return p; };
  const cases: Array<{ what: string; cli: () => string[]; req: () => CreateVmRequest; re: RegExp }> = [
    { what: '--disk /etc/shadow', cli: () => ['--disk', '/etc/shadow'], req: () => ({ definition: { name: 'v', disks: [{ id: 'disk0', file: '/etc/shadow' }] } }), re: /\/etc\/shadow (does not look like a disk image|is a text file|is not)/ },
    { what: 'a text file as a disk', cli: () => ['--disk', text()], req: () => ({ definition: { name: 'v', disks: [{ id: 'disk0', file: text() }] } }), re: /notes\.txt (does not look like|is a text file)/ },
    { what: 'a format that contradicts qemu-img', cli: () => ['--disk', `${qcow()},format=raw`], req: () => ({ definition: { name: 'v', disks: [{ id: 'disk0', file: qcow(), format: 'raw' }] } }), re: /is a qcow2 image \(qemu-img info\), not raw/ },
    { what: 'a character device as a disk', cli: () => ['--disk', '/dev/null'], req: () => ({ definition: { name: 'v', disks: [{ id: 'disk0', file: '/dev/null' }] } }), re: /\/dev\/null is a character device/ },
    { what: 'a text file as a CD-ROM', cli: () => ['--cdrom', text()], req: () => ({ definition: { name: 'v', cdroms: [{ id: 'cd0', file: text() }] } }), re: /is not an ISO/ },
    { what: 'a missing kernel', cli: () => ['--kernel', '/nonexistent/vmlinuz'], req: () => ({ definition: { name: 'v', boot: { kernel: { kernel: '/nonexistent/vmlinuz' } } } }), re: /kernel: \/nonexistent\/vmlinuz does not exist/ },
    { what: 'a text file as a kernel', cli: () => ['--kernel', text()], req: () => ({ definition: { name: 'v', boot: { kernel: { kernel: text() } } } }), re: /not a Linux kernel image \(no bzImage "HdrS"/ },
    { what: 'a 900 TiB sparse disk', cli: () => ['--new-disk', '900T'], req: () => ({ definition: { name: 'v' }, newDisks: [{ sizeBytes: 900 * 1024 ** 4 }] }), re: /900\.0 TiB does not fit the .* free .*/ },
    { what: 'more vCPUs than the host has', cli: () => ['--vcpus', '64'], req: () => ({ definition: { name: 'v', cpu: { vcpus: 64 } } }), re: /64 vCPUs are more than this host's \d+ CPUs/ },
    { what: 'more memory than the host has', cli: () => ['--memory', String(4 * 1024 * 1024)], req: () => ({ definition: { name: 'v', memoryMiB: 4 * 1024 * 1024 } }), re: /MiB of memory is more than this host has/ },
    { what: 'a name with a newline', cli: () => ['--name', 'a\nb'], req: () => ({ definition: { name: 'a\nb' } }), re: /control characters/ },
    { what: 'a name taken (case-insensitive)', cli: () => ['--name', 'BASE'], req: () => ({ definition: { name: 'BASE' } }), re: /a VM named "BASE" already exists/ },
  ];
  for (const c of cases) {
    test(c.what, async () => {
      const before = tree(h.home);
      const r = await h.run(['create', '--name', 'v', '--memory', '128', ...c.cli()]);
      assert.equal(r.code, 2, `exit code 2; stderr: ${r.stderr}`);
      assert.match(r.stderr, c.re);
      assert.match(r.stderr, /fix: /, 'the fix is named');
      const e = await apiError(api.create(c.req()));
      assert.match(e.message, c.re, 'the API refuses with the same error');
      assert.ok(e.code === 'invalid-input' || e.code === 'already-exists', e.code);
      const p = await apiError(api.previewCreate(c.req()));
      assert.equal(p.message, e.message, 'the wizard\'s preview runs the same check');
      assert.deepEqual(tree(h.home).filter((x) => !/^(notes\.txt|real\.qcow2)/.test(x)), before.filter((x) => !/^(notes\.txt|real\.qcow2)/.test(x)), 'nothing left behind');
      assert.equal((await api.list()).length, 1);
    });
  }

  test('--allow-overcommit (allowOvercommit) lets a sparse disk larger than the free space through', async () => {
    const r = await h.run(['create', '--name', 'big', '--memory', '128', '--new-disk', '900T', '--allow-overcommit']);
    assert.equal(r.code, 0, r.stderr);
    await h.ok(['delete', 'big', '--delete-disks']);
  });

  test('device add and edit run the same checks; a disk another VM writes is refused', async () => {
    const before = tree(h.home);
    let r = await h.run(['device', 'add', 'base', 'cdrom', text()]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /is not an ISO/);
    r = await h.run(['device', 'add', 'base', 'disk', 'size=900T']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /does not fit/);
    const e = await apiError(api.addDevice('base', 'disk', {}, { newDiskBytes: 900 * 1024 ** 4 }));
    assert.match(e.message, /does not fit/);
    const shared = qcow();
    await h.ok(['create', '--name', 'writer', '--memory', '128', '--disk', shared]);
    r = await h.run(['device', 'add', 'base', 'disk', shared]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /already used read-write by VM "writer"/);
    r = await h.run(['create', '--name', 'second', '--memory', '128', '--disk', shared]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /already used read-write by VM "writer"/);
    r = await h.run(['edit', 'base', '--vcpus', '64']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /64 vCPUs are more than/);
    await h.ok(['delete', 'writer']);
    assert.deepEqual(tree(h.home).filter((x) => !/^(notes\.txt|real\.qcow2)/.test(x)), before.filter((x) => !/^(notes\.txt|real\.qcow2)/.test(x)));
  });
});
