#!/usr/bin/env bash
# Builds the Hangar test guest: a tiny busybox initramfs around the host's Debian kernel,
# plus a bootable hybrid ISO (BIOS + UEFI) and a qcow2 disk made from that ISO.
#
# Output goes to a cache directory OUTSIDE the repository:
#   ${HANGAR_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hangar-test-guest}
# with vmlinuz, initrd.img, guest.iso, guest.qcow2, manifest.json and a stamp file.
#
# Idempotent: when the stamp (hash of this script + kernel version + EFI support) matches,
# nothing is rebuilt. A build happens in a temp dir next to the cache and is moved into
# place at the end, so an interrupted build never leaves a half-made cache. Concurrent
# runs are serialised with flock. No sudo, no installs: missing packages are reported
# with the apt-get command that installs them.
#
# On success the absolute path of manifest.json is printed on stdout (and nothing else).
# Progress and errors go to stderr.
#
# Env:
#   HANGAR_GUEST_CACHE            cache dir (see above)
#   HANGAR_GUEST_KERNEL_VERSION   use this kernel (default: newest /boot/vmlinuz-* with modules)
#   HANGAR_GUEST_FORCE=1          rebuild even if up to date
set -euo pipefail
umask 022
export LC_ALL=C

READY_MARKER='HANGAR-GUEST-READY'
SCREEN_MARKER='HANGAR-SCREEN-READY'
CMDLINE='console=ttyS0 quiet panic=-1'

log() { printf 'hangar-guest: %s\n' "$*" >&2; }
die() { printf 'hangar-guest: error: %s\n' "$*" >&2; exit 1; }

SCRIPT_PATH="$(readlink -f "${BASH_SOURCE[0]}")"

if [[ -n "${HANGAR_GUEST_CACHE:-}" ]]; then
  CACHE="$HANGAR_GUEST_CACHE"
else
  CACHE="${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/hangar-test-guest"
fi
CACHE="$(readlink -m "$CACHE")"
PARENT="$(dirname "$CACHE")"
mkdir -p "$PARENT"

# ---------------------------------------------------------------- kernel selection
pick_kernel() {
  if [[ -n "${HANGAR_GUEST_KERNEL_VERSION:-}" ]]; then
    printf '%s\n' "$HANGAR_GUEST_KERNEL_VERSION"
    return
  fi
  local f v best=''
  # newest first; only kernels whose modules are installed
  while IFS= read -r f; do
    v="${f#/boot/vmlinuz-}"
    if [[ -d "/lib/modules/$v/kernel" ]]; then best="$v"; break; fi
  done < <(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V -r)
  printf '%s\n' "$best"
}

KVER="$(pick_kernel)"
if [[ -z "$KVER" ]]; then
  log 'no kernel found (need /boot/vmlinuz-<ver> and /lib/modules/<ver>). Install one with:'
  printf '  apt-get install -y --no-install-recommends linux-image-amd64\n' >&2
  exit 1
fi
KIMG="/boot/vmlinuz-$KVER"
MODDIR="/lib/modules/$KVER"
[[ -f "$KIMG" ]] || die "kernel image $KIMG does not exist"
[[ -r "$KIMG" ]] || die "kernel image $KIMG is not readable by $(id -un) (on Ubuntu: sudo chmod 0644 /boot/vmlinuz-*)"
[[ -d "$MODDIR" ]] || die "modules directory $MODDIR does not exist"

HAVE_EFI=no
[[ -d /usr/lib/grub/x86_64-efi ]] && HAVE_EFI=yes

SCRIPT_HASH="$(sha256sum "$SCRIPT_PATH" | cut -d' ' -f1)"
STAMP_CONTENT="script=$SCRIPT_HASH
kernel=$KVER
efi=$HAVE_EFI"

OUTPUTS=(vmlinuz initrd.img guest.iso guest.qcow2 manifest.json)

up_to_date() {
  [[ "${HANGAR_GUEST_FORCE:-0}" != 1 ]] || return 1
  [[ -f "$CACHE/stamp" ]] || return 1
  [[ "$(cat "$CACHE/stamp")" == "$STAMP_CONTENT" ]] || return 1
  local o
  for o in "${OUTPUTS[@]}"; do [[ -s "$CACHE/$o" ]] || return 1; done
  return 0
}

