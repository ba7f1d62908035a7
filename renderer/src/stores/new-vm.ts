// The New VM wizard's state: the choices (core/common/new-vm.ts), what the host offers, live
// checks of every path field (asked of the core as the user types, latest answer wins), the
// preview the summary shows, and the create itself with progress and Cancel.
//
// Plain .ts so tests drive it in Node with a fake core.
import { defineStore } from 'pinia';
import { computed, reactive, ref, shallowRef, watch } from 'vue';
import type { CpuModelList, CreatePreview, HostInfo, InspectExpect, PathInspection, VmInfo } from '../../../core/common/api.ts';
import {
  applyPreset, buildCreateRequest, checkCloudInit, checkDiskSize, checkMemory, checkName, checkVcpus, createCommand,
  defaultChoices, parsePortForwards,
} from '../../../core/common/new-vm.ts';
import type { FieldCheck, NewVmChoices } from '../../../core/common/new-vm.ts';
import { cpuModelFor, presetFor } from '../../../core/common/os-presets.ts';
import type { OsListEntry } from '../../../core/common/os-types.ts';
import { toUiError } from '../util/ui-error.ts';
import type { UiError } from '../util/ui-error.ts';
import { useConnectionStore } from './connection.ts';
import { useVmsStore } from './vms.ts';

export const wizardSteps = ['source', 'os', 'firmware', 'resources', 'storage', 'network', 'setup', 'summary'] as const;
export type WizardStep = (typeof wizardSteps)[number];
export const stepLabels: Record<WizardStep, string> = {
  source: 'Source', os: 'Operating system', firmware: 'Firmware', resources: 'Memory and CPUs', storage: 'Storage',
  network: 'Network', setup: 'Unattended set-up', summary: 'Summary',
};

/** The path fields the core checks. */
export type PathField = 'isoPath' | 'importPath' | 'kernelPath' | 'initrdPath' | 'tftpDir' | 'existingDiskPath';
const expectOf: Record<PathField, InspectExpect> = {
  isoPath: 'iso', importPath: 'disk', kernelPath: 'file', initrdPath: 'file', tftpDir: 'directory', existingDiskPath: 'disk',
};

export interface PathCheck {
  state: 'idle' | 'checking' | 'ok' | 'error';
  /** The path this answer is about. */
  path: string;
  info?: PathInspection;
  error?: UiError;
}

export interface CreateProgress { step: string; fraction: number }

export const INSPECT_DEBOUNCE_MS = 200;

