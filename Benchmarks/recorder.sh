#!/usr/bin/env bash
# make bench: junction vs FFmpeg's segment muxer recording the same synthetic RTSP camera
# (1080p25, H.264 4 Mbit/s) side by side, on loopback, plus junction with per-fragment sync off
# (storage.sync_fragments = false), junction with sealing off (storage.seal = false) and junction with
# the activity index on ([activity] enabled = true, decoding the camera's 640x360 sub-stream:
# [activity] stream, issue 14) in the
# same run, so the cost of losing at most ~1 s to a power cut, and of sealing every segment, are
# measured against the same run; and junction reading the camera with its own RTSP client
# ([camera] reader = "junction", issue 25: 64 KiB reads, its own depacketizer) beside the one
# that reads through libavformat, alone and with the activity index on the sub-stream read by
# the same client (readeract: item 4 of issue 25). Reports CPU seconds, max RSS, private dirty memory, bytes
# written per media byte, and the ratios, plus the size of the release binary.
# As root, each recorder writes to an ext4 of its own on a loop device, mounted as on the box
# (noatime,lazytime,commit=30), and the bytes the device took (data, metadata and journal: what
# an SD card sees) are reported too. CPU on a shared 2-core machine is noisy, so the three record
# side by side BENCH_RUNS times (default 3), each run on fresh filesystems, and the table gives
# each run's ratios and their median. Results go to Benchmarks/results/recorder-<time>.txt.
set -euo pipefail
JUNCTION=${1:?usage: recorder.sh path/to/junction}
DURATION=${BENCH_SECONDS:-60}
RUNS=${BENCH_RUNS:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /var/tmp/junction-bench.XXXXXX)
mkdir -p "$HERE/results"
OUT="$HERE/results/recorder-$(date -u +%Y%m%dT%H%M%SZ).txt"
VARIANTS=(junction nosync noseal activity ffmpeg reader readeract)
pids=()
mounted=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  for d in "${mounted[@]}"; do umount "$d" 2>/dev/null || true; done
  for f in "$WORK"/*.dev; do [ -f "$f" ] && losetup -d "$(cat "$f")" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "making a 30 s 1080p25 4 Mbit/s clip..."
ffmpeg -nostdin -y -loglevel error -f lavfi -i "testsrc2=size=1920x1080:rate=25,noise=alls=8:allf=t" \
  -c:v libx264 -preset veryfast -g 50 -keyint_min 50 -sc_threshold 0 -b:v 4M -maxrate 4M -bufsize 4M -pix_fmt yuv420p \
  -t 30 "$WORK/clip.mp4"

# camera NAME CLIP: a synthetic RTSP camera serving CLIP; its URL in CAMERA_URL.
camera() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  /usr/bin/python3 "$ROOT/Tests/Support/rtsp_camera.py" --clip "$2" --port "$port" > "$WORK/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 450); do grep -q READY "$WORK/$1.log" && break; sleep 0.1; done
  CAMERA_URL="rtsp://127.0.0.1:$port/cam"
}
camera camera "$WORK/clip.mp4"
URL=$CAMERA_URL
# The camera's sub-stream, as IP cameras serve one for detection: the same scene at 640x360.
ffmpeg -nostdin -y -loglevel error -f lavfi -i "testsrc2=size=640x360:rate=25,noise=alls=8:allf=t" \
  -c:v libx264 -preset veryfast -g 50 -keyint_min 50 -sc_threshold 0 -b:v 512k -maxrate 512k -bufsize 512k -pix_fmt yuv420p \
  -t 30 "$WORK/sub.mp4"
camera sub "$WORK/sub.mp4"
SUBURL=$CAMERA_URL

# One filesystem per recorder: a loop-mounted ext4 as on the box's data partition (root), or a
# plain directory (then the bytes the card would take are not measured).
DEVICE=no
[ "$(id -u)" = 0 ] && command -v losetup >/dev/null && DEVICE=yes
# Sectors (512 bytes) a loop device has taken: data, metadata and journal.
device_written() { awk '{print $7 * 512}' "/sys/block/$(basename "$(cat "$WORK/$1.dev")")/stat"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
media() { find "$1" -name '*.mp4' -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }
cpu() { awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u+s}' "$1"; }
rss() { awk -F': ' '/Maximum resident/ {print $2}' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
ratio4() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.4f", a / b; else print "n/a" }'; }
HZ=$(getconf CLK_TCK)

# run_once N: the three recorders side by side for DURATION s; facts into $WORK/rN/<variant>.*
run_once() {
  local R="$WORK/r$1" v
  mkdir -p "$R"
  for v in "${VARIANTS[@]}"; do
    mkdir -p "$R/$v"
    if [ "$DEVICE" = yes ]; then
      truncate -s 2G "$R/$v.img"; mkfs.ext4 -q -F -m 0 "$R/$v.img"
      losetup -f --show "$R/$v.img" > "$WORK/r$1-$v.dev"
      mount -o noatime,lazytime,commit=30 "$(cat "$WORK/r$1-$v.dev")" "$R/$v"; mounted+=("$R/$v")
      device_written "r$1-$v" > "$R/$v.dev0"
    fi
  done
  for v in junction nosync noseal activity reader readeract; do
    cat > "$R/$v.toml" <<TOML
[device]
id = "bench"
[camera]
url = "$URL"
reader = "$(case $v in reader*) echo junction ;; *) echo ffmpeg ;; esac)"
[storage]
path = "$R/$v"
max_bytes = "1GB"
reserve_bytes = "100MB"
segment_seconds = 10
sync_fragments = $([ "$v" = nosync ] && echo false || echo true)
seal = $([ "$v" = noseal ] && echo false || echo true)
[activity]
enabled = $(case $v in *act*) echo true ;; *) echo false ;; esac)
$(case $v in *act*) echo "stream = \"$SUBURL\"" ;; esac)
[log]
level = "warning"
TOML
  done
  local tp=() pp=() i
  for v in "${VARIANTS[@]}"; do
    if [ "$v" = ffmpeg ]; then
      /usr/bin/time -v -o "$R/ffmpeg.time" ffmpeg -nostdin -loglevel error -rtsp_transport tcp -i "$URL" -c copy \
        -f segment -segment_time 10 -segment_format mp4 -reset_timestamps 1 "$R/ffmpeg/%05d.mp4" > "$R/ffmpeg.log" 2>&1 &
    else
      /usr/bin/time -v -o "$R/$v.time" "$JUNCTION" run --config "$R/$v.toml" > "$R/$v.log" 2>&1 &
    fi
    tp+=($!)
  done
  pids+=("${tp[@]}")
  sleep 1
  for i in "${!VARIANTS[@]}"; do pp+=("$(pgrep -P "${tp[$i]}" | head -1)"); done
  echo "run $1 of $RUNS: recording for $DURATION s (${VARIANTS[*]}: ${pp[*]})..."
  sleep 10
  for i in "${!VARIANTS[@]}"; do ticks "${pp[$i]}" > "$R/${VARIANTS[$i]}.t0"; done
  # The steady state, from 10 s on: what a box pays every segment for months, without the
  # start's one-time writes (the device key, the index's tables, the first gap's record).
  for v in "${VARIANTS[@]}"; do
    media "$R/$v" > "$R/$v.media0"
    [ "$DEVICE" = yes ] && device_written "r$1-$v" > "$R/$v.dev10"
  done
  sleep $((DURATION - 10))
  for i in "${!VARIANTS[@]}"; do
    ticks "${pp[$i]}" > "$R/${VARIANTS[$i]}.t1"
    awk '/^Private_Dirty/ {print $2}' "/proc/${pp[$i]}/smaps_rollup" > "$R/${VARIANTS[$i]}.dirty"
  done
  for i in "${!VARIANTS[@]}"; do
    if [ "${VARIANTS[$i]}" = ffmpeg ]; then kill -INT "${pp[$i]}"; else kill -TERM "${pp[$i]}"; fi
  done
  for i in "${!VARIANTS[@]}"; do wait "${tp[$i]}" || true; done
  for v in "${VARIANTS[@]}"; do media "$R/$v" > "$R/$v.media"; done
  # Everything each recorder left in the page cache reaches its device before counting.
  sync
  for v in "${VARIANTS[@]}"; do
    if [ "$DEVICE" = yes ]; then
      umount "$R/$v"
      echo $(( $(device_written "r$1-$v") - $(cat "$R/$v.dev0") )) > "$R/$v.written"
      echo $(( $(device_written "r$1-$v") - $(cat "$R/$v.dev10") )) > "$R/$v.written10"
      losetup -d "$(cat "$WORK/r$1-$v.dev")"; rm -f "$WORK/r$1-$v.dev" "$R/$v.img"
    fi
    awk -v a="$(cat "$R/$v.t0")" -v b="$(cat "$R/$v.t1")" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}' > "$R/$v.steady"
    cpu "$R/$v.time" > "$R/$v.cpu"
    rss "$R/$v.time" > "$R/$v.rss"
  done
}

for n in $(seq 1 "$RUNS"); do run_once "$n"; done

# fact RUN VARIANT NAME; median of a list of numbers
fact() { cat "$WORK/r$1/$2.$3"; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2] + a[NR/2+1]) / 2}'; }
row() { printf '%-30s %12s %12s %12s %12s %12s %12s %12s %9s %9s %9s %9s %9s %9s\n' "$@"; }
# summary NAME LABEL: per run, the six values and the ratios; then the median of each.
summary() {
  local n j s u a f r x rj rs ru ra rr rx all_j="" all_s="" all_u="" all_a="" all_f="" all_r="" all_x="" all_rj="" all_rs="" all_ru="" all_ra="" all_rr="" all_rx=""
  for n in $(seq 1 "$RUNS"); do
    j=$(fact "$n" junction "$1"); s=$(fact "$n" nosync "$1"); u=$(fact "$n" noseal "$1"); a=$(fact "$n" activity "$1"); f=$(fact "$n" ffmpeg "$1")
    r=$(fact "$n" reader "$1"); x=$(fact "$n" readeract "$1")
    rj=$(ratio "$j" "$f"); rs=$(ratio "$j" "$s"); ru=$(ratio4 "$j" "$u"); ra=$(ratio4 "$a" "$j"); rr=$(ratio "$r" "$f"); rx=$(ratio "$x" "$f")
    row "$2, run $n" "$j" "$s" "$u" "$a" "$f" "$r" "$x" "$rj" "$rs" "$ru" "$ra" "$rr" "$rx"
    all_j+="$j "; all_s+="$s "; all_u+="$u "; all_a+="$a "; all_f+="$f "; all_r+="$r "; all_x+="$x "
    all_rj+="$rj "; all_rs+="$rs "; all_ru+="$ru "; all_ra+="$ra "; all_rr+="$rr "; all_rx+="$rx "
  done
  row "$2, median" "$(echo "$all_j" | median)" "$(echo "$all_s" | median)" "$(echo "$all_u" | median)" "$(echo "$all_a" | median)" \
    "$(echo "$all_f" | median)" "$(echo "$all_r" | median)" "$(echo "$all_x" | median)" "$(echo "$all_rj" | median)" "$(echo "$all_rs" | median)" \
    "$(echo "$all_ru" | median)" "$(echo "$all_ra" | median)" "$(echo "$all_rr" | median)" "$(echo "$all_rx" | median)"
}

# Syscalls on the camera's socket, counted apart (strace slows what it traces, so not during
# the runs above): ffmpeg and junction's own reader each record the camera for SYSCALL_SECONDS.
SYSCALL_SECONDS=${SYSCALL_SECONDS:-20}
syscalls() {
  local name=$1; shift
  strace -f -qq -c -e trace=recvfrom,recvmsg,read,poll,ppoll -o "$WORK/$name.strace" timeout -s INT "$SYSCALL_SECONDS" "$@" > "$WORK/$name.sys.log" 2>&1 || true
  awk -v d="$SYSCALL_SECONDS" '$NF ~ /^(recvfrom|recvmsg)$/ {r += $4} $NF ~ /^(poll|ppoll)$/ {p += $4} END {printf "%.0f %.0f", r / d, p / d}' "$WORK/$name.strace"
}
if command -v strace > /dev/null; then
  mkdir -p "$WORK/sys/ffmpeg" "$WORK/sys/reader"
  sed -e "s|^path = .*|path = \"$WORK/sys/reader\"|" "$WORK/r1/reader.toml" > "$WORK/sys/reader.toml"
  FFMPEG_SYS=$(syscalls ffmpeg ffmpeg -nostdin -loglevel error -rtsp_transport tcp -i "$URL" -c copy -f segment -segment_time 10 \
    -segment_format mp4 -reset_timestamps 1 "$WORK/sys/ffmpeg/%05d.mp4")
  READER_SYS=$(syscalls reader "$JUNCTION" run --config "$WORK/sys/reader.toml")
fi

for n in $(seq 1 "$RUNS"); do
  for v in "${VARIANTS[@]}"; do
    echo $(( $(fact "$n" "$v" media) - $(fact "$n" "$v" media0) )) > "$WORK/r$n/$v.media10"
    [ "$DEVICE" = yes ] && ratio "$(fact "$n" "$v" written)" "$(fact "$n" "$v" media)" > "$WORK/r$n/$v.amp"
    [ "$DEVICE" = yes ] && ratio4 "$(fact "$n" "$v" written10)" "$(fact "$n" "$v" media10)" > "$WORK/r$n/$v.amp10"
  done
done
SIZE=$(stat -c %s "$JUNCTION")
{
  echo "# junction vs ffmpeg -f segment, $(date -u +%FT%TZ), $(nproc) cores, $RUNS runs of ${DURATION} s, 1080p25 H.264 4 Mbit/s over RTSP/TCP (loopback)"
  echo "# junction: each fragment (<= 1 s) fdatasynced as written, every segment sealed; nosync: storage.sync_fragments = false"
  echo "# (synced per segment); noseal: storage.seal = false (the cost of sealing is j/noseal); activity: [activity] enabled with stream = the 640x360 sub-stream"
  echo "# (keyframes decoded to 64x36 grey, movement per cell, a summary per segment: its cost is act/j)"
  echo "# reader: [camera] reader = \"junction\" (the box's own RTSP client) instead of libavformat's; r/ffmpeg is its ratio"
  echo "# readeract: the reader with the activity index on the sub-stream, read by the same client (rx/ffmpeg: against ffmpeg recording alone)"
  row "metric" "junction" "nosync" "noseal" "activity" "ffmpeg" "reader" "readeract" "j/ffmpeg" "j/nosync" "j/noseal" "act/j" "r/ffmpeg" "rx/ffmpeg"
  summary cpu "CPU s (user+sys)"
  summary steady "CPU s, steady (10 s..end)"
  summary rss "max RSS (kB)"
  summary dirty "Private_Dirty (kB)"
  summary media "media bytes"
  if [ "$DEVICE" = yes ]; then
    summary written "bytes the device took"
    summary amp "device bytes / media byte"
    summary written10 "device bytes, steady"
    summary amp10 "device / media byte, steady"
  else
    echo "(not root: no loop devices, so the bytes the card would take are not measured)"
  fi
  printf '%-30s %12s\n' "junction binary (bytes)" "$SIZE"
  if [ -n "${FFMPEG_SYS:-}" ]; then
    printf '%-30s %12s %12s   (recv, poll per second over %s s, strace -f)\n' "camera syscalls: ffmpeg" ${FFMPEG_SYS} "$SYSCALL_SECONDS"
    printf '%-30s %12s %12s\n' "camera syscalls: reader" ${READER_SYS}
  fi
  # What the activity index adds: the summaries in the seal boxes (the media bytes of the same
  # camera, sealed alike, with and without it), per hour of recording.
  per_hour=""
  for n in $(seq 1 "$RUNS"); do
    per_hour+="$(( ($(fact "$n" activity media) - $(fact "$n" junction media)) * 3600 / DURATION )) "
  done
  printf '%-30s %12s   (runs: %s)\n' "activity index, bytes/hour" "$(echo "$per_hour" | median)" "$per_hour"
  echo "targets: CPU <= 0.7x ffmpeg, RSS <= 0.7x, device bytes per media byte <= 1.02, binary <= 30 MB;"
  echo "the reader (issue 25): r/ffmpeg CPU <= 0.5x (stretch 0.35x), RSS and private dirty <= 0.7x, reads <= 100 a second;"
  echo "  with activity on the sub-stream (rx/ffmpeg): CPU <= 1.0x;"
  echo "sealing (j/noseal): CPU <= 1.02, bytes <= 1.001; activity (act/j): CPU <= 1.10"
} | tee "$OUT"
echo "results: $OUT"
