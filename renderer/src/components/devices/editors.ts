// The editor component of each device kind (a new kind adds one line).
import type { Component } from 'vue';
import type { DeviceKindName } from '../../../../core/common/api.ts';
import BalloonEditor from './BalloonEditor.vue';
import CdromEditor from './CdromEditor.vue';
import ChannelEditor from './ChannelEditor.vue';
import DiskEditor from './DiskEditor.vue';
import HostPciEditor from './HostPciEditor.vue';
import InputEditor from './InputEditor.vue';
import MdevEditor from './MdevEditor.vue';
import NicEditor from './NicEditor.vue';
import RngEditor from './RngEditor.vue';
import SerialPortEditor from './SerialPortEditor.vue';
import ShareEditor from './ShareEditor.vue';
import SoundEditor from './SoundEditor.vue';
import TpmEditor from './TpmEditor.vue';
import UsbEditor from './UsbEditor.vue';
import UsbHostEditor from './UsbHostEditor.vue';
import VideoEditor from './VideoEditor.vue';
import VsockEditor from './VsockEditor.vue';
import WatchdogEditor from './WatchdogEditor.vue';

export const editors: Record<DeviceKindName, Component> = {
  disk: DiskEditor, cdrom: CdromEditor, nic: NicEditor, input: InputEditor, share: ShareEditor, channel: ChannelEditor,
  serial: SerialPortEditor, video: VideoEditor, sound: SoundEditor, rng: RngEditor, balloon: BalloonEditor,
  watchdog: WatchdogEditor, usb: UsbEditor, vsock: VsockEditor, tpm: TpmEditor,
  hostpci: HostPciEditor, mdev: MdevEditor, usbhost: UsbHostEditor,
};
