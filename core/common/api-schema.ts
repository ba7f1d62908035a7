// Argument schemas for every CoreApi method: each request is checked here, at the core boundary,
// whatever transport it came by (unix socket, MessagePort, WebSocket). Definitions themselves
// are validated deeper (parseDefinition / checkDefinition); this layer rejects wrong shapes.
import { z } from 'zod';
import { shutdownModes } from './guest-agent.ts';
import type { CoreApi } from './api.ts';
import { deviceKinds } from './api.ts';
import { HangarError } from './errors.ts';
import { cpuSetSchema, diskBuses, macSchema, PCI_ADDRESS_RE } from './model.ts';
import { SNAPSHOT_NAME_MAX, snapshotKinds } from './snapshots.ts';
import { STATS_MAX_RANGE_SECONDS } from './stats.ts';

const ref = z.string().min(1, 'a VM name or id is required').max(256, 'a VM name or id is at most 256 characters');
const requestId = z.string().min(1, 'a request id is required').max(64, 'a request id is at most 64 characters');
const deviceId = z.string().min(1, 'a device id is required').max(64, 'a device id is at most 64 characters');
const pciAddress = z.string().regex(PCI_ADDRESS_RE, 'a PCI address looks like 0000:03:00.0');
const mdevType = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'an mdev type is its directory name, e.g. nvidia-222');
const mdevUuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'an mdev UUID is lower-case 8-4-4-4-12 hex');
const migrationToken = z.string().regex(/^[0-9a-f]{64}$/, 'a migration token is 64 hex digits');
const plainObject = z.record(z.string(), z.unknown());
// The name's rules are checked by the core (checkSnapshotName) with their fix; here only its shape.
const snapshotName = z.string().min(1, 'a snapshot name is required').max(SNAPSHOT_NAME_MAX, `a snapshot name is at most ${SNAPSHOT_NAME_MAX} characters`);

const none = z.tuple([]);
const refOnly = z.tuple([ref]);

const createRequest = z.strictObject({
  definition: plainObject,
  newDisks: z.array(z.strictObject({
    sizeBytes: z.number().int().positive().max(2 ** 53 - 1),
    bus: z.enum(diskBuses).optional(),
    format: z.enum(['qcow2', 'raw']).optional(),
  })).max(64).optional(),
  importDisks: z.array(z.strictObject({
    source: z.string().min(1, 'an imported disk needs a source path').max(4096),
    mode: z.enum(['in-place', 'copy', 'convert']),
    format: z.enum(['qcow2', 'raw']).optional(),
    bus: z.enum(diskBuses).optional(),
  })).max(64).optional(),
  requestId: requestId.optional(),
  cloudInit: z.strictObject({
    user: z.string().max(64).optional(),
    password: z.string().max(1024).optional(),
    hostname: z.string().max(253).optional(),
    sshKeys: z.array(z.string().max(16_384)).max(32).optional(),
  }).optional(),
  allowOvercommit: z.boolean().optional(),
});

