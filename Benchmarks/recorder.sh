#!/usr/bin/env bash
# make bench: junction vs FFmpeg's segment muxer recording the same synthetic RTSP camera
# (1080p25, H.264 4 Mbit/s) side by side, on loopback. Reports CPU seconds, max RSS, private
# dirty memory, bytes written per media byte, and the ratios junction/ffmpeg, plus the size of
# the release binary. Results go to Benchmarks/results/recorder-<time>.txt.
set -euo pipefail
JUNCTION=${1:?usage: recorder.sh path/to/junction}
DURATION=${BENCH_SECONDS:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /var/tmp/junction-bench.XXXXXX)
mkdir -p "$HERE/results"
OUT="$HERE/results/recorder-$(date -u +%Y%m%dT%H%M%SZ).txt"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
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

mkdir -p "$WORK/junction" "$WORK/ffmpeg"
cat > "$WORK/junction.toml" <<TOML
[device]
id = "bench"
[camera]
url = "$URL"
[storage]
path = "$WORK/junction"
max_bytes = "4GB"
reserve_bytes = "100MB"
segment_seconds = 10
[log]
level = "warning"
TOML

/usr/bin/time -v -o "$WORK/junction.time" "$JUNCTION" run --config "$WORK/junction.toml" > "$WORK/junction.log" 2>&1 &
JT=$!; pids+=($JT)
/usr/bin/time -v -o "$WORK/ffmpeg.time" ffmpeg -nostdin -loglevel error -rtsp_transport tcp -i "$URL" -c copy \
  -f segment -segment_time 10 -segment_format mp4 -reset_timestamps 1 "$WORK/ffmpeg/%05d.mp4" > "$WORK/ffmpeg.log" 2>&1 &
FT=$!; pids+=($FT)
sleep 1
JP=$(pgrep -P "$JT" | head -1); FP=$(pgrep -P "$FT" | head -1)
echo "recording for $DURATION s (junction pid $JP, ffmpeg pid $FP)..."
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sleep 10
J0=$(ticks "$JP"); F0=$(ticks "$FP")
sleep $((DURATION - 10))
J1=$(ticks "$JP"); F1=$(ticks "$FP")
HZ=$(getconf CLK_TCK)
sync
read_io() { awk '/^write_bytes/ {print $2}' "/proc/$1/io"; }
read_dirty() { awk '/^Private_Dirty/ {print $2}' "/proc/$1/smaps_rollup"; }
JW=$(read_io "$JP"); FW=$(read_io "$FP"); JD=$(read_dirty "$JP"); FD=$(read_dirty "$FP")
kill -TERM "$JP"; kill -INT "$FP"
wait "$JT" || true; wait "$FT" || true

cpu() { awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u+s}' "$1"; }
rss() { awk -F': ' '/Maximum resident/ {print $2}' "$1"; }
media() { find "$1" -name '*.mp4' -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }
JC=$(cpu "$WORK/junction.time"); FC=$(cpu "$WORK/ffmpeg.time")
JR=$(rss "$WORK/junction.time"); FR=$(rss "$WORK/ffmpeg.time")
JM=$(media "$WORK/junction"); FM=$(media "$WORK/ffmpeg")
SIZE=$(stat -c %s "$JUNCTION")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
{
  echo "# junction vs ffmpeg -f segment, $(date -u +%FT%TZ), $(nproc) cores, ${DURATION} s of 1080p25 H.264 4 Mbit/s over RTSP/TCP (loopback)"
  printf '%-28s %14s %14s %8s\n' "metric" "junction" "ffmpeg" "ratio"
  printf '%-28s %14s %14s %8s\n' "CPU seconds (user+sys)" "$JC" "$FC" "$(ratio "$JC" "$FC")"
  JS=$(awk -v a="$J0" -v b="$J1" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}')
  FS=$(awk -v a="$F0" -v b="$F1" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}')
  printf '%-28s %14s %14s %8s\n' "CPU s, steady (10 s..end)" "$JS" "$FS" "$(ratio "$JS" "$FS")"
  printf '%-28s %14s %14s %8s\n' "max RSS (kB)" "$JR" "$FR" "$(ratio "$JR" "$FR")"
  printf '%-28s %14s %14s %8s\n' "Private_Dirty (kB)" "$JD" "$FD" "$(ratio "$JD" "$FD")"
  printf '%-28s %14s %14s\n' "media bytes (segments)" "$JM" "$FM"
  printf '%-28s %14s %14s\n' "bytes written (io)" "$JW" "$FW"
  printf '%-28s %14s %14s %8s\n' "write amplification" "$(ratio "$JW" "$JM")" "$(ratio "$FW" "$FM")" ""
  printf '%-28s %14s\n' "junction binary (bytes)" "$SIZE"
  echo "targets: CPU <= 0.7x ffmpeg, RSS <= 0.7x, write amplification <= 1.02, binary <= 30 MB"
} | tee "$OUT"
echo "results: $OUT"
