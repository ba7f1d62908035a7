#!/usr/bin/env bash
# Sets up Hangar on a Debian machine: host packages (apt, as root; otherwise prints the exact
# command and stops), npm dependencies, the CLI bundle. With --test, also what the tests need.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

# package -> a file it installs (checked instead of asking dpkg, which is slow)
declare -A runtime_pkgs=(
  [qemu-system-x86]=/usr/bin/qemu-system-x86_64
  [qemu-utils]=/usr/bin/qemu-img
  [qemu-system-common]=/usr/bin/qemu-storage-daemon
  [ovmf]=/usr/share/OVMF/OVMF_CODE_4M.fd
  [swtpm]=/usr/bin/swtpm
  [passt]=/usr/bin/passt
  [osinfo-db]=/usr/share/osinfo/VERSION
  [xorriso]=/usr/bin/xorriso
  [openssl]=/usr/bin/openssl
  [ipxe-qemu]=/usr/lib/ipxe/qemu/efi-virtio.rom
  [pci.ids]=/usr/share/misc/pci.ids
  [usb.ids]=/usr/share/misc/usb.ids
  # node-pty (terminals for ssh prompts and virsh console) is compiled by node-gyp during npm ci.
  [g++]=/usr/bin/g++
  [make]=/usr/bin/make
  [python3]=/usr/bin/python3
  # Remote connections (ssh://, qemu+ssh://) run the user's own ssh.
  [openssh-client]=/usr/bin/ssh
)
declare -A test_pkgs=(
  [busybox-static]=/bin/busybox
  [linux-image-amd64]=/boot/vmlinuz
  [cpio]=/usr/bin/cpio
  [grub-pc-bin]=/usr/lib/grub/i386-pc/modinfo.sh
  [grub-efi-amd64-bin]=/usr/lib/grub/x86_64-efi/modinfo.sh
  [grub-common]=/usr/bin/grub-mkrescue
  [mtools]=/usr/bin/mcopy
  [kmod]=/usr/bin/kmod
  [chromium]=/usr/bin/chromium
  [fonts-dejavu-core]=/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf
  # DPDK testpmd: a real vhost-user-net back end for the vhost-user NIC test.
  [dpdk-dev]=/usr/bin/dpdk-testpmd
  # systemd-analyze verify checks the unit `hangar service install` writes.
  [systemd]=/usr/bin/systemd-analyze
  # qemu-ga, copied into the test guest's initramfs (tests/guest/build.sh).
  [qemu-guest-agent]=/usr/sbin/qemu-ga
  # dropbear, the test guest's SSH server (the Terminal tab and `hangar ssh` tests).
  [dropbear-bin]=/usr/sbin/dropbear
  # A throw-away sshd on 127.0.0.1 for the SSH connection tests (tests/helpers/sshd.ts).
  [openssh-server]=/usr/sbin/sshd
  [libvirt-daemon-system]=/usr/sbin/libvirtd
  [libvirt-clients]=/usr/bin/virsh
  # virt-xml-validate (golden libvirt XML) runs xmllint; libvirt defines a TPM only with swtpm_setup.
  [libxml2-utils]=/usr/bin/xmllint
  [swtpm-tools]=/usr/bin/swtpm_setup
)

missing=()
check() {
  local -n pkgs=$1
  for p in "${!pkgs[@]}"; do
    local f=${pkgs[$p]}
    if [[ "$f" == /boot/vmlinuz ]]; then compgen -G '/boot/vmlinuz-*' >/dev/null || missing+=("$p")
    elif [[ ! -e "$f" ]]; then missing+=("$p"); fi
  done
}
check runtime_pkgs
(( want_test )) && check test_pkgs

if (( ${#missing[@]} )); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "setup: installing host packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: these host packages are missing: ${missing[*]}" >&2
    echo "setup: install them with:  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# npm dependencies. Electron's binary download is skipped here and tried separately, so set-up
# succeeds where it cannot be downloaded and still gives the real Electron where it can.
stamp=node_modules/.hangar-setup-stamp
if [[ ! -f $stamp || package-lock.json -nt $stamp || package.json -nt $stamp ]]; then
  echo "setup: installing npm dependencies"
  ELECTRON_SKIP_BINARY_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi
if [[ ! -e node_modules/electron/dist && ! -e node_modules/.electron-unavailable ]] && [[ -z "${CI:-}" ]]; then
  if timeout 120 node node_modules/electron/install.js >/dev/null 2>&1; then
    echo "setup: Electron binary installed"
  else
    touch node_modules/.electron-unavailable
    echo "setup: Electron's binary could not be downloaded here; the desktop window is unavailable, browser mode and the CLI work"
  fi
fi

node scripts/build.mjs
