#!/bin/bash
# Builds the `junction` that goes on the image: release, static Swift stdlib, stripped, linked
# against Debian trixie's own glibc and FFmpeg 7.1 for the image's architecture. Driven by
# `make release-arm64` and `make release-amd64`.
#
#   image/cross-build.sh --arch arm64|amd64 [--work DIR] [--product junction]
#
# The compiler is Debian sid's Swift (trixie's 6.0 is too old for the package mirror's
# tools-version 6.2 packages) in a sid amd64 chroot; the target is a trixie sysroot holding the
# headers and libraries to link against plus sid's Swift runtime for that architecture. Facts and
# the route: ../shared/arm64/README.md. Everything is cached under the work folder (default
# .build-cross in the checkout; not in git), each part made once and kept only when whole:
#
#   sid-amd64/              the compiler root (mmdebstrap --variant=apt; ~3.6 GB, ~2 min)
#   sysroot-trixie-ARCH/    trixie headers + libraries (mmdebstrap --variant=extract; ~300 MB,
#                           no emulation) and sid's Swift runtime for ARCH (static libraries too)
#   sdks/, pkgconfig-ARCH/  the Swift SDK bundle, FFmpeg's .pc files pointing into the sysroot
#   src/, build-ARCH/       a copy of the checkout, SwiftPM's build folder (later runs are incremental)
#   out/junction-ARCH       the result
#
# It fetches nothing but Debian packages (from MIRROR) and the machine's local Swift package mirror
# (/opt/swift-packages, bind-mounted read-only). Needs root: mmdebstrap, chroot, mount (in a
# private mount namespace, so nothing stays mounted however the script ends).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
ARCH="" WORK="" PRODUCT=junction
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
PACKAGES_MIRROR="${SWIFT_PACKAGES:-/opt/swift-packages}"
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --product) PRODUCT="$2"; shift 2 ;;
    *) echo "cross-build: unknown argument $1 (use --arch arm64|amd64 [--work DIR] [--product NAME])" >&2; exit 2 ;;
  esac
done

die() { printf 'cross-build: %s\n' "$*" >&2; exit 1; }
step() { printf '\n== %s (%ss)\n' "$*" "$SECONDS"; }

case "$ARCH" in
  # Debian builds its Swift for x86_64-pc-linux-gnu (the modules are named so) and aarch64-unknown-linux-gnu.
  arm64) TRIPLE=aarch64-unknown-linux-gnu MULTIARCH=aarch64-linux-gnu ELF_MACHINE=183 ;;
  amd64) TRIPLE=x86_64-pc-linux-gnu MULTIARCH=x86_64-linux-gnu ELF_MACHINE=62 ;;
  *) die "--arch must be arm64 or amd64 (got '${ARCH}')" ;;
esac
[ "$(id -u)" = 0 ] || die "this needs root (mmdebstrap keeps file owners; chroot and mount need it): run it with sudo"
[ "$(dpkg --print-architecture)" = amd64 ] || die "the compiler root is a sid amd64 chroot: run this on an x86_64 machine"
for tool in mmdebstrap apt-get dpkg-deb rsync unshare chroot curl readelf; do
  command -v "$tool" >/dev/null || die "$tool is missing: run 'make image-deps'"
done
[ -d "$PACKAGES_MIRROR" ] || die "the local Swift package mirror $PACKAGES_MIRROR is missing (set SWIFT_PACKAGES=DIR)"

WORK="${WORK:-$REPO/.build-cross}"
mkdir -p "$WORK"; W="$(cd "$WORK" && pwd)"
CHROOT="$W/sid-amd64"
SYSROOT="$W/sysroot-trixie-$ARCH"
SDK_NAME="junction-trixie-$ARCH"
BUNDLE="$W/sdks/$SDK_NAME.artifactbundle"
PKGCONFIG="$W/pkgconfig-$ARCH"
SRC="$W/src"
SCRATCH="$W/build-$ARCH"
OUT="$W/out/$PRODUCT-$ARCH"
KEY=/usr/share/keyrings/debian-archive-keyring.gpg
# sid's Release file is past its Valid-Until against some machines' clocks; harmless elsewhere.
APTOPT=(--aptopt='Acquire::Check-Valid-Until "false"' --aptopt='Acquire::Check-Date "false"')