export const useNewVmStore = defineStore('newVm', () => {
  const conn = useConnectionStore();
  const vms = useVmsStore();

  const choices = reactive<NewVmChoices>(defaultChoices());
  const step = ref<WizardStep>('source');
  const host = shallowRef<HostInfo | null>(null);
  const hostError = shallowRef<UiError | null>(null);
  const oses = shallowRef<readonly OsListEntry[] | null>(null);
  const checks = reactive<Record<PathField, PathCheck>>({
    isoPath: { state: 'idle', path: '' }, importPath: { state: 'idle', path: '' }, kernelPath: { state: 'idle', path: '' },
    initrdPath: { state: 'idle', path: '' }, tftpDir: { state: 'idle', path: '' }, existingDiskPath: { state: 'idle', path: '' },
  });
  /** The user picked the OS by hand: a later ISO detection does not override it. */
  const osChosenByHand = ref(false);
  /** The user typed a name: the OS no longer suggests one. */
  const nameTouched = ref(false);
  /** A disk larger than the free space was confirmed. */
  const bigDiskConfirmed = ref(false);
  /** More vCPUs than the host has CPUs was confirmed. */
  const vcpusConfirmed = ref(false);
  /** QEMU's CPU models for the accelerator VMs get here (the core answers which). */
  const cpuModels = shallowRef<CpuModelList | null>(null);
  const cpuModelsError = shallowRef<UiError | null>(null);
  /** The user picked the CPU model: the OS no longer chooses it. */
  const cpuModelByHand = ref(false);
  const preview = shallowRef<CreatePreview | null>(null);
  const previewError = shallowRef<UiError | null>(null);
  const previewing = ref(false);
  const creating = ref(false);
  const progress = shallowRef<CreateProgress | null>(null);
  const createError = shallowRef<UiError | null>(null);
  const cancelled = ref(false);
  let requestId: string | null = null;
  const timers = new Map<PathField, ReturnType<typeof setTimeout>>();
  const seq = new Map<PathField, number>();

  /** The model the OS and the accelerator call for (host under KVM, max under TCG, qemu64 for old OSes). */
  const recommendedCpuModel = computed(() => (cpuModels.value ? cpuModelFor({ plainCpu: choices.plainCpu }, cpuModels.value.accel) : ''));
  watch(recommendedCpuModel, (m) => {
    if (!cpuModelByHand.value) choices.cpuModel = m;
  });

  async function loadCpuModels(): Promise<void> {
    if (cpuModels.value) return;
    try {
      cpuModels.value = await conn.api.cpuModels();
      cpuModelsError.value = null;
    } catch (e) {
      cpuModelsError.value = toUiError(e);
    }
  }

  function chooseCpuModel(model: string): void {
    cpuModelByHand.value = true;
    choices.cpuModel = model;
  }

  async function loadHost(): Promise<void> {
    void loadCpuModels();
    try {
      host.value = await conn.api.hostInfo();
      hostError.value = null;
    } catch (e) {
      hostError.value = toUiError(e);
    }
  }

  async function loadOses(): Promise<void> {
    if (oses.value) return;
    try {
      oses.value = await conn.api.osList();
    } catch (e) {
      hostError.value = toUiError(e);
    }
  }

  /** Asks the core about a path field (debounced); the newest answer wins. */
  function checkPath(field: PathField, immediate = false): Promise<void> {
    clearTimeout(timers.get(field));
    const path = choices[field].trim();
    if (!path) {
      checks[field] = { state: 'idle', path: '' };
      return Promise.resolve();
    }
    checks[field] = { state: 'checking', path };
    const n = (seq.get(field) ?? 0) + 1;
    seq.set(field, n);
    return new Promise((resolve) => {
      const run = async (): Promise<void> => {
        try {
          const info = await conn.api.inspectPath(path, expectOf[field]);
          if (seq.get(field) !== n) return;
          checks[field] = { state: 'ok', path, info };
          if (field === 'isoPath') onIsoDetected(info);
          if (field === 'importPath' && info.disk?.format && info.disk.format !== 'qcow2' && choices.importMode === 'in-place' && info.disk.format !== 'raw') {
            // vmdk/vdi/vhdx run slower and lack snapshots: offer conversion by default.
            choices.importMode = 'convert';
          }
        } catch (e) {
          if (seq.get(field) === n) checks[field] = { state: 'error', path, error: toUiError(e) };
        } finally {
          resolve();
        }
      };
      if (immediate) void run();
      else timers.set(field, setTimeout(() => { void run(); }, INSPECT_DEBOUNCE_MS));
    });
  }

  function onIsoDetected(info: PathInspection): void {
    if (!info.iso || osChosenByHand.value) return;
    applyPreset(choices, info.iso.preset);
    suggestName(info.iso.detection.os?.id ?? '');
  }

  /** Picks an OS from the list: its defaults replace memory, CPUs, disk, firmware, TPM and buses. */
  function chooseOs(os: OsListEntry): void {
    osChosenByHand.value = true;
    applyPreset(choices, presetFor({ ...os, media: [] }));
    suggestName(os.id);
  }

  function suggestName(base: string): void {
    if (nameTouched.value || !base || base.startsWith('generic') || base === 'other') return;
    const taken = new Set(vms.list.map((v) => v.name.toLowerCase()));
    let name = base;
    for (let n = 2; taken.has(name.toLowerCase()); n++) name = `${base}-${n}`;
    choices.name = name;
  }

  const detectedIso = computed(() => (checks.isoPath.state === 'ok' ? checks.isoPath.info?.iso : undefined));

  const nameCheck = computed<FieldCheck>(() => checkName(choices.name, vms.list.map((v) => v.name)));
  const memoryCheck = computed<FieldCheck>(() => (host.value ? checkMemory(choices.memoryMiB, host.value.memoryBytes) : {}));
  const vcpuCheck = computed<FieldCheck>(() => (host.value ? checkVcpus(choices.vcpus, host.value.cpus) : {}));
  const diskCheck = computed<FieldCheck>(() => (host.value && choices.storage === 'new' && choices.source !== 'import' ? checkDiskSize(choices.diskGiB, host.value.freeBytes) : {}));
  const forwardsCheck = computed(() => parsePortForwards(choices.portForwards));
  const cloudInitErrors = computed(() => checkCloudInit(choices.cloudInit));

  const pathOk = (f: PathField): boolean => checks[f].state === 'ok' && checks[f].path === choices[f].trim();

  /** Why the user cannot leave a step yet (null = may go on). */
  function blocker(s: WizardStep): string | null {
    const c = choices;
    switch (s) {
      case 'source':
        if (c.source === 'iso' && !pathOk('isoPath')) return 'choose a readable ISO image';
        if (c.source === 'import' && !pathOk('importPath')) return 'choose a disk image';
        if (c.source === 'kernel') {
          if (!pathOk('kernelPath')) return 'choose a kernel file';
          if (c.initrdPath.trim() && !pathOk('initrdPath')) return 'fix the initrd path or clear it';
        }
        if (c.source === 'network' && c.tftpDir.trim() && !pathOk('tftpDir')) return 'fix the TFTP folder or clear it';
        if (c.source === 'network' && host.value && !host.value.pxe.available) return host.value.pxe.reason ?? 'network boot is not available';
        return null;
      case 'os': return c.osId ? null : 'choose an operating system';
      case 'firmware': {
        const fw = host.value?.firmware[c.firmware];
        if (fw && !fw.available) return fw.reason ?? 'this firmware is not available';
        if (c.tpm && host.value && !host.value.tpm.available) return host.value.tpm.reason ?? 'a TPM is not available';
        return null;
      }
      case 'resources':
        if (cpuModelByHand.value && choices.cpuModel === 'host' && cpuModels.value?.accel === 'tcg') return 'choose another CPU model: host needs KVM';
        return memoryCheck.value.error ?? vcpuCheck.value.error
          ?? (vcpuCheck.value.confirm && !vcpusConfirmed.value ? 'confirm the vCPUs (more than the host has CPUs)' : null);
      case 'storage':
        if (c.source === 'import') return null;
        if (c.storage === 'new') {
          if (diskCheck.value.error) return diskCheck.value.error;
          if (diskCheck.value.confirm && !bigDiskConfirmed.value) return 'confirm the disk size (larger than the free space)';
        }
        if (c.storage === 'existing' && !pathOk('existingDiskPath')) return 'choose a disk image';
        return null;
      case 'network':
        if (c.network === 'passt' && host.value && !host.value.network.passt.available) return host.value.network.passt.reason ?? 'passt is not available';
        if (c.network === 'bridge') {
          if (host.value && !host.value.network.bridge.available) return host.value.network.bridge.reason ?? 'bridged networking is not available';
          if (!c.bridge) return 'choose a host bridge';
          return null;
        }
        return forwardsCheck.value.error ?? null;
      case 'setup': {
        const e = cloudInitErrors.value;
        return e.user ?? e.password ?? e.hostname ?? e.sshKey ?? e.all ?? null;
      }
      case 'summary': return nameCheck.value.error ?? null;
    }
  }

  const stepIndex = computed(() => wizardSteps.indexOf(step.value));
  /** The first step (up to and including `s`) that blocks. */
  function firstBlocked(upTo: WizardStep): WizardStep | null {
    for (const s of wizardSteps) {
      if (blocker(s)) return s;
      if (s === upTo) return null;
    }
    return null;
  }

  function go(s: WizardStep): boolean {
    const i = wizardSteps.indexOf(s);
    // Going back is always allowed; forward only past steps that do not block.
    if (i > stepIndex.value) {
      const blocked = firstBlocked(wizardSteps[i - 1]!);
      if (blocked) {
        step.value = blocked;
        return false;
      }
    }
    step.value = s;
    if (s === 'summary') void loadPreview();
    if (s === 'os') void loadOses();
    return true;
  }

  function next(): boolean {
    const i = stepIndex.value;
    return i < wizardSteps.length - 1 ? go(wizardSteps[i + 1]!) : false;
  }

  function back(): void {
    const i = stepIndex.value;
    if (i > 0) step.value = wizardSteps[i - 1]!;
  }

  async function loadPreview(): Promise<void> {
    previewing.value = true;
    try {
      preview.value = await conn.api.previewCreate(buildCreateRequest(choices, undefined, overcommitConfirmed()));
      previewError.value = null;
    } catch (e) {
      preview.value = null;
      previewError.value = toUiError(e);
    } finally {
      previewing.value = false;
    }
  }

  const command = computed(() => createCommand(choices, overcommitConfirmed()));

  /** What the user confirmed after the wizard asked, sent as the core's allowOvercommit. */
  function overcommitConfirmed(): boolean {
    return (bigDiskConfirmed.value && !!diskCheck.value.confirm) || (vcpusConfirmed.value && !!vcpuCheck.value.confirm);
  }

  /** Creates the VM (with progress events for copies), optionally starts it. Null on failure or cancel. */
  async function create(startNow: boolean): Promise<VmInfo | null> {
    if (creating.value) return null;
    const blocked = firstBlocked('summary');
    if (blocked) {
      step.value = blocked;
      return null;
    }
    creating.value = true;
    createError.value = null;
    cancelled.value = false;
    progress.value = null;
    const id = `wizard-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    requestId = id;
    const off = conn.onEvent('createProgress', (e) => {
      if (e.requestId === id) progress.value = { step: e.step, fraction: e.fraction };
    });
    try {
      const info = await conn.api.create(buildCreateRequest(choices, id, overcommitConfirmed()));
      void vms.refreshList();
      if (startNow) {
        try {
          await conn.api.start(info.name);
        } catch (e) {
          // The VM exists; the start failure shows on its page.
          vms.lastError = toUiError(e);
        }
      }
      return info;
    } catch (e) {
      const err = toUiError(e);
      if (err.code === 'cancelled') cancelled.value = true;
      else createError.value = err;
      return null;
    } finally {
      off();
      requestId = null;
      creating.value = false;
      progress.value = null;
    }
  }

  async function cancel(): Promise<void> {
    if (requestId) await conn.api.cancelCreate(requestId).catch(() => false);
  }

  function reset(): void {
    Object.assign(choices, defaultChoices());
    for (const f of Object.keys(checks) as PathField[]) checks[f] = { state: 'idle', path: '' };
    step.value = 'source';
    osChosenByHand.value = false;
    nameTouched.value = false;
    bigDiskConfirmed.value = false;
    vcpusConfirmed.value = false;
    cpuModelByHand.value = false;
    choices.cpuModel = recommendedCpuModel.value;
    preview.value = null;
    previewError.value = null;
    createError.value = null;
    cancelled.value = false;
  }

  return {
    choices, step, host, hostError, oses, checks, osChosenByHand, cpuModels, cpuModelsError, cpuModelByHand, recommendedCpuModel, nameTouched, bigDiskConfirmed, vcpusConfirmed, preview, previewError, previewing,
    creating, progress, createError, cancelled, detectedIso, nameCheck, memoryCheck, vcpuCheck, diskCheck, forwardsCheck,
    cloudInitErrors, stepIndex, command,
    loadHost, loadOses, loadCpuModels, chooseCpuModel, checkPath, chooseOs, blocker, firstBlocked, go, next, back, loadPreview, create, cancel, reset, pathOk,
  };
});