# Fast path without the lock (the cache dir is only ever replaced whole).
if up_to_date; then
  printf '%s\n' "$CACHE/manifest.json"
  exit 0
fi

# ---------------------------------------------------------------- lock
command -v flock >/dev/null || {
  log 'missing tool flock. Install it with:'
  printf '  apt-get install -y --no-install-recommends util-linux\n' >&2
  exit 1
}
exec 9>"$CACHE.lock"
flock 9
# Somebody else may have built it while we waited.
if up_to_date; then
  printf '%s\n' "$CACHE/manifest.json"
  exit 0
fi
# Leftovers of interrupted builds (we hold the lock, so nobody else is building).
rm -rf "$CACHE".tmp.* "$CACHE".old.*

# ---------------------------------------------------------------- tool check
MISSING_PKGS=()
need_pkg() { local p; for p in "${MISSING_PKGS[@]:-}"; do [[ "$p" == "$1" ]] && return; done; MISSING_PKGS+=("$1"); }
need_cmd() { command -v "$1" >/dev/null 2>&1 || need_pkg "$2"; }

BUSYBOX=''
for c in /bin/busybox /usr/bin/busybox /sbin/busybox /usr/sbin/busybox; do
  # must be static: it runs inside the initramfs without any libraries
  [[ -x "$c" ]] || continue
  case "$(ldd "$c" 2>&1 || true)" in
    *'not a dynamic executable'*|*'statically linked'*) BUSYBOX="$c"; break ;;
  esac
done
[[ -n "$BUSYBOX" ]] || need_pkg busybox-static
need_cmd cpio cpio
need_cmd gzip gzip
need_cmd modprobe kmod
need_cmd depmod kmod
need_cmd sha256sum coreutils
need_cmd grub-mkrescue grub-common
[[ -d /usr/lib/grub/i386-pc ]] || need_pkg grub-pc-bin
need_cmd xorriso xorriso
if [[ "$HAVE_EFI" == yes ]]; then
  need_cmd mformat mtools
  need_cmd mcopy mtools