# Room: the compiler root and a release build of the whole package graph.
need_gb=3
[ -f "$CHROOT/.junction-done" ] || need_gb=$((need_gb + 5))
[ -f "$SYSROOT/.junction-done" ] || need_gb=$((need_gb + 1))
free_gb=$(( $(df -Pk "$W" | awk 'NR == 2 {print $4}') / 1024 / 1024 ))
[ "$free_gb" -ge "$need_gb" ] || die "$W has ${free_gb} GB free; this step needs about ${need_gb} GB (free some, or pass --work DIR on a bigger disk)"

fetch_ok() { curl -fsS -m 30 -o /dev/null "$MIRROR/dists/$1/Release" 2>/dev/null; }
need_mirror() {
  fetch_ok "$1" || die "the Debian mirror $MIRROR does not answer for '$1' (tried $MIRROR/dists/$1/Release): check the network or set MIRROR=URL"
}

# debootstrap_into DIR SUITE MMDEBSTRAP-OPTIONS...: into DIR.tmp, renamed to DIR only when whole,
# so a run cut short leaves no half root.
debootstrap_into() {
  local dir="$1" suite="$2"; shift 2
  rm -rf "$dir.tmp"
  if ! nice -n 10 mmdebstrap --quiet "$@" "$suite" "$dir.tmp" "deb [signed-by=$KEY] $MIRROR $suite main"; then
    rm -rf "$dir.tmp"
    die "mmdebstrap failed for $dir (see above); nothing was kept, run it again"
  fi
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}

step "Compiler root: Debian sid amd64 with swiftlang ($CHROOT)"
if [ -f "$CHROOT/.junction-done" ]; then echo "cached"; else
  need_mirror sid
  # No FFmpeg in here: every FFmpeg header and library must come from the target's sysroot.
  debootstrap_into "$CHROOT" sid --variant=apt --arch=amd64 "${APTOPT[@]}" \
    --include=swiftlang,pkg-config,git,ca-certificates,zlib1g-dev
  printf '[url "/opt/swift-packages/"]\n\tinsteadOf = https://github.com/\n[safe]\n\tdirectory = *\n' > "$CHROOT/etc/gitconfig"
  touch "$CHROOT/.junction-done"
fi
SWIFT_VERSION=$(chroot "$CHROOT" dpkg-query -W -f='${Version}' swiftlang)
echo "swiftlang $SWIFT_VERSION"

