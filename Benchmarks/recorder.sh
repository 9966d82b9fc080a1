#!/usr/bin/env bash
# make bench: junction vs FFmpeg's segment muxer recording the same synthetic RTSP camera
# (1080p25, H.264 4 Mbit/s) side by side, on loopback, plus junction with per-fragment sync off
# (storage.sync_fragments = false) in the same run, so the cost of losing at most ~1 s to a power
# cut is measured against both. Reports CPU seconds, max RSS, private dirty memory, bytes
# written per media byte, and the ratios against ffmpeg, plus the size of the release binary.
# As root, each recorder writes to an ext4 of its own on a loop device, mounted as on the box
# (noatime,lazytime,commit=30), and the bytes the device took (data, metadata and journal: what
# an SD card sees) are reported too. Results go to Benchmarks/results/recorder-<time>.txt.
set -euo pipefail
JUNCTION=${1:?usage: recorder.sh path/to/junction}
DURATION=${BENCH_SECONDS:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /var/tmp/junction-bench.XXXXXX)
mkdir -p "$HERE/results"
OUT="$HERE/results/recorder-$(date -u +%Y%m%dT%H%M%SZ).txt"
pids=()
loops=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  for d in "${loops[@]}"; do umount "$WORK/$d" 2>/dev/null || true; losetup -d "$(cat "$WORK/$d.dev")" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "making a 30 s 1080p25 4 Mbit/s clip..."
ffmpeg -nostdin -y -loglevel error -f lavfi -i "testsrc2=size=1920x1080:rate=25,noise=alls=8:allf=t" \
  -c:v libx264 -preset veryfast -g 50 -keyint_min 50 -sc_threshold 0 -b:v 4M -maxrate 4M -bufsize 4M -pix_fmt yuv420p \
  -t 30 "$WORK/clip.mp4"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 "$ROOT/Tests/Support/rtsp_camera.py" --clip "$WORK/clip.mp4" --port "$PORT" > "$WORK/camera.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 450); do grep -q READY "$WORK/camera.log" && break; sleep 0.1; done
URL="rtsp://127.0.0.1:$PORT/cam"

# One filesystem per recorder: a loop-mounted ext4 as on the box's data partition (root), or a
# plain directory (then only the process's own write_bytes are known).
DEVICE=no
[ "$(id -u)" = 0 ] && command -v losetup >/dev/null && DEVICE=yes
for d in junction junction-nosync ffmpeg; do
  mkdir -p "$WORK/$d"
  if [ "$DEVICE" = yes ]; then
    truncate -s 2G "$WORK/$d.img"; mkfs.ext4 -q -F -m 0 "$WORK/$d.img"
    losetup -f --show "$WORK/$d.img" > "$WORK/$d.dev"
    mount -o noatime,lazytime,commit=30 "$(cat "$WORK/$d.dev")" "$WORK/$d"; loops+=("$d")
  fi
done
# Sectors (512 bytes) the device has taken: data, metadata and journal.
device_written() { awk '{print $7 * 512}' "/sys/block/$(basename "$(cat "$WORK/$1.dev")")/stat"; }

for variant in junction junction-nosync; do
  cat > "$WORK/$variant.toml" <<TOML
[device]
id = "bench"
[camera]
url = "$URL"
[storage]
path = "$WORK/$variant"
max_bytes = "1GB"
reserve_bytes = "100MB"
segment_seconds = 10
sync_fragments = $([ "$variant" = junction ] && echo true || echo false)
[log]
level = "warning"
TOML
done
[ "$DEVICE" = yes ] && for d in "${loops[@]}"; do device_written "$d" > "$WORK/$d.dev0"; done

/usr/bin/time -v -o "$WORK/junction.time" "$JUNCTION" run --config "$WORK/junction.toml" > "$WORK/junction.log" 2>&1 &
JT=$!; pids+=($JT)
/usr/bin/time -v -o "$WORK/junction-nosync.time" "$JUNCTION" run --config "$WORK/junction-nosync.toml" > "$WORK/junction-nosync.log" 2>&1 &
NT=$!; pids+=($NT)
/usr/bin/time -v -o "$WORK/ffmpeg.time" ffmpeg -nostdin -loglevel error -rtsp_transport tcp -i "$URL" -c copy \
  -f segment -segment_time 10 -segment_format mp4 -reset_timestamps 1 "$WORK/ffmpeg/%05d.mp4" > "$WORK/ffmpeg.log" 2>&1 &