fi
need_cmd qemu-img qemu-utils
# The guest agent (Debian's build, with its shared libraries copied next to it).
QEMU_GA=/usr/sbin/qemu-ga
[[ -x "$QEMU_GA" ]] || need_pkg qemu-guest-agent
# An SSH server for the Terminal tab and `hangar ssh` (Debian's dropbear, libraries copied the same way).
DROPBEAR=/usr/sbin/dropbear
[[ -x "$DROPBEAR" ]] || need_pkg dropbear-bin
if ((${#MISSING_PKGS[@]})); then
  log "missing packages: ${MISSING_PKGS[*]}. Install them (as root) with:"
  printf '  apt-get install -y --no-install-recommends %s\n' "${MISSING_PKGS[*]}" >&2
  exit 1
fi

# ---------------------------------------------------------------- build
START=$SECONDS
TMP="$(mktemp -d "$CACHE.tmp.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
log "building test guest for kernel $KVER in $CACHE (efi=$HAVE_EFI)"

ROOT="$TMP/root"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,root,mnt,var/log,var/run} \
  "$ROOT/lib/modules/$KVER" "$ROOT/etc/acpi/PWRF" "$ROOT/etc/acpi/PWRB" "$ROOT/etc/udhcpc" \
  "$ROOT/usr/share/udhcpc"
chmod 1777 "$ROOT/tmp"
chmod 0700 "$ROOT/root"

# busybox + applet links
cp "$BUSYBOX" "$ROOT/bin/busybox"
chmod 0755 "$ROOT/bin/busybox"
"$BUSYBOX" --list-full > "$TMP/applets"
while IFS= read -r a; do
  [[ -n "$a" && "$a" != bin/busybox ]] || continue
  mkdir -p "$ROOT/$(dirname "$a")"
  [[ -e "$ROOT/$a" ]] || ln -s /bin/busybox "$ROOT/$a"
done < "$TMP/applets"

# kernel modules: wanted modules + all their dependencies, in load order
CORE_MODULES=(
  virtio_pci virtio_blk virtio_net virtio_scsi virtio_console virtio_rng virtio_balloon
  e1000 e1000e 8139cp 8139too ata_piix ata_generic ahci sd_mod sr_mod 9p 9pnet_virtio
  button evdev
)
EXTRA_MODULES=(
  virtio_input nvme isofs xhci_pci ehci_pci uhci_hcd usbhid hid_generic pvpanic_pci i6300esb virtiofs
  virtio_mem
)
: > "$TMP/insmods"
missing_mods=()
resolve() {  # $1 module, $2 required(1/0)
  local out
  if out="$(modprobe -S "$KVER" --show-depends "$1" 2>/dev/null)"; then
    printf '%s\n' "$out" | awk '$1 == "insmod" { print $2 }' >> "$TMP/insmods"
  elif [[ "$2" == 1 ]]; then
    missing_mods+=("$1")
  fi
}
for m in "${CORE_MODULES[@]}"; do resolve "$m" 1; done
for m in "${EXTRA_MODULES[@]}"; do resolve "$m" 0; done
((${#missing_mods[@]} == 0)) || die "kernel $KVER has no modules: ${missing_mods[*]}"
# The screen: DRM drivers for QEMU's std VGA / bochs-display (bochs) and virtio-vga (virtio-gpu);
# fbcon (built in) then draws tty1 on their framebuffer. Loaded only when the VM has a display
# adapter (PCI class 03), so headless boots do not pay for the DRM stack.
DISPLAY_MODULES=(bochs virtio_gpu)
: > "$TMP/display-insmods"
for m in "${DISPLAY_MODULES[@]}"; do
  modprobe -S "$KVER" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" { print $2 }' >> "$TMP/display-insmods" || true
done

: > "$ROOT/etc/hangar-modules"
: > "$ROOT/etc/hangar-display-modules"
awk '!seen[$0]++' "$TMP/insmods" > "$TMP/insmods.uniq"
# Display modules not already loaded at boot (virtio is), in load order.
awk 'NR == FNR { core[$0] = 1; next } !core[$0] && !seen[$0]++' "$TMP/insmods.uniq" "$TMP/display-insmods" > "$TMP/display-insmods.uniq"
sed 's/^/display /' "$TMP/display-insmods.uniq" > "$TMP/all-insmods"
sed 's/^/core /' "$TMP/insmods.uniq" >> "$TMP/all-insmods"
while IFS=' ' read -r set ko; do
  [[ "$ko" == "$MODDIR/"* ]] || die "unexpected module path $ko"
  rel="${ko#"$MODDIR"/}"
  dst="$ROOT/lib/modules/$KVER/$rel"
  mkdir -p "$(dirname "$dst")"
  case "$ko" in
    *.ko) cp "$ko" "$dst" ;;
    *.ko.xz) command -v xz >/dev/null || die 'compressed modules need xz (apt-get install -y xz-utils)'
             rel="${rel%.xz}"; xz -dc "$ko" > "${dst%.xz}" ;;
    *.ko.zst) command -v zstd >/dev/null || die 'compressed modules need zstd (apt-get install -y zstd)'
              rel="${rel%.zst}"; zstd -qdc "$ko" > "${dst%.zst}" ;;
    *.ko.gz) rel="${rel%.gz}"; gzip -dc "$ko" > "${dst%.gz}" ;;
    *) die "unexpected module file $ko" ;;
  esac
  name="$(basename "$rel" .ko)"
  if [[ "$set" == display ]]; then printf '%s %s\n' "${name//-/_}" "$rel" >> "$ROOT/etc/hangar-display-modules"
  else printf '%s %s\n' "${name//-/_}" "$rel" >> "$ROOT/etc/hangar-modules"; fi
done < "$TMP/all-insmods"
for f in modules.order modules.builtin modules.builtin.modinfo; do
  if [[ -f "$MODDIR/$f" ]]; then cp "$MODDIR/$f" "$ROOT/lib/modules/$KVER/"; fi