step "Target sysroot: Debian trixie $ARCH ($SYSROOT)"
if [ -f "$SYSROOT/.junction-done" ] && [ "$(cat "$SYSROOT/.junction-done")" = "$SWIFT_VERSION" ]; then echo "cached"; else
  need_mirror trixie
  # Extract only: no maintainer scripts run, so no emulation is needed for a foreign architecture.
  debootstrap_into "$SYSROOT" trixie --variant=extract --arch="$ARCH" "${APTOPT[@]}" \
    --include=libc6-dev,libstdc++-14-dev,libgcc-14-dev,zlib1g-dev,libavformat-dev,libavcodec-dev,libavutil-dev,libswscale-dev,libssl-dev
  # The extract variant has no merged /usr (libc.so's linker script names /lib/...).
  for d in lib lib64 bin sbin; do [ -e "$SYSROOT/$d" ] || [ ! -d "$SYSROOT/usr/$d" ] || ln -s "usr/$d" "$SYSROOT/$d"; done
  # Absolute symlinks (libm.so -> /lib/...) would resolve into the chroot's own sid libraries
  # when the sysroot is read from inside it: make each relative to the sysroot.
  find "$SYSROOT" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
    ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$SYSROOT$(readlink "$link")")" "$link"
  done

  # sid's Swift runtime, modules and static libraries for ARCH, from the same swiftlang version
  # as the compiler. For amd64 the chroot already has them; for arm64 they come from sid's
  # arm64 packages (~500 MB, unpacked without installing).
  T="$W/swift-runtime.tmp"; rm -rf "$T"; mkdir -p "$T"
  if [ "$ARCH" = amd64 ]; then
    mkdir -p "$T/usr/libexec/swift/lib"
    cp -a "$CHROOT/usr/libexec/swift/lib/swift" "$CHROOT/usr/libexec/swift/lib/swift_static" "$CHROOT/usr/libexec/swift/lib/clang" "$T/usr/libexec/swift/lib/"
  else
    D="$W/debs"
    . "$HERE/apt-suite.sh"
    apt_suite sid "$ARCH" "$D" || die "cannot read sid's package lists from $MIRROR"
    A=("${APT_SUITE[@]}")
    rm -f "$D"/*swiftlang_*_"$ARCH".deb
    (cd "$D" && apt-get "${A[@]}" download "swiftlang:$ARCH=$SWIFT_VERSION" "libswiftlang:$ARCH=$SWIFT_VERSION") \
      || die "cannot download sid's swiftlang:$ARCH $SWIFT_VERSION (the compiler's version); the mirror may have moved on: delete $CHROOT to take the new one"
    for deb in "$D"/swiftlang_*_"$ARCH".deb "$D"/libswiftlang_*_"$ARCH".deb; do
      dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$T" --wildcards './usr/libexec/swift/lib/swift*' './usr/libexec/swift/lib/clang*' 2>/dev/null || true
    done
    rm -f "$D"/*.deb
  fi
  rm -rf "$T"/usr/libexec/swift/lib/swift/{embedded,host,FrameworkABIBaseline,migrator}
  [ -e "$T/usr/libexec/swift/lib/swift_static/linux/libswiftCore.a" ] || die "sid's swiftlang for $ARCH has no static Swift runtime (libswiftCore.a); cannot link --static-swift-stdlib"
  mkdir -p "$SYSROOT/usr/libexec/swift/lib"
  cp -a "$T/usr/libexec/swift/lib/." "$SYSROOT/usr/libexec/swift/lib/"
  rm -rf "$T"
  # The driver looks for swiftrt.o and the modules under <sdk>/usr/lib/swift{,_static}.
  ln -sfn ../libexec/swift/lib/swift "$SYSROOT/usr/lib/swift"
  ln -sfn ../libexec/swift/lib/swift_static "$SYSROOT/usr/lib/swift_static"
  touch "$SYSROOT/.junction-extra-libssl-dev"
  echo "$SWIFT_VERSION" > "$SYSROOT/.junction-done"
fi
# Packages the sysroot gained after it was first made (libssl-dev: SystemCrypto's libcrypto,
# issue 25): a cached sysroot without them gets them unpacked into it, with the runtime library
# of the same version, instead of being made again.
for pkg in libssl-dev:libssl3t64; do
  dev=${pkg%%:*}; lib=${pkg#*:}
  [ -f "$SYSROOT/.junction-extra-$dev" ] && continue
  D="$W/debs-extra"
  . "$HERE/apt-suite.sh"
  apt_suite trixie "$ARCH" "$D" || die "cannot read trixie's package lists from $MIRROR"
  rm -f "$D"/*.deb
  (cd "$D" && apt-get "${APT_SUITE[@]}" download "$dev:$ARCH" "$lib:$ARCH") || die "cannot download trixie's $dev:$ARCH"
  for deb in "$D"/*.deb; do dpkg-deb -x "$deb" "$SYSROOT"; done
  find "$SYSROOT" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
    ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$SYSROOT$(readlink "$link")")" "$link"
  done
  rm -f "$D"/*.deb
  touch "$SYSROOT/.junction-extra-$dev"
  echo "added $dev and $lib to the sysroot"
done
# newest_version LIBRARY PREFIX: the newest symbol version (GLIBC_2.41, ...) a library defines.
newest_version() { readelf -W -V "$1" | grep -o "${2}_[0-9][0-9.]*" | sed "s/${2}_//" | sort -uV | tail -1; }
LIBDIR="$SYSROOT/usr/lib/$MULTIARCH"
GLIBC_TARGET=$(newest_version "$LIBDIR/libc.so.6" GLIBC)
GLIBCXX_TARGET=$(newest_version "$(readlink -f "$LIBDIR/libstdc++.so.6")" GLIBCXX)
echo "trixie $ARCH: glibc $(zcat "$SYSROOT/usr/share/doc/libc6/changelog.Debian.gz" | sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p'), FFmpeg libavformat $(sed -n 's/^Version: //p' "$LIBDIR/pkgconfig/libavformat.pc")"

step "Swift SDK bundle and pkg-config files"
mkdir -p "$BUNDLE/$ARCH"
ln -sfn "$SYSROOT" "$BUNDLE/$ARCH/sysroot"
cat > "$BUNDLE/info.json" <<EOF
{ "schemaVersion": "1.0",
  "artifacts": { "$SDK_NAME": { "type": "swiftSDK", "version": "$SWIFT_VERSION",
    "variants": [ { "path": "$ARCH", "supportedTriples": ["x86_64-unknown-linux-gnu", "x86_64-pc-linux-gnu"] } ] } } }
EOF
cat > "$BUNDLE/$ARCH/swift-sdk.json" <<EOF
{ "schemaVersion": "4.0",
  "targetTriples": { "$TRIPLE": {
    "sdkRootPath": "sysroot",
    "swiftResourcesPath": "sysroot/usr/lib/swift",
    "swiftStaticResourcesPath": "sysroot/usr/lib/swift_static",
    "toolsetPaths": ["toolset.json"] } } }
EOF
cat > "$BUNDLE/$ARCH/toolset.json" <<'EOF'
{ "schemaVersion": "1.0",
  "swiftCompiler": { "extraCLIOptions": ["-use-ld=lld"] },
  "cCompiler": { "extraCLIOptions": ["-fuse-ld=lld"] },
  "cxxCompiler": { "extraCLIOptions": ["-fuse-ld=lld"] },
  "linker": { "path": "/usr/libexec/swift/bin/ld.lld" } }
EOF
# FFmpeg's .pc files name /usr/include/MULTIARCH and /usr/lib/MULTIARCH (absolute, not from
# ${prefix}): inside the amd64 chroot those are the chroot's own sid directories, whose glibc
# headers clash with trixie's. A copy with every /usr path moved into the sysroot means each -I
# and -L points at trixie's files, whichever architecture.
rm -rf "$PKGCONFIG"; mkdir -p "$PKGCONFIG"
for d in "$SYSROOT/usr/lib/$MULTIARCH/pkgconfig" "$SYSROOT/usr/share/pkgconfig"; do
  [ -d "$d" ] || continue
  for pc in "$d"/*.pc; do
    sed -E -e "s#^([a-z_]+)=/usr#\1=$SYSROOT/usr#" -e "s#(-[IL])/usr#\1$SYSROOT/usr#g" "$pc" > "$PKGCONFIG/$(basename "$pc")"
  done
done
grep -q "^includedir=$SYSROOT/usr" "$PKGCONFIG/libavformat.pc" && ! grep -Eq '(=| -[IL])/usr' "$PKGCONFIG"/libav*.pc \
  || die "FFmpeg's .pc files in the sysroot name paths this script does not move into it: see $PKGCONFIG"

step "Source: a copy of the checkout (only what git would keep)"
mkdir -p "$SRC"
# mtimes kept, so SwiftPM rebuilds only what changed.
rsync -a --delete --exclude=/.git --filter=':- .gitignore' "$REPO/" "$SRC/"

step "Building $PRODUCT for $ARCH (swift build -c release --static-swift-stdlib, in the chroot)"
mkdir -p "$CHROOT/opt/swift-packages" "$CHROOT$W"
# SWIFT_BUILD_FLAGS: more flags for swift build (measuring, e.g. "-Xlinker --icf=all").
BUILD="cd '$SRC' && swift build -c release --static-swift-stdlib -Xlinker -s --product '$PRODUCT' \
  --scratch-path '$SCRATCH' --swift-sdks-path '$W/sdks' --swift-sdk '$SDK_NAME' --pkg-config-path '$PKGCONFIG' ${SWIFT_BUILD_FLAGS:-}"
# A private mount namespace: the mounts end with the build, however it ends.
unshare --mount --propagation private /bin/bash -euo pipefail -c '
  R=$1 W=$2 PKGS=$3 BUILD=$4
  mount -t proc proc "$R/proc"
  mount --rbind /dev "$R/dev"
  mount --bind "$PKGS" "$R/opt/swift-packages"; mount -o remount,bind,ro "$R/opt/swift-packages"
  mount --bind "$W" "$R$W"
  nice -n 10 chroot "$R" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin LANG=C.UTF-8 TMPDIR=/tmp /bin/bash -c "$BUILD"
' cross-build "$CHROOT" "$W" "$PACKAGES_MIRROR" "$BUILD" || die "the build failed (see above); fix it and run again: what was built is kept"

step "Checking the binary"
BIN="$SCRATCH/$TRIPLE/release/$PRODUCT"
[ -f "$BIN" ] || die "swift build said it succeeded but $BIN is missing"
mkdir -p "$(dirname "$OUT")"
cp "$BIN" "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
machine=$(od -An -t u2 -j 18 -N 2 "$OUT" | tr -d ' ')
[ "$machine" = "$ELF_MACHINE" ] || die "$OUT is ELF machine $machine, not $ARCH ($ELF_MACHINE)"
glibc=$(newest_version "$OUT" GLIBC)
glibcxx=$(newest_version "$OUT" GLIBCXX)
needed=$(readelf -d "$OUT" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
ffmpeg=$(echo "$needed" | tr ' ' '\n' | grep -E '^lib(avformat|avcodec|avutil|swscale)\.so' | tr '\n' ' ' || true)
[ -n "$ffmpeg" ] || die "$OUT links no FFmpeg library: the link did not use the sysroot"
# Every library it needs must be in trixie with that soname (the FFmpeg ones above all), and no
# symbol version may be newer than trixie's libraries define.
for so in $needed; do
  [ -e "$LIBDIR/$so" ] || [ -e "$SYSROOT/usr/lib/$so" ] || die "$OUT needs $so, which trixie does not have: it was linked against the wrong libraries"
done
newer() { [ -n "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -1)" != "$2" ]; }
newer "$glibc" "$GLIBC_TARGET" && die "$OUT needs GLIBC_$glibc, newer than trixie's GLIBC_$GLIBC_TARGET"
newer "$glibcxx" "$GLIBCXX_TARGET" && die "$OUT needs GLIBCXX_$glibcxx, newer than trixie's GLIBCXX_$GLIBCXX_TARGET"
size=$(stat -c %s "$OUT")
printf '\ncross-build: %s\n' "$OUT"
printf '  size:    %s bytes (%s MB), stripped, static Swift stdlib\n' "$size" "$(awk -v s="$size" 'BEGIN {printf "%.2f", s / 1e6}')"
printf '  needs:   GLIBC_%s (trixie defines up to %s), GLIBCXX_%s (trixie: %s)\n' "$glibc" "$GLIBC_TARGET" "${glibcxx:-none}" "$GLIBCXX_TARGET"
printf '  FFmpeg:  %s\n' "$ffmpeg"
printf '  all:     %s\n' "$needed"
printf '  built in %ss\n' "$SECONDS"
