import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { guestCacheDir, parsePciBlock, PCI_BEGIN, PCI_END, READY_MARKER } from '../guest/guest.ts';

// Real boot output of the test guest (q35, virtio-net + e1000 + virtio-blk), as read
// from the serial console: CRLF line ends, kernel/module noise around the block.
const BOOT_OUTPUT = [
  'hangar: modules loaded: virtio_ring virtio virtio_pci e1000 ahci',
  'HANGAR-PCI-BEGIN',
  '0000:00:00.0 8086:29c0 060000 none',
  '0000:00:01.0 1af4:1000 020000 virtio-pci',
  '0000:00:02.0 8086:100e 020000 e1000',
  '0000:00:04.0 1af4:1001 010000 virtio-pci',
  '0000:00:1f.2 8086:2922 010601 ahci',
  'HANGAR-PCI-END',
  '',
  'HANGAR-GUEST-READY',
  'guest# ',
].join('\r\n');

describe('parsePciBlock', () => {
  it('parses the boot block from raw serial output', () => {
    const devs = parsePciBlock(BOOT_OUTPUT);
    assert.equal(devs.length, 5);
    assert.deepEqual(devs[0], { addr: '0000:00:00.0', vendor: '8086', device: '29c0', cls: '060000', driver: null });
    assert.deepEqual(devs[1], { addr: '0000:00:01.0', vendor: '1af4', device: '1000', cls: '020000', driver: 'virtio-pci' });
    assert.deepEqual(
      devs.map((d) => d.driver),
      [null, 'virtio-pci', 'e1000', 'virtio-pci', 'ahci'],
    );
  });

  it('accepts LF-only text and surrounding whitespace', () => {
    const text = `${PCI_BEGIN}\n  0000:00:01.1 8086:7010 010180 ata_piix  \n${PCI_END}\n`;
    assert.deepEqual(parsePciBlock(text), [
      { addr: '0000:00:01.1', vendor: '8086', device: '7010', cls: '010180', driver: 'ata_piix' },
    ]);
  });

  it('ignores terminal escapes and the echoed command of `hangar-lspci` typed at the prompt', () => {
    const text =
      '\x1b[6nhangar-lspci\r\n' +
      'HANGAR-PCI-BEGIN\r\n0000:00:03.0 1AF4:1000 020000 virtio-pci\r\nHANGAR-PCI-END\r\nguest# \x1b[6n';
    assert.deepEqual(parsePciBlock(text), [
      { addr: '0000:00:03.0', vendor: '1af4', device: '1000', cls: '020000', driver: 'virtio-pci' },
    ]);
  });

  it('returns the last complete block when there are several', () => {
    const later = [
      'guest# hangar-lspci',
      'HANGAR-PCI-BEGIN',
      '0000:00:05.0 1b36:0010 010802 nvme',
      'HANGAR-PCI-END',
      'guest# ',
    ].join('\r\n');
    const devs = parsePciBlock(BOOT_OUTPUT + later);
    assert.deepEqual(devs, [{ addr: '0000:00:05.0', vendor: '1b36', device: '0010', cls: '010802', driver: 'nvme' }]);
  });

  it('ignores a trailing block that has not finished yet', () => {
    const partial = BOOT_OUTPUT + '\r\nHANGAR-PCI-BEGIN\r\n0000:00:05.0 1b36:0010 010802 nvme\r\n';
    assert.equal(parsePciBlock(partial).length, 5);
  });

  it('handles an empty block and PCI domains other than 0000', () => {
    assert.deepEqual(parsePciBlock(`${PCI_BEGIN}\r\n${PCI_END}`), []);
    assert.deepEqual(parsePciBlock(`${PCI_BEGIN}\n10000:01:00.7 abcd:ef01 0c0330 xhci_hcd\n${PCI_END}`), [
      { addr: '10000:01:00.7', vendor: 'abcd', device: 'ef01', cls: '0c0330', driver: 'xhci_hcd' },
    ]);
  });

  it('throws when there is no complete block', () => {
    assert.throws(() => parsePciBlock(''), /no complete HANGAR-PCI-BEGIN/);
    assert.throws(() => parsePciBlock(`${READY_MARKER}\r\nguest# `), /no complete/);
    assert.throws(() => parsePciBlock(`${PCI_BEGIN}\r\n0000:00:01.0 1af4:1000 020000 virtio-pci\r\n`), /no complete/);
    assert.throws(() => parsePciBlock(`${PCI_END}\r\n${PCI_BEGIN}\r\n`), /no complete/);
  });

  it('throws on a malformed line inside the block (e.g. interleaved kernel message)', () => {
    const text = `${PCI_BEGIN}\r\n0000:00:01.0 1af4:1000 020000 virtio-pci\r\n[    3.1] e1000: eth0 NIC Link is Up\r\n${PCI_END}`;
    assert.throws(() => parsePciBlock(text), /malformed line in guest PCI block/);
    assert.throws(() => parsePciBlock(`${PCI_BEGIN}\n0000:00:01.0 0x1af4:0x1000 0x020000 virtio-pci\n${PCI_END}`), /malformed/);
    assert.throws(() => parsePciBlock(`${PCI_BEGIN}\n0000:00:01.0 1af4:1000 020000\n${PCI_END}`), /malformed/);
  });
});

describe('guestCacheDir', () => {
  it('prefers HANGAR_GUEST_CACHE, then XDG_CACHE_HOME, then ~/.cache', () => {
    assert.equal(guestCacheDir({ HANGAR_GUEST_CACHE: '/x/guest', XDG_CACHE_HOME: '/y', HOME: '/h' }), '/x/guest');
    assert.equal(guestCacheDir({ XDG_CACHE_HOME: '/y', HOME: '/h' }), '/y/hangar-test-guest');
    assert.equal(guestCacheDir({ XDG_CACHE_HOME: '', HOME: '/h' }), '/h/.cache/hangar-test-guest');
    assert.equal(guestCacheDir({ HANGAR_GUEST_CACHE: 'rel/dir' }), path.resolve('rel/dir'));
  });
});