done
depmod -b "$ROOT" "$KVER" 2> "$TMP/depmod.log" || { cat "$TMP/depmod.log" >&2; die 'depmod failed'; }
# Drop the binary indexes; busybox modprobe reads the text files.
rm -f "$ROOT/lib/modules/$KVER"/*.bin

# ---- qemu-ga and dropbear with the shared libraries they need (same paths as on the host; the loader too)
copy_with_libs() {  # $1 program, $2 its path in the guest
  mkdir -p "$ROOT$(dirname "$2")"
  cp -L "$1" "$ROOT$2"
  local lib
  while read -r lib; do
    [[ -e "$ROOT$lib" ]] && continue
    mkdir -p "$ROOT$(dirname "$lib")"
    cp -L "$lib" "$ROOT$lib"
  done < <(ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
}
mkdir -p "$ROOT/var/lib/qemu-ga"
copy_with_libs "$QEMU_GA" /usr/sbin/qemu-ga
# dropbear: host keys made on the first connection (-R) in /etc/dropbear; root logs in with a key
# put in /root/.ssh/authorized_keys (the guest has no persistent storage: tests write it through
# the serial console); root has no password, so password logins fail.
copy_with_libs "$DROPBEAR" /usr/sbin/dropbear
mkdir -p "$ROOT/etc/dropbear" "$ROOT/root/.ssh"
chmod 0700 "$ROOT/root/.ssh"
printf '/bin/sh\n' > "$ROOT/etc/shells"
# qemu-ga's guest-shutdown runs `/sbin/shutdown -h|-r|-H -P +0 MSG` (systemd's); busybox has no
# shutdown, so this one powers off (or reboots, halts) at once.
rm -f "$ROOT/sbin/shutdown"
cat > "$ROOT/sbin/shutdown" <<'EOF'
#!/bin/sh
action=poweroff
for a in "$@"; do
  case "$a" in -r) action=reboot ;; -H) action=halt ;; esac
done
echo "hangar: shutdown requested ($action)" > /dev/console
sync
exec /bin/busybox $action -f
EOF
chmod 0755 "$ROOT/sbin/shutdown"
# guest-get-osinfo reads os-release.
cat > "$ROOT/etc/os-release" <<'EOF'
NAME="Hangar Test Guest"
ID=hangar-test-guest
VERSION_ID=1
VERSION="1 (busybox)"
PRETTY_NAME="Hangar Test Guest 1"
EOF

# ---- /etc files
printf 'hangar-guest\n' > "$ROOT/etc/hostname"
cat > "$ROOT/etc/hosts" <<'EOF'
127.0.0.1 localhost
127.0.1.1 hangar-guest
EOF
cat > "$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
EOF
cat > "$ROOT/etc/group" <<'EOF'
root:x:0:
tty:x:5:
EOF
: > "$ROOT/etc/resolv.conf"
printf '%s\n' "$KVER" > "$ROOT/etc/hangar-kernel"

cat > "$ROOT/etc/profile" <<EOF
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
export PS1='guest# '
cd /root 2>/dev/null
# Serial console only (an SSH session has its terminal's real size):
# wide terminal so that long typed lines are echoed without line-editing redraws.
[ -n "\$SSH_TTY" ] || stty cols 1000 rows 50 2>/dev/null
# The ready marker is printed by the first interactive shell itself, right before its
# first prompt: anything typed after the marker is read by this shell.
if [ -z "\$SSH_CONNECTION" ] && [ ! -e /run/hangar-ready ]; then
  : > /run/hangar-ready
  echo '$READY_MARKER'
fi
EOF

# ---- busybox init: interactive shell on the console (ttyS0) with a controlling tty,
# respawned whenever it exits; /etc/profile prints the ready marker before the first prompt.
cat > "$ROOT/etc/inittab" <<'EOF'
::respawn:/bin/cttyhack /bin/sh -l
tty1::respawn:/bin/tty1-shell
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
EOF

# ---- the screen: a banner on tty1 (drawn once at boot) and a shell on it (prompt "tty1# ")
cat > "$ROOT/bin/hangar-banner" <<'EOF'
#!/bin/sh
# Clears tty1 and draws something recognisable: coloured bars around a large HANGAR.
t=/dev/tty1
[ -c $t ] || exit 0
{
  printf '\033[2J\033[H\033[?25l'
  bar() { printf '\033[%sm%80s\033[0m\n' "$1" ''; }
  bar 41; bar 42; bar 44
  printf '\033[1;33m'
  echo ' #   #   ###   #   #   ####   ###   ####    '
  echo ' #   #  #   #  ##  #  #      #   #  #   #   '
  echo ' #####  #####  # # #  #  ##  #####  ####    '
  echo ' #   #  #   #  #  ##  #   #  #   #  #  #    '
  echo ' #   #  #   #  #   #   ###   #   #  #   #   '
  printf '\033[0m'
  bar 44; bar 42; bar 41
  echo
  echo 'HANGAR TEST GUEST - HANGAR-SCREEN-READY'
  printf '\033[?25h'
} > $t
EOF
chmod 0755 "$ROOT/bin/hangar-banner"
cat > "$ROOT/bin/tty1-shell" <<'EOF'
#!/bin/sh
# The shell on the VM's screen: its own prompt and no /etc/profile (the ready marker is ttyS0's).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root PS1='tty1# '
cd /root 2>/dev/null
exec /bin/sh -i
EOF
chmod 0755 "$ROOT/bin/tty1-shell"
# pointer-watch: the USB tablet's absolute position as the guest sees it, one line per report
# on ttyS0 ("HANGAR-POINTER X Y", 0..32767), for tests that move the viewer's mouse.
cat > "$ROOT/bin/pointer-watch" <<'EOF'
#!/bin/sh
dev=''
for d in /sys/class/input/event*; do
  case "$(cat "$d/device/name" 2>/dev/null)" in *Tablet*) dev="/dev/input/${d##*/}";; esac
