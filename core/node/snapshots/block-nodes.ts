// Where a running QEMU's disks are in its block graph: the node each disk's device writes to
// now (after a live external snapshot, the newest overlay) and the files of its backing chain.
// Asked of QEMU each time, never assumed: overlays and merges move the top.
import { HangarError } from '../../common/errors.ts';
import type { QmpClient } from '../qmp/client.ts';

interface ChainImage { filename: string; format?: string; 'backing-image'?: ChainImage }

export interface LiveDisk {
  /** The format node the device reads and writes through. */
  node: string;
  /** The top file's format. */
  format: string;
  /** Files from the top down (the top's file first). */
  chain: string[];
}

/** The running disks by device id (virtio-blk, SCSI and IDE disks Hangar created, with their -device id). */
export async function liveDisks(qmp: QmpClient): Promise<Map<string, LiveDisk>> {
  const out = new Map<string, LiveDisk>();
  for (const b of await qmp.queryBlock()) {
    const node = b.inserted?.['node-name'];
    if (!b.qdev || !node) continue;
    // qdev is the device id, or its QOM path (/machine/peripheral/ID/virtio-backend).
    const id = /^\/machine\/peripheral\/([^/]+)/.exec(b.qdev)?.[1] ?? b.qdev;
    const chain: string[] = [];
    for (let img: ChainImage | undefined = b.inserted!.image as ChainImage; img; img = img['backing-image']) chain.push(img.filename);
    out.set(id, { node, chain, format: (b.inserted!.image as ChainImage).format ?? b.inserted!.drv });
  }
  return out;
}

export function liveDisk(disks: Map<string, LiveDisk>, diskId: string): LiveDisk {
  const d = disks.get(diskId);
  if (!d) throw new HangarError('invalid-state', `the running VM has no disk "${diskId}" in its block graph`, 'restart the VM so that it runs with its saved disks');
  return d;
}

/** The node name of the format node QEMU opened for file (a backing file has one QEMU named itself). */
export async function nodeOfFile(qmp: QmpClient, file: string): Promise<string> {
  const nodes = await qmp.execute<Array<{ 'node-name': string; drv: string; file: string }>>('query-named-block-nodes', { flat: true });
  const n = nodes.find((x) => x.file === file && x.drv !== 'file');
  if (!n) throw new HangarError('internal', `the running QEMU has no block node for ${file}`);
  return n['node-name'];
}

/**
 * Removes a node Hangar added (an overlay by blockdev-add, or a disk's -blockdev pair) once a merge
 * took it out of every chain: QEMU keeps monitor-owned nodes alive, and one left behind still holds
 * its file open and its backing node busy (a later snapshot of the disk would be refused).
 */
export async function dropNode(qmp: QmpClient, node: string): Promise<void> {
  await qmp.execute('blockdev-del', { 'node-name': node }).catch(() => {});
  if (node.endsWith('-fmt')) await qmp.execute('blockdev-del', { 'node-name': `${node.slice(0, -4)}-file` }).catch(() => {});
}

/**
 * Removes an unplugged disk's whole chain of nodes, top first: after live external snapshots the
 * device wrote through overlays Hangar added, and each one still holds its file and its backing
 * node. `top` is the file the device wrote to last; the disk's own pair goes in any case.
 */
export async function releaseDiskChain(qmp: QmpClient, top: string, ownFormatNode: string): Promise<void> {
  type Node = { 'node-name': string; drv: string; file: string; image?: ChainImage };
  const nodes = await qmp.execute<Node[]>('query-named-block-nodes').catch((): Node[] => []);
  const formatNode = (file: string): Node | undefined => nodes.find((x) => x.file === file && x.drv !== 'file');
  const chain: string[] = [];
  for (let img = formatNode(top)?.image; img; img = img['backing-image']) chain.push(img.filename);
  // A node still used elsewhere (a backing file another disk shares) is refused by QEMU and stays.
  for (const file of chain) {
    const n = formatNode(file);
    if (n && n['node-name'] !== ownFormatNode) await dropNode(qmp, n['node-name']);
  }
  await dropNode(qmp, ownFormatNode);
}