export const apiArgSchemas = {
  list: none,
  get: refOnly,
  create: z.tuple([createRequest]),
  previewCreate: z.tuple([createRequest]),
  hostInfo: none,
  osList: none,
  inspectPath: z.tuple([z.string().min(1, 'a path is required').max(4096, 'a path is at most 4096 characters'), z.enum(['iso', 'disk', 'file', 'directory'])]),
  listDir: z.union([z.tuple([z.string().min(1, 'a path is required').max(4096)]), z.tuple([z.string().min(1, 'a path is required').max(4096), z.strictObject({ showHidden: z.boolean().optional() }).optional()])]),
  cancelCreate: z.tuple([requestId]),
  edit: z.union([z.tuple([ref, plainObject]), z.tuple([ref, plainObject, z.strictObject({ allowOvercommit: z.boolean().optional() }).optional()])]),
  resizeDisk: z.tuple([ref, z.string().min(1, 'a disk id is required').max(64), z.number().int().positive().max(2 ** 53 - 1)]),
  addDevice: z.union([
    z.tuple([ref, z.enum(deviceKinds), plainObject]),
    z.tuple([ref, z.enum(deviceKinds), plainObject, z.strictObject({
      newDiskBytes: z.number().int().positive().max(2 ** 53 - 1).optional(),
      newDiskFormat: z.enum(['qcow2', 'raw']).optional(),
      allowOvercommit: z.boolean().optional(),
    }).optional()]),
  ]),
  editDevice: z.tuple([ref, z.enum(deviceKinds), deviceId, plainObject]),
  removeDevice: z.union([
    z.tuple([ref, z.enum(deviceKinds), deviceId]),
    z.tuple([ref, z.enum(deviceKinds), deviceId, z.strictObject({
      timeoutSec: z.number().int().positive().max(3600).optional(),
      deleteFile: z.boolean().optional(),
    }).optional()]),
  ]),
  setBalloon: z.tuple([ref, z.number().int().min(16).max(4 * 1024 * 1024)]),
  start: z.tuple([ref, z.strictObject({ discardSaved: z.boolean().optional() }).optional()]),
  save: refOnly,
  shutdown: z.union([refOnly, z.tuple([ref, z.strictObject({
    timeoutSec: z.number().int().positive().max(86_400).optional(),
    wait: z.boolean().optional(),
  }).optional()])]),
  agentInfo: z.union([refOnly, z.tuple([ref, z.strictObject({ timeoutMs: z.number().int().positive().max(60_000).optional() }).optional()])]),
  agentPing: refOnly,
  setShutdownMode: z.tuple([ref, z.enum(shutdownModes)]),
  agentExec: z.union([
    z.tuple([ref, z.array(z.string().max(65_536)).min(1, 'give the command to run in the guest').max(4096)]),
    z.tuple([ref, z.array(z.string().max(65_536)).min(1, 'give the command to run in the guest').max(4096), z.strictObject({
      timeoutMs: z.number().int().positive().max(24 * 3600_000).optional(),
      input: z.string().max(16 * 1024 * 1024).optional(),
    }).optional()]),
  ]),
  destroy: refOnly,
  reboot: refOnly,
  reset: refOnly,
  pause: refOnly,
  resume: refOnly,
  delete: z.union([refOnly, z.tuple([ref, z.strictObject({ deleteDisks: z.boolean().optional() }).optional()])]),
  commandLine: refOnly,
  screenshot: refOnly,
  sendKeys: z.tuple([ref, z.array(z.string().regex(/^[a-z0-9_]{1,20}$/, 'a QEMU key name (qcode) such as ctrl, alt, delete, f1')).min(1).max(8)]),
  serialLog: z.union([refOnly, z.tuple([ref, z.number().int().positive().max(256 * 1024 * 1024).optional()])]),
  serialLogRead: z.union([refOnly, z.tuple([ref, z.strictObject({
    cursor: z.strictObject({ ino: z.number().int().min(0), born: z.number().min(0).optional(), offset: z.number().int().min(0) }).optional(),
    tailLines: z.number().int().min(0).max(100_000_000).optional(),
    maxBytes: z.number().int().positive().max(1024 * 1024).optional(),
  }).optional()])]),
  doctor: none,
  hostDevices: none,
  bindVfio: z.tuple([pciAddress]),
  releaseVfio: z.tuple([pciAddress]),
  setSriovVfs: z.tuple([pciAddress, z.number().int().min(0).max(65535)]),
  setVfConfig: z.tuple([pciAddress, z.number().int().min(0).max(65535), z.strictObject({
    mac: macSchema.optional(),
    vlan: z.number().int().min(0).max(4095).optional(),
  })]),
  createMdev: z.union([z.tuple([pciAddress, mdevType]), z.tuple([pciAddress, mdevType, mdevUuid])]),
  removeMdev: z.tuple([mdevUuid]),
  setAutostart: z.tuple([ref, z.boolean()]),
  setVcpus: z.tuple([ref, z.number().int().min(1, 'a VM needs at least 1 vCPU').max(288)]),
  setCpuPinning: z.tuple([ref, z.strictObject({ vcpus: z.array(cpuSetSchema.nullable()).max(288).optional(), emulator: cpuSetSchema.optional(), iothreads: cpuSetSchema.optional() }).nullable()]),
  resizeMemory: z.tuple([ref, z.number().int().min(16, 'a VM needs at least 16 MiB').max(4 * 1024 * 1024)]),
  hostCpuMemory: none,
  cpuModels: z.union([none, z.tuple([z.enum(['kvm', 'tcg'])])]),
  setKsm: z.tuple([z.boolean()]),
  setHugepages: z.tuple([z.enum(['2M', '1G']), z.number().int().min(0).max(10_000_000)]),
  clone: z.tuple([ref, z.strictObject({
    name: z.string().min(1, 'the clone needs a name').max(256),
    description: z.string().max(4096).optional(),
    linked: z.boolean().optional(),
    unowned: z.enum(['copy', 'share']).optional(),
    copyTpm: z.boolean().optional(),
    requestId: requestId.optional(),
  })]),
  listSnapshots: refOnly,
  createSnapshot: z.tuple([ref, z.strictObject({
    name: snapshotName,
    description: z.string().max(4096, 'a snapshot description is at most 4096 characters').optional(),
    kind: z.enum(snapshotKinds).optional(),
    memory: z.boolean().optional(),
  })]),
  revertSnapshot: z.tuple([ref, snapshotName]),
  deleteSnapshot: z.tuple([ref, snapshotName]),
  snapshotScreenshot: z.tuple([ref, snapshotName]),
  statsHistory: z.union([refOnly, z.tuple([ref, z.number().int().positive().max(STATS_MAX_RANGE_SECONDS, `a history range is at most ${STATS_MAX_RANGE_SECONDS} seconds (a day)`).optional()])]),
  statsLatest: none,
  watchStats: z.tuple([z.array(ref).max(1024).nullable()]),
  statsMetrics: none,
  hostSummary: none,
  daemonStatus: none,
  daemonStop: none,
  capabilities: none,
  connections: none,
  addConnection: z.tuple([z.string().max(64), z.string().max(2048)]),
  removeConnection: z.tuple([z.string().max(64)]),
  migrate: z.tuple([ref, z.strictObject({
    to: z.string().min(1, 'a destination connection is required').max(4096),
    copyStorage: z.boolean().optional(),
    maxBandwidthMiBs: z.number().positive().max(1024 * 1024).optional(),
    downtimeLimitMs: z.number().int().min(1).max(600_000).optional(),
  })]),
  cancelMigration: refOnly,
  prepareIncomingMigration: z.tuple([z.strictObject({
    definition: plainObject,
    copyStorage: z.boolean(),
    disks: z.array(z.strictObject({ id: deviceId, virtualSizeBytes: z.number().int().positive().max(2 ** 53 - 1), format: z.enum(['qcow2', 'raw']) })).max(64).optional(),
    uefiVarsBase64: z.string().max(16 * 1024 * 1024).optional(),
    from: z.string().max(4096).optional(),
  })]),
  finishIncomingMigration: z.tuple([ref, migrationToken, z.strictObject({ resume: z.boolean() })]),
  abortIncomingMigration: z.tuple([ref, migrationToken, z.string().max(4096)]),
} satisfies Record<keyof CoreApi, z.ZodType>;