done
[ -n "$dev" ] || { echo 'HANGAR-POINTER none: no tablet' > /dev/ttyS0; exit 1; }
echo "HANGAR-POINTER watching $dev" > /dev/ttyS0
x=0; y=0
exec 3< "$dev"
# struct input_event on x86_64: 16 bytes of time, u16 type, u16 code, s32 value (one read each).
while :; do
  set -- $(dd bs=24 count=1 <&3 2>/dev/null | od -An -v -tu2)
  [ $# -ge 12 ] || continue
  type=$9 code=${10} value=$((${11} + ${12} * 65536))
  if [ "$type" = 3 ] && [ "$code" = 0 ]; then x=$value
  elif [ "$type" = 3 ] && [ "$code" = 1 ]; then y=$value
  elif [ "$type" = 0 ]; then echo "HANGAR-POINTER $x $y" > /dev/ttyS0
  fi
done
EOF
chmod 0755 "$ROOT/bin/pointer-watch"

# ---- hangar-lspci
cat > "$ROOT/bin/hangar-lspci" <<'EOF'
#!/bin/sh
# One line per PCI device: <addr> <vendor>:<device> <class> <driver-or-none>
echo HANGAR-PCI-BEGIN
for d in /sys/bus/pci/devices/*; do
  [ -r "$d/vendor" ] || continue
  read -r v < "$d/vendor"; read -r p < "$d/device"; read -r c < "$d/class"
  drv=none
  if [ -L "$d/driver" ]; then drv="$(readlink "$d/driver")"; drv="${drv##*/}"; fi
  echo "${d##*/} ${v#0x}:${p#0x} ${c#0x} $drv"
done
echo HANGAR-PCI-END
EOF
chmod 0755 "$ROOT/bin/hangar-lspci"

# ---- ACPI power button -> clean power off (busybox acpid maps KEY_POWER to PWRF/00000080)
cat > "$ROOT/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo 'hangar: power button pressed, powering off' > /dev/console
sync
exec /bin/busybox poweroff -f
EOF
chmod 0755 "$ROOT/etc/acpi/PWRF/00000080"
ln -s ../PWRF/00000080 "$ROOT/etc/acpi/PWRB/00000080"
# action file: "<substring of event> <handler relative to /etc/acpi>"
cat > "$ROOT/etc/acpid.conf" <<'EOF'
PWRF PWRF/00000080
PWRB PWRB/00000080
EOF

