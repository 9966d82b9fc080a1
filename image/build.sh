#!/bin/bash
# Builds a flashable SD-card image of a Junction box (driven by `make image`).
#
#   image/build.sh --arch amd64|arm64 --bin PATH/TO/junction --out DIR [--version V] [--kernel stable|backports]
#                  [--release 1.2.0] [--keys PUBLIC-KEYS] [--bundle-key PRIVATE-KEY --packer PATH/TO/host/junction]
#
# With --bundle-key it also writes the release's signed update bundle (junction-RELEASE-ARCH.jub:
# slot A's root filesystem, kernel and initramfs), which `commune releases add` takes; --packer
# is a junction that runs on this machine (the debug build), which packs it.
#
# The binary is the one `make release-ARCH` cross-builds (image/cross-build.sh): linked against
# Debian trixie's own glibc and FFmpeg 7.1, the libraries this image installs.
#
# The card, in order:
#   1  FAT32 "JUNCTION" (256 MiB, MBR type 0x0c: every laptop mounts it): junction.toml for the
#      installer, README.txt, junction-status.txt written back by the box; and what boots: an EFI
#      loader (systemd-boot) with the kernel and initramfs, and on arm64 also the Raspberry Pi
#      firmware, device trees, config.txt and cmdline.txt. Mounted at /boot/firmware.
#   2  root slot A, ext4 "junction-root": Debian 13 trixie minbase (mmdebstrap), kernel 6.12 (or,
#      with --kernel backports, trixie-backports' newer kernel, which a Raspberry Pi 5 needs),
#      systemd, the FFmpeg 7.1 runtime libraries, systemd-networkd/resolved/timesyncd, the junction
#      binary and its units, the release's version and the release keys it trusts.
#   3  root slot B, the same size, empty: an update writes the next release there (issue 24).
#      Each slot has its own systemd-boot entry (loader/entries/junction-a.conf, kernel and
#      initramfs under junction/a/); the boot partition's junction/slots names both.
#   4  ext4 data "junction-data" at /var/lib/junction (noatime,lazytime): the ring. It is small in
#      the image and grows to fill the card on first boot (junction-growdata.service: growpart,
#      then resize2fs while mounted). Updates never touch it.
# No loop devices: each filesystem is made in its own file (mkfs.vfat -C + mcopy, mkfs.ext4 -d),
# the partition table is written with sfdisk on the image file, and the parts are put in place with
# dd conv=notrunc. Needs root (mmdebstrap keeps file ownership) and, for arm64 on another machine,
# qemu-user-static with binfmt_misc.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
ARCH="" BIN="" OUT="" VERSION="" REUSE=0 KERNEL=stable MIRROR="${MIRROR:-http://deb.debian.org/debian}"
RELEASE="" KEYS="$HERE/release-keys.TEST-ONLY" BUNDLE_KEY="" PACKER=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --version) VERSION="$2"; shift 2 ;;
    --kernel) KERNEL="$2"; shift 2 ;;
    --release) RELEASE="$2"; shift 2 ;;
    --keys) KEYS="$2"; shift 2 ;;
    --bundle-key) BUNDLE_KEY="$2"; shift 2 ;;
    --packer) PACKER="$2"; shift 2 ;;
    # For developers: keep the work folder's rootfs from an earlier run made with KEEP_WORK=1 (mmdebstrap
    # takes ~4 min for amd64 and ~15 for arm64 under emulation); every later step runs again.
    --reuse-rootfs) REUSE=1; shift ;;
    *) echo "image/build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

die() { echo "image: $*" >&2; exit 1; }
step() { printf '\n== %s (%ss)\n' "$*" "$SECONDS"; }

case "$ARCH" in
  amd64) ELF_MACHINE=62; EFI_NAME=BOOTX64.EFI; EFI_SRC=systemd-bootx64.efi; CONSOLE="console=tty0 console=ttyS0,115200" ;;
  arm64) ELF_MACHINE=183; EFI_NAME=BOOTAA64.EFI; EFI_SRC=systemd-bootaa64.efi; CONSOLE="console=tty0 console=ttyAMA0,115200" ;;
  *) die "ARCH must be amd64 or arm64 (got '${ARCH}')" ;;
