#!/bin/bash
# The guard for "one source for every FFmpeg": type-checks the `Media` target (the only Swift
# that sees FFmpeg, through CFFmpeg's shim) against the FFmpeg headers of Debian trixie (7.1, the
# images' libraries) and of sid (the next release), besides this machine's own, with which
# `make test` builds it anyway. Run by `make test` after the build: it reuses that build's
# modules (swift-crypto), so it compiles nothing but Media, a few seconds per FFmpeg.
#
#   Tests/Support/ffmpeg-compat.sh [BUILD_DIR]      # default .build/debug
#
# Headers come from Debian's -dev packages of each suite (four .debs, unpacked, never installed),
# cached under .build-ffmpeg/ with apt lists of their own (image/apt-suite.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD="${1:-.build/debug}"
CACHE="$PWD/.build-ffmpeg"
SUITES="${FFMPEG_SUITES:-trixie sid}"
MULTIARCH=x86_64-linux-gnu
SWIFTC="$(command -v swiftc)"
CLANG="$(dirname "$(readlink -f "$SWIFTC")")/clang"
[ -d "$BUILD/Modules" ] || { echo "ffmpeg-compat: no build at $BUILD (run swift build first)" >&2; exit 2; }
. image/apt-suite.sh

status=0
for suite in $SUITES; do
  dir="$CACHE/$suite"
  if [ ! -f "$dir/.done" ]; then
    apt_suite "$suite" amd64 "$dir/apt"
    rm -rf "$dir/root" "$dir/debs"; mkdir -p "$dir/root" "$dir/debs"
    (cd "$dir/debs" && apt-get "${APT_SUITE[@]}" download libavformat-dev libavcodec-dev libavutil-dev libswscale-dev >/dev/null)
    for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
    rm -rf "$dir/debs"
    touch "$dir/.done"
  fi
  inc="$dir/root/usr/include/$MULTIARCH"
  [ -f "$inc/libavformat/avformat.h" ] || { echo "ffmpeg-compat: $suite's headers are missing under $inc" >&2; exit 2; }
  # Which libavformat the compiler really sees with these flags (its -I comes before the
  # machine's own /usr/include/$MULTIARCH).
  defines=$(echo '#include <libavformat/version.h>' | "$CLANG" -E -dM -I "$inc" -x c -)
  part() { echo "$defines" | awk -v k="LIBAVFORMAT_VERSION_$1" '$2 == k {print $3}'; }
  seen="$(part MAJOR).$(part MINOR).$(part MICRO)"
  expected=$(sed -n 's/^Version: //p' "$dir/root/usr/lib/$MULTIARCH/pkgconfig/libavformat.pc")
  if [ "$seen" != "$expected" ]; then
    echo "ffmpeg-compat: $suite: the compiler sees libavformat $seen, not $suite's $expected" >&2; exit 2
  fi
  t0=$(date +%s)
  if "$SWIFTC" -typecheck -swift-version 6 -parse-as-library -module-name Media Sources/Media/*.swift \
      -I "$BUILD/Modules" -I Sources/CFFmpeg -Xcc -fmodule-map-file=Sources/CFFmpeg/module.modulemap \
      -Xcc -fmodule-map-file=Sources/CLibCrypto/module.modulemap \
      -Xcc -I"$inc" -module-cache-path "$dir/module-cache"; then
    echo "ffmpeg-compat: Media type-checks against $suite's FFmpeg (libavformat $seen) in $(( $(date +%s) - t0 )) s"
  else
    echo "ffmpeg-compat: Media does NOT build against $suite's FFmpeg (libavformat $seen): route the difference through Sources/CFFmpeg/shim.h or a version check in Media" >&2
    status=1
  fi
done
exit $status