/**
 * Throws invalid-input naming the method and the first problem when args do not fit; returns
 * the args without absent trailing ones (what the method is then called with).
 */
export function checkApiArgs(method: string, args: unknown[]): unknown[] {
  const schema = Object.hasOwn(apiArgSchemas, method) ? (apiArgSchemas as Record<string, z.ZodType>)[method] : undefined;
  if (!schema) throw new HangarError('invalid-input', `unknown core method "${method}"`, 'update the client: it does not match this core');
  // Optional trailing arguments arrive as undefined, null (JSON turns undefined in an array into null) or not at all.
  // A null the schema takes (setCpuPinning(ref, null): no pinning) is kept; otherwise it is an absent option.
  let kept = args;
  while (kept.length > 0 && kept[kept.length - 1] === undefined) kept = kept.slice(0, -1);
  if (kept.length && kept[kept.length - 1] === null && schema.safeParse(kept).success) return kept;
  let trimmed = kept;
  while (trimmed.length > 0 && (trimmed[trimmed.length - 1] === undefined || trimmed[trimmed.length - 1] === null)) trimmed = trimmed.slice(0, -1);
  const r = schema.safeParse(trimmed);
  if (r.success) return trimmed;
  const issue = r.error.issues[0]!;
  const where = issue.path.length ? ` (argument ${issue.path.join('.')})` : '';
  throw new HangarError('invalid-input', `bad request to ${method}${where}: ${issue.message}`,
    'this is a client bug or a mismatched version: update Hangar', { method, issues: r.error.issues.slice(0, 5) });
}