esac
case "$KERNEL" in stable|backports) ;; *) die "--kernel must be stable (trixie's 6.12) or backports (trixie-backports)" ;; esac
[ "$(id -u)" = 0 ] || die "building an image needs root (mmdebstrap must keep file owners): run it with sudo"
[ -n "$OUT" ] || die "--out DIR is missing"
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"

# The binary must be a real junction for this architecture: an image that cannot record is worse
# than no image.
if [ -z "$BIN" ] || [ ! -f "$BIN" ]; then
  die "no junction binary at '${BIN}': 'make image ARCH=$ARCH' builds it (make release-$ARCH: the cross-build against trixie), or pass JUNCTION_BIN=..."
fi
machine=$(od -An -t u2 -j 18 -N 2 "$BIN" 2>/dev/null | tr -d ' ')
[ "$(head -c 4 "$BIN" | od -An -c | tr -d ' ')" = '177ELF' ] && [ "$machine" = "$ELF_MACHINE" ] \
  || die "$BIN is not an $ARCH Linux executable (ELF machine ${machine:-none}, expected $ELF_MACHINE): the box could not run it"
VERSION="${VERSION:-$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo dev)}"
# The release a box reports and the fleet compares: numbers only (1.2.0, 1.2.0-rc1).
RELEASE="${RELEASE:-$(sed -n 's/.*static let current = "\(.*\)"/\1/p' "$REPO/Sources/Recorder/RecorderHealth.swift")}"
echo "$RELEASE" | grep -Eq '^[0-9]{1,6}(\.[0-9]{1,6}){0,3}(-[A-Za-z0-9.]{1,32})?$' || die "--release '$RELEASE' is not a version like 1.2.0"
[ -f "$KEYS" ] || die "no release keys at '$KEYS' (--keys FILE: the public keys a box trusts, one a line)"
if [ -n "$BUNDLE_KEY" ]; then
  [ -f "$BUNDLE_KEY" ] || die "no release key at '$BUNDLE_KEY'"
  [ -x "$PACKER" ] || die "--bundle-key needs --packer PATH: a junction that runs on this machine ('make build' makes .build/debug/junction)"
fi

for tool in mmdebstrap mkfs.vfat mcopy mmd mkfs.ext4 sfdisk zstd; do
  command -v "$tool" >/dev/null || die "$tool is missing: run 'make image-deps'"