FT=$!; pids+=($FT)
sleep 1
JP=$(pgrep -P "$JT" | head -1); NP=$(pgrep -P "$NT" | head -1); FP=$(pgrep -P "$FT" | head -1)
echo "recording for $DURATION s (junction pid $JP, junction without fragment sync pid $NP, ffmpeg pid $FP)..."
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sleep 10
J0=$(ticks "$JP"); N0=$(ticks "$NP"); F0=$(ticks "$FP")
sleep $((DURATION - 10))
J1=$(ticks "$JP"); N1=$(ticks "$NP"); F1=$(ticks "$FP")
HZ=$(getconf CLK_TCK)
read_dirty() { awk '/^Private_Dirty/ {print $2}' "/proc/$1/smaps_rollup"; }
JD=$(read_dirty "$JP"); ND=$(read_dirty "$NP"); FD=$(read_dirty "$FP")
kill -TERM "$JP" "$NP"; kill -INT "$FP"
wait "$JT" || true; wait "$NT" || true; wait "$FT" || true
# Everything each recorder left in the page cache goes to its device before counting.
sync
if [ "$DEVICE" = yes ]; then
  for d in "${loops[@]}"; do umount "$WORK/$d"; echo $(( $(device_written "$d") - $(cat "$WORK/$d.dev0") )) > "$WORK/$d.written"; done
fi

cpu() { awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u+s}' "$1"; }
rss() { awk -F': ' '/Maximum resident/ {print $2}' "$1"; }
media() { find "$1" -name '*.mp4' -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }
steady() { awk -v a="$1" -v b="$2" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
JC=$(cpu "$WORK/junction.time"); NC=$(cpu "$WORK/junction-nosync.time"); FC=$(cpu "$WORK/ffmpeg.time")
JS=$(steady "$J0" "$J1"); NS=$(steady "$N0" "$N1"); FS=$(steady "$F0" "$F1")
JR=$(rss "$WORK/junction.time"); NR=$(rss "$WORK/junction-nosync.time"); FR=$(rss "$WORK/ffmpeg.time")
JM=$(media "$WORK/junction"); NM=$(media "$WORK/junction-nosync"); FM=$(media "$WORK/ffmpeg")
SIZE=$(stat -c %s "$JUNCTION")
row() { printf '%-30s %14s %14s %14s %9s %9s\n' "$@"; }
{
  echo "# junction vs ffmpeg -f segment, $(date -u +%FT%TZ), $(nproc) cores, ${DURATION} s of 1080p25 H.264 4 Mbit/s over RTSP/TCP (loopback)"
  echo "# junction: each fragment (<= 1 s) fdatasynced as written; nosync: storage.sync_fragments = false (synced per segment)"
  row "metric" "junction" "nosync" "ffmpeg" "j/ffmpeg" "j/nosync"
  row "CPU seconds (user+sys)" "$JC" "$NC" "$FC" "$(ratio "$JC" "$FC")" "$(ratio "$JC" "$NC")"
  row "CPU s, steady (10 s..end)" "$JS" "$NS" "$FS" "$(ratio "$JS" "$FS")" "$(ratio "$JS" "$NS")"
  row "max RSS (kB)" "$JR" "$NR" "$FR" "$(ratio "$JR" "$FR")" "$(ratio "$JR" "$NR")"
  row "Private_Dirty (kB)" "$JD" "$ND" "$FD" "$(ratio "$JD" "$FD")" "$(ratio "$JD" "$ND")"
  row "media bytes (segments)" "$JM" "$NM" "$FM" "" ""
  if [ "$DEVICE" = yes ]; then
    JW=$(cat "$WORK/junction.written"); NW=$(cat "$WORK/junction-nosync.written"); FW=$(cat "$WORK/ffmpeg.written")
    row "bytes the device took" "$JW" "$NW" "$FW" "$(ratio "$JW" "$FW")" "$(ratio "$JW" "$NW")"
    row "device bytes / media byte" "$(ratio "$JW" "$JM")" "$(ratio "$NW" "$NM")" "$(ratio "$FW" "$FM")" "" ""
  else
    echo "(not root: no loop devices, so the bytes the card would take are not measured)"
  fi
  printf '%-30s %14s\n' "junction binary (bytes)" "$SIZE"
  echo "targets: CPU <= 0.7x ffmpeg, RSS <= 0.7x, device bytes per media byte <= 1.02 (+ what per-fragment sync costs), binary <= 30 MB"
} | tee "$OUT"
echo "results: $OUT"