# ---- udhcpc event script
cat > "$ROOT/etc/udhcpc.script" <<'EOF'
#!/bin/sh
# busybox udhcpc event script: udhcpc -i eth0 -s /etc/udhcpc.script -q -n
[ -n "$1" ] || { echo "usage: udhcpc -s $0" >&2; exit 1; }
case "$1" in
  deconfig)
    ip link set "$interface" up
    ip -4 addr flush dev "$interface"
    ;;
  bound|renew)
    ip link set "$interface" up
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
    while ip route del default dev "$interface" 2>/dev/null; do :; done
    for r in $router; do
      ip route add default via "$r" dev "$interface" && break
    done
    : > /etc/resolv.conf
    [ -n "$domain" ] && echo "search $domain" >> /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    echo "udhcpc: $interface $ip/${mask:-24} router ${router:-none}"
    ;;
  leasefail|nak)
    echo "udhcpc: $1 on $interface${message:+: $message}" >&2
    ;;
esac
exit 0
EOF
chmod 0755 "$ROOT/etc/udhcpc.script"
ln -s /etc/udhcpc.script "$ROOT/etc/udhcpc/default.script"
ln -s /etc/udhcpc.script "$ROOT/usr/share/udhcpc/default.script"

# ---- /init
cat > "$ROOT/init" <<'EOF'
#!/bin/sh
# Hangar test guest init (PID 1, busybox sh).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
# Keep the console clean: only emergency kernel messages from now on (see dmesg).
dmesg -n 1

hostname -F /etc/hostname
ip link set lo up

# Hotplugged memory (DIMMs, virtio-mem blocks) comes online by itself, as a distribution's udev
# rule does it; movable, so virtio-mem can take it out again (the kernel's default leaves it offline).
echo online_movable > /sys/devices/system/memory/auto_online_blocks 2>/dev/null

# Kernel modules, dependencies first (see /etc/hangar-modules); failures are ignored.
kver="$(cat /etc/hangar-kernel)"
loaded=''
failed=''
while read -r name rel; do
  if insmod "/lib/modules/$kver/$rel" 2>/dev/null; then
    loaded="$loaded $name"
  else
    failed="$failed $name"
  fi
done < /etc/hangar-modules
# A display adapter (PCI class 03xxxx): its DRM driver, then the banner on tty1.
if cat /sys/bus/pci/devices/*/class 2>/dev/null | grep -q '^0x03'; then
  while read -r name rel; do
    if insmod "/lib/modules/$kver/$rel" 2>/dev/null; then loaded="$loaded $name"; else failed="$failed $name"; fi
  done < /etc/hangar-display-modules
  hangar-banner
  echo 'HANGAR-SCREEN-READY'
fi
echo "$failed" > /run/hangar-modules.failed
echo "hangar: modules loaded:$loaded"

# ACPI power button (QMP system_powerdown) -> /etc/acpi/PWRF/00000080 -> poweroff.
acpid -l /var/log/acpid.log

hangar-lspci

# The guest agent, when the VM has its channel. Without udev nobody makes /dev/virtio-ports/NAME,
# so the links are made here from sysfs. A guest with an agent also takes a DHCP lease on eth0 (in
# the background) so that the agent has an IP address to report.
for p in /sys/class/virtio-ports/*; do
  [ -r "$p/name" ] || continue
  mkdir -p /dev/virtio-ports
  ln -sf "../${p##*/}" "/dev/virtio-ports/$(cat "$p/name")"
done
if [ -e /dev/virtio-ports/org.qemu.guest_agent.0 ]; then
  qemu-ga -d -m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0 -f /run/qemu-ga.pid -t /var/lib/qemu-ga -l /var/log/qemu-ga.log
  if [ -e /sys/class/net/eth0 ]; then
    udhcpc -i eth0 -s /etc/udhcpc.script -q -n -t 10 > /dev/null 2>&1 &
  fi