done
if [ "$ARCH" != "$(dpkg --print-architecture)" ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || die "binfmt_misc has no qemu-aarch64: install qemu-user-static and binfmt-support ('make image-deps')"
fi

NAME="junction-${VERSION}-${ARCH}"
WORK="$OUT/$NAME.work"
ROOT="$WORK/rootfs"
# An interrupted mmdebstrap can leave /proc, /sys and /dev mounted in the old rootfs: never delete
# through a mount.
for m in $(awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
if awk -v w="$WORK/" 'index($2, w) == 1 {found=1} END {exit !found}' /proc/mounts; then
  die "something is still mounted under $WORK; unmount it first"
fi
if [ "$REUSE" = 1 ] && [ -f "$ROOT/var/tmp/junction-build/rootfs-done" ]; then
  find "$WORK" -mindepth 1 -maxdepth 1 ! -name rootfs -exec rm -rf {} +
else
  REUSE=0; rm -rf "$WORK"; mkdir -p "$WORK"
fi
trap 'echo "image: failed after ${SECONDS}s; the work folder is $WORK" >&2' ERR

# Partition identities: the MBR disk id gives every PARTUUID (DISKID-01 … -04).
DISKID=$(od -An -t x4 -N 4 /dev/urandom | tr -d ' ')
# Both root slots have the same size, for every release: SLOT_MIB (1 GiB; a release must fit it
# with room for its own growth; the build stops when it does not).
FAT_MIB=256 DATA_MIB=512 FIRST_MIB=4 SLOT_MIB="${SLOT_MIB:-1024}"

if [ "$REUSE" = 1 ]; then step "Reusing the rootfs of an earlier run ($ROOT)"; else
step "Debian trixie rootfs for $ARCH (mmdebstrap, kernel: $KERNEL)"
# The FFmpeg sonames are trixie's 7.1 (the cross-build checks the binary needs exactly these).
PACKAGES=(systemd systemd-sysv systemd-timesyncd systemd-resolved udev kmod dbus
  initramfs-tools zstd e2fsprogs dosfstools fdisk cloud-guest-utils util-linux
  iproute2 iputils-ping ca-certificates less systemd-boot-efi systemd-boot openssh-server tzdata
  libavformat61 libavcodec61 libavutil59 libswscale8 libstdc++6 zlib1g libssl3t64)
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
SOURCES=("deb $MIRROR trixie main non-free-firmware" "deb $MIRROR trixie-updates main" "deb $SECURITY_MIRROR trixie-security main")
if [ "$KERNEL" = backports ]; then
  # trixie-backports' kernel: the Raspberry Pi 5's SD controller (sdhci-brcmstb) and its RP1
  # south bridge (Ethernet, USB) are not in trixie's 6.12. Only the kernel comes from there.
  SOURCES+=("deb $MIRROR trixie-backports main")
  KERNEL_HOOK="chroot \"\$1\" apt-get install -y -q -t trixie-backports linux-image-$ARCH"
else
  PACKAGES+=("linux-image-$ARCH")
  KERNEL_HOOK=true
fi
mmdebstrap --variant=minbase --arch="$ARCH" \
  --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  --setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"' \
  --setup-hook="cp '$HERE/initramfs.conf' \"\$1/etc/initramfs-tools/conf.d/junction.conf\"" \
  --customize-hook="cp '$HERE/initramfs-modules' \"\$1/etc/initramfs-tools/modules\"" \
  --customize-hook="$KERNEL_HOOK" \
  --customize-hook='chroot "$1" update-initramfs -u -k all' \
  --customize-hook='cp --remove-destination /etc/resolv.conf "$1/etc/resolv.conf"' \
  --customize-hook='mkdir -p "$1/var/tmp/junction-build"' \
  --customize-hook='if [ "$(chroot "$1" dpkg --print-architecture)" = arm64 ]; then chroot "$1" sh -c "cd /var/tmp/junction-build && apt-get download -q raspi-firmware"; fi' \
  --customize-hook='touch "$1/var/tmp/junction-build/rootfs-done"' \
  trixie "$ROOT" "${SOURCES[@]}"
fi

step "Junction: binary, units, user, settings"
install -D -m 0755 "$BIN" "$ROOT/usr/bin/junction"
install -D -m 0755 "$HERE/grow-data" "$ROOT/usr/lib/junction/grow-data"
install -D -m 0755 "$HERE/report-status" "$ROOT/usr/lib/junction/report-status"
install -D -m 0755 "$HERE/firstboot-system" "$ROOT/usr/lib/junction/firstboot-system"
# SSH for technicians: keys only (authorized_keys from the JUNCTION partition), and no host keys
# in the image: each box makes its own on first boot (firstboot-system).
rm -f "$ROOT"/etc/ssh/ssh_host_*
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n' > "$ROOT/etc/ssh/sshd_config.d/junction.conf"
for unit in junction.service junction-firstboot.service junction-growdata.service junction-report.service junction-report.timer \
            junction-health.service junction-update.path junction-update.service junction-update-settle.service \
            junction-settings.path junction-settings.service; do
  install -D -m 0644 "$REPO/systemd/$unit" "$ROOT/etc/systemd/system/$unit"
done
install -D -m 0644 "$REPO/systemd/journald.conf.d/junction.conf" "$ROOT/etc/systemd/journald.conf.d/junction.conf"
install -D -m 0644 "$REPO/systemd/systemd-bless-boot.service.d/junction.conf" "$ROOT/etc/systemd/system/systemd-bless-boot.service.d/junction.conf"
install -D -m 0644 "$HERE/network/20-wired.network" "$ROOT/etc/systemd/network/20-wired.network"
install -D -m 0644 "$HERE/junction.toml" "$ROOT/usr/share/junction/junction.toml.example"
chroot "$ROOT" id junction >/dev/null 2>&1 || chroot "$ROOT" useradd --system --user-group --home-dir /var/lib/junction --no-create-home --shell /usr/sbin/nologin junction
mkdir -p "$ROOT/var/lib/junction" "$ROOT/boot/firmware" "$ROOT/etc/junction"
chroot "$ROOT" chown root:junction /etc/junction
chmod 0750 "$ROOT/etc/junction"
# Units are enabled with symlinks: systemctl in a foreign chroot is not to be trusted.
wants="$ROOT/etc/systemd/system/multi-user.target.wants"; mkdir -p "$wants" "$ROOT/etc/systemd/system/timers.target.wants"
for unit in junction.service junction-firstboot.service junction-growdata.service junction-update-settle.service; do ln -sf "/etc/systemd/system/$unit" "$wants/$unit"; done
# Updates: the health check gates boot-complete.target (after which systemd-bless-boot keeps a
# slot on trial); the path units hand the daemon's offers (releases, settings) to root.
mkdir -p "$ROOT/etc/systemd/system/boot-complete.target.requires" "$ROOT/etc/systemd/system/paths.target.wants"
ln -sf /etc/systemd/system/junction-health.service "$ROOT/etc/systemd/system/boot-complete.target.requires/junction-health.service"
ln -sf /etc/systemd/system/junction-update.path "$ROOT/etc/systemd/system/paths.target.wants/junction-update.path"
ln -sf /etc/systemd/system/junction-settings.path "$ROOT/etc/systemd/system/paths.target.wants/junction-settings.path"
[ -e "$ROOT/usr/lib/systemd/systemd-bless-boot" ] || die "systemd-bless-boot is not in the rootfs (package systemd-boot): a slot on trial could never be kept"
# What this slot is: its release (the fleet compares it) and the release keys it trusts.
echo "$RELEASE" > "$ROOT/usr/share/junction/release-version"
install -m 0644 "$KEYS" "$ROOT/usr/share/junction/release-keys"
ln -sf /etc/systemd/system/junction-report.timer "$ROOT/etc/systemd/system/timers.target.wants/junction-report.timer"
# systemd-resolved and -timesyncd enable themselves when installed; networkd does not.
ln -sf /lib/systemd/system/systemd-networkd.service "$wants/systemd-networkd.service"
mkdir -p "$ROOT/etc/systemd/system/sockets.target.wants" "$ROOT/etc/systemd/system/network-online.target.wants"
ln -sf /lib/systemd/system/systemd-networkd.socket "$ROOT/etc/systemd/system/sockets.target.wants/systemd-networkd.socket"
ln -sf /lib/systemd/system/systemd-networkd-wait-online.service "$ROOT/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service"
ln -sf /run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
ln -sf /lib/systemd/system/multi-user.target "$ROOT/etc/systemd/system/default.target"
# Each box gets its own machine-id on first boot; the hostname is set by firstboot from device.id.
echo junction > "$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tjunction\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"
: > "$ROOT/etc/machine-id"; rm -f "$ROOT/var/lib/dbus/machine-id"
cat > "$ROOT/etc/fstab" <<EOF
# Junction box. The FAT partition is the one installers edit; the data partition holds the ring.
# / is whichever root slot the boot entry named (root= on the kernel command line): the same
# file system serves slot A and slot B, so it names no partition.
# Both wait up to 5 min for their device (systemd's default is 90 s): on a starved or slow card
# the partitions appeared later than that, the mounts failed, and with them junction.service
# and firstboot, until the next power cycle (seen under emulation on a loaded host). nofail keeps
# the boot itself from waiting.
/dev/root            /                  ext4  noatime,commit=60,errors=remount-ro  0 1
PARTUUID=$DISKID-01  /boot/firmware     vfat  noatime,umask=0022,flush,nofail,x-systemd.device-timeout=5min  0 2
PARTUUID=$DISKID-04  /var/lib/junction  ext4  noatime,lazytime,commit=30,errors=remount-ro,nofail,x-systemd.device-timeout=5min  0 2
EOF
echo "$VERSION" > "$ROOT/etc/junction-image-version"
# Nothing in the image logs in with a password: a technician uses the console as root only after
# setting one (README: "Installing a box").
chroot "$ROOT" passwd --lock root >/dev/null
rm -rf "$ROOT/var/cache/apt/archives/"*.deb "$ROOT/var/lib/apt/lists/"*

step "Boot files on the FAT partition"
BOOT="$WORK/boot"; mkdir -p "$BOOT/EFI/BOOT" "$BOOT/loader/entries" "$BOOT/junction/a"
KVER=$(ls "$ROOT/lib/modules" | sort -V | tail -1)
cp "$ROOT/boot/vmlinuz-$KVER" "$BOOT/junction/a/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$BOOT/junction/a/initrd.img"
# panic=10: a kernel that panics restarts after 10 s instead of hanging until someone climbs the
# pole (on a slot on trial that boot uses one of its tries). Seen under QEMU's emulation.
CMDLINE="root=PARTUUID=$DISKID-02 rootfstype=ext4 rootwait ro fsck.repair=yes panic=10 $CONSOLE quiet junction.slot=a"
cp "$ROOT/usr/lib/systemd/boot/efi/$EFI_SRC" "$BOOT/EFI/BOOT/$EFI_NAME"
# No default: systemd-boot takes the first entry in its order (entries out of tries last, then
# the highest version), which is how an update makes its slot the next boot's first try.
printf 'timeout 0\neditor no\n' > "$BOOT/loader/loader.conf"
# Slot A as flashed: kept (no boot counter), generation 1. The layout of BootEntries.install.
printf 'title Junction %s (slot a)\nsort-key junction\nversion 1\nlinux /junction/a/vmlinuz\ninitrd /junction/a/initrd.img\noptions %s\n' \
  "$RELEASE" "$CMDLINE" > "$BOOT/loader/entries/junction-a.conf"
printf '# The root slots: name, root= for its kernel, the device an update writes.\na PARTUUID=%s-02 /dev/disk/by-partuuid/%s-02\nb PARTUUID=%s-03 /dev/disk/by-partuuid/%s-03\n' \
  "$DISKID" "$DISKID" "$DISKID" "$DISKID" > "$BOOT/junction/slots"
if [ "$ARCH" = arm64 ]; then
  # Raspberry Pi: the GPU firmware (Pi 4) or the EEPROM bootloader (Pi 5) reads config.txt,
  # loads the kernel, the initramfs and the device tree, and passes cmdline.txt. The device trees
  # are the kernel's own (6.12: /usr/lib/linux-image-V; newer: /usr/lib/modules/V/dtb).
  dpkg-deb -x "$(ls "$ROOT"/var/tmp/junction-build/raspi-firmware_*.deb)" "$WORK/rpi"
  cp -r "$WORK/rpi/usr/lib/raspi-firmware/." "$BOOT/"
  DTBS="$ROOT/usr/lib/linux-image-$KVER/broadcom"
  [ -d "$DTBS" ] || DTBS="$ROOT/usr/lib/modules/$KVER/dtb/broadcom"
  cp "$DTBS/"bcm2711-*.dtb "$BOOT/"
  # The Pi 5 only where the kernel can read its SD card (sdhci-brcmstb) and reach its Ethernet
  # (RP1): trixie-backports' kernel, not trixie's 6.12.
  PI5=no
  if ls "$DTBS"/bcm2712-rpi-5-b.dtb >/dev/null 2>&1 && find "$ROOT/usr/lib/modules/$KVER" -name 'sdhci-brcmstb.ko*' | grep -q . \
     && find "$ROOT/usr/lib/modules/$KVER" -name 'rp1*.ko*' | grep -q .; then
    PI5=yes
    cp "$DTBS/"bcm2712-*.dtb "$BOOT/"
    # D0-stepping boards (2 GB, and the later 4/8/16 GB): the firmware asks for the downstream name.
    [ -f "$DTBS/bcm2712-d-rpi-5-b.dtb" ] && cp "$DTBS/bcm2712-d-rpi-5-b.dtb" "$BOOT/bcm2712d0-rpi-5-b.dtb"
  fi
  echo "Raspberry Pi boot files: Pi 4 yes, Pi 5 $PI5 (kernel $KVER)"
  cat > "$BOOT/config.txt" <<'EOF'
# Raspberry Pi 4 and 5 boot settings for Junction. Installers do not need to change anything
# here: the box's settings are in junction.toml.
arm_64bit=1
enable_uart=1
upstream_kernel=1
kernel=junction/a/vmlinuz
initramfs junction/a/initrd.img followkernel
cmdline=cmdline.txt
disable_overscan=1
gpu_mem=16
EOF
  # Pi 5's debug UART is ttyAMA10, Pi 4's GPIO UART ttyS1 (the last one present is the console).
  # The Pi's firmware reads this directly, without systemd-boot: it always starts slot A (updates
  # on a Pi need tryboot or U-Boot's EFI, README: "Updating boxes").
  echo "root=PARTUUID=$DISKID-02 rootfstype=ext4 rootwait ro fsck.repair=yes panic=10 console=tty0 console=ttyAMA10,115200 console=ttyS1,115200 quiet junction.slot=a" > "$BOOT/cmdline.txt"
fi
# The installer's files, with Windows line endings so any editor shows them right.
sed 's/$/\r/' "$HERE/junction.toml" > "$BOOT/junction.toml"
sed 's/$/\r/' "$HERE/README.txt" > "$BOOT/README.txt"

step "Filesystems"
FAT="$WORK/fat.img" ROOTIMG="$WORK/root.img" DATA="$WORK/data.img"
mkfs.vfat -C -F 32 -n JUNCTION -i "$DISKID" "$FAT" $((FAT_MIB * 1024)) >/dev/null
(cd "$BOOT" && for d in $(find . -mindepth 1 -type d | sed 's|^\./||' | sort); do mmd -i "$FAT" "::$d"; done
 for f in $(find . -type f | sed 's|^\./||' | sort); do mcopy -i "$FAT" "$f" "::$f"; done)
used_kib=$(du -sk "$ROOT" | cut -f1)
ROOT_MIB=$SLOT_MIB
[ $(( used_kib * 13 / 10 / 1024 + 100 )) -le "$SLOT_MIB" ] || die "the root filesystem ($((used_kib / 1024)) MiB) does not fit a ${SLOT_MIB} MiB slot with room to spare: SLOT_MIB= a larger one (every release of a card must fit the card's slots)"

# The build's leftovers stay out of the card (kept in the work folder for --reuse-rootfs).
mv "$ROOT/var/tmp/junction-build" "$WORK/junction-build"
mkfs.ext4 -q -L junction-root -d "$ROOT" -E root_owner=0:0 "$ROOTIMG" "${ROOT_MIB}M"
mkdir -p "$WORK/data"
mkfs.ext4 -q -L junction-data -m 0 -d "$WORK/data" "$DATA" "${DATA_MIB}M"

step "Disk image"
IMG="$OUT/$NAME.img"
TOTAL_MIB=$((FIRST_MIB + FAT_MIB + 2 * ROOT_MIB + DATA_MIB))
rm -f "$IMG"; truncate -s "${TOTAL_MIB}M" "$IMG"
sfdisk --quiet "$IMG" <<EOF
label: dos
label-id: 0x$DISKID
start=${FIRST_MIB}MiB, size=${FAT_MIB}MiB, type=c, bootable
start=$((FIRST_MIB + FAT_MIB))MiB, size=${ROOT_MIB}MiB, type=83
start=$((FIRST_MIB + FAT_MIB + ROOT_MIB))MiB, size=${ROOT_MIB}MiB, type=83
start=$((FIRST_MIB + FAT_MIB + 2 * ROOT_MIB))MiB, size=${DATA_MIB}MiB, type=83
EOF
dd if="$FAT" of="$IMG" bs=1M seek=$FIRST_MIB conv=notrunc,sparse status=none
dd if="$ROOTIMG" of="$IMG" bs=1M seek=$((FIRST_MIB + FAT_MIB)) conv=notrunc,sparse status=none
dd if="$DATA" of="$IMG" bs=1M seek=$((FIRST_MIB + FAT_MIB + 2 * ROOT_MIB)) conv=notrunc,sparse status=none
if [ -n "$BUNDLE_KEY" ]; then
  step "Update bundle $RELEASE (signed with $(basename "$BUNDLE_KEY"))"
  "$PACKER" update pack --rootfs "$ROOTIMG" --kernel "$BOOT/junction/a/vmlinuz" --initrd "$BOOT/junction/a/initrd.img" \
    --version "$RELEASE" --arch "$ARCH" --key "$BUNDLE_KEY" --out "$OUT/junction-$RELEASE-$ARCH.jub" --notes "image $VERSION"
fi
mv "$WORK/junction-build" "$ROOT/var/tmp/junction-build"
sfdisk --dump "$IMG"

step "Compressing"
zstd -q -f -T0 -10 "$IMG" -o "$IMG.zst"
(cd "$OUT" && sha256sum "$NAME.img.zst" > "$NAME.img.zst.sha256")
[ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
raw=$(du -m --apparent-size "$IMG" | cut -f1); packed=$(du -m "$IMG.zst" | cut -f1)
printf '\nimage: %s (%s MiB raw, %s MiB compressed, root %s MiB used) built in %ss\n' "$IMG.zst" "$raw" "$packed" "$((used_kib / 1024))" "$SECONDS"
echo "image: flash it with: zstd -dc $IMG.zst | sudo dd of=/dev/sdX bs=4M conv=fsync   (or Raspberry Pi Imager / balenaEtcher)"