fi
# An SSH server on port 22 when the VM has a NIC (host keys made on the first connection; its
# log in /var/log/dropbear.log, off the console).
if [ -e /sys/class/net/eth0 ]; then
  dropbear -R -E -p 22 > /var/log/dropbear.log 2>&1
fi

# Hand PID 1 over to busybox init (/etc/inittab): it respawns the console shell, reaps
# orphans, and makes `poweroff`/`reboot`/`halt` typed in the guest work.
exec /bin/busybox init
EOF
chmod 0755 "$ROOT/init"

# ---- initrd
( cd "$ROOT" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --quiet ) | gzip -9 -n > "$TMP/initrd.img"
cp "$KIMG" "$TMP/vmlinuz"

# ---- ISO (grub-mkrescue hybrid: BIOS i386-pc + x86_64-efi when present)
ISODIR="$TMP/iso"
mkdir -p "$ISODIR/boot/grub"
cp "$TMP/vmlinuz" "$ISODIR/boot/vmlinuz"
cp "$TMP/initrd.img" "$ISODIR/boot/initrd.img"
cat > "$ISODIR/boot/grub/grub.cfg" <<EOF
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
# The menu shows for 3 s on the screen and the serial console (a key stops the countdown).
set timeout=3
set timeout_style=menu
set default=0
# If booting fails (e.g. GRUB's "out of memory" under UEFI with -m 256), don't sit in the
# menu forever: say so on the serial console and power the machine off.
set fallback=1
menuentry 'Hangar test guest' {
  linux /boot/vmlinuz $CMDLINE
  initrd /boot/initrd.img
}
menuentry 'Boot failed: power off' {
  echo 'HANGAR-GRUB-BOOT-FAILED'
  sleep 1
  halt
}
EOF
# grub-mkrescue picks up every platform installed under /usr/lib/grub (i386-pc, x86_64-efi).
if ! grub-mkrescue -o "$TMP/guest.iso" --compress=xz "$ISODIR" -- -volid HANGAR_GUEST > "$TMP/mkrescue.log" 2>&1; then
  cat "$TMP/mkrescue.log" >&2
  die 'grub-mkrescue failed'
fi

# ---- disk image from the hybrid ISO
qemu-img convert -f raw -O qcow2 "$TMP/guest.iso" "$TMP/guest.qcow2"

# ---- manifest + stamp
json_str() { local s="$1"; s="${s//\\/\\\\}"; s="${s//\"/\\\"}"; printf '"%s"' "$s"; }
mods_json=''
while read -r name _; do
  mods_json+="${mods_json:+, }$(json_str "$name")"
done < "$ROOT/etc/hangar-modules"
cat > "$TMP/manifest.json" <<EOF
{
  "cacheDir": $(json_str "$CACHE"),
  "kernel": $(json_str "$CACHE/vmlinuz"),
  "initrd": $(json_str "$CACHE/initrd.img"),
  "iso": $(json_str "$CACHE/guest.iso"),
  "disk": $(json_str "$CACHE/guest.qcow2"),
  "kernelVersion": $(json_str "$KVER"),
  "cmdline": $(json_str "$CMDLINE"),
  "readyMarker": $(json_str "$READY_MARKER"),
  "screenMarker": $(json_str "$SCREEN_MARKER"),
  "prompt": "guest# ",
  "efi": $([[ "$HAVE_EFI" == yes ]] && echo true || echo false),
  "modules": [$mods_json],
  "buildScriptSha256": $(json_str "$SCRIPT_HASH")
}
EOF
printf '%s\n' "$STAMP_CONTENT" > "$TMP/stamp"

# ---- move into place
OUT="$TMP/out"
mkdir "$OUT"
for o in "${OUTPUTS[@]}" stamp; do mv "$TMP/$o" "$OUT/$o"; done
# The finished dir replaces the old one by rename (same filesystem); if we die between
# the two renames there is simply no cache and the next run rebuilds.
if [[ -e "$CACHE" ]]; then
  mv "$CACHE" "$CACHE.old.$$"
fi
mv "$OUT" "$CACHE"
rm -rf "$CACHE.old.$$"
log "built in $((SECONDS - START))s: $CACHE"
printf '%s\n' "$CACHE/manifest.json"
