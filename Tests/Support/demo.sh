#!/usr/bin/env bash
# make demo: a synthetic RTSP camera and a commune server on loopback, the recorder on the
# camera for ~30 s, a flag, the upload arriving verified at the commune, an operator's footage
# request answered over the heartbeat, then what a technician sees (status, list, check). Everything it starts is stopped by PID on exit.
set -euo pipefail
JUNCTION=${1:?usage: demo.sh path/to/junction}
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=${DEMO_DIR:-$(pwd)/demo-run}
SECONDS_TO_RECORD=${DEMO_SECONDS:-30}
rm -rf "$RUN"; mkdir -p "$RUN"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Making a 1080p25 test clip (H.264 4 Mbit/s, AAC) with ffmpeg"
ffmpeg -nostdin -y -loglevel error -f lavfi -i testsrc2=size=1920x1080:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 \
  -c:v libx264 -preset veryfast -g 50 -keyint_min 50 -sc_threshold 0 -b:v 4M -maxrate 4M -bufsize 4M -pix_fmt yuv420p \
  -c:a aac -b:a 64k -t 20 "$RUN/clip.mp4"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
step "Starting a synthetic RTSP camera at rtsp://127.0.0.1:$PORT/cam"
/usr/bin/python3 "$HERE/rtsp_camera.py" --clip "$RUN/clip.mp4" --port "$PORT" > "$RUN/camera.log" 2>&1 &
pids+=($!)
# READY comes once the camera has played its own stream once (bounded: 45 s).
for _ in $(seq 1 450); do grep -q READY "$RUN/camera.log" && break; sleep 0.1; done
grep -q READY "$RUN/camera.log" || { cat "$RUN/camera.log"; exit 1; }

COMMUNE="$(dirname "$JUNCTION")/commune"
CPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
step "Starting a local commune server at http://127.0.0.1:$CPORT and registering the box"
TOKEN=$("$COMMUNE" devices add demo-0001 --data "$RUN/commune" | tail -1)
# An officer for the desk (the web page), with a password given on stdin as a script would.
echo "demo-password-1" | "$COMMUNE" operators add demo-officer --password-stdin --data "$RUN/commune" > /dev/null
"$COMMUNE" serve --data "$RUN/commune" --listen "127.0.0.1:$CPORT" --insecure-http > "$RUN/commune.log" 2>&1 &
pids+=($!)

cat > "$RUN/junction.toml" <<TOML
# The one file an installer edits (see README, "Configuring a box").
[device]
id = "demo-0001"

[camera]
url = "rtsp://127.0.0.1:$PORT/cam"
transport = "tcp"
stall_seconds = 5

[storage]
path = "$RUN/data"
max_bytes = "1GB"
reserve_bytes = "100MB"
segment_seconds = 10

[server]
url = "http://127.0.0.1:$CPORT"
token = "$TOKEN"
allow_insecure_http = true     # loopback demo only: a real box uses https://
heartbeat_seconds = 5          # the default is 60; short here so the request below is picked up fast

[upload]
pre_roll_seconds = 2           # the default is 10 s each side; short here so the request below asks for footage not yet sent
post_roll_seconds = 2
TOML
step "junction.toml"
cat "$RUN/junction.toml"

step "junction run: recording for ${SECONDS_TO_RECORD} s (log in $RUN/junction.log)"
"$JUNCTION" run --config "$RUN/junction.toml" > "$RUN/junction.log" 2>&1 &
DAEMON=$!
pids+=($DAEMON)
sleep "$SECONDS_TO_RECORD"

step "junction status (while recording)"
"$JUNCTION" status --config "$RUN/junction.toml" || true

step "junction flag --from=-25s --to=-15s --reason \"demo: a flagged incident\""
"$JUNCTION" flag --config "$RUN/junction.toml" --from=-25s --to=-15s --reason "demo: a flagged incident"
"$JUNCTION" flags --config "$RUN/junction.toml"

step "Waiting for the flagged footage to reach the commune server"
for _ in $(seq 1 60); do
  [ "$("$COMMUNE" clips --data "$RUN/commune" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -ge 1 ] && break
  sleep 0.5
done
"$JUNCTION" flags --config "$RUN/junction.toml"
step "commune clips (what arrived, verified against the box's sha256)"
"$COMMUNE" clips --data "$RUN/commune"
"$COMMUNE" clips --data "$RUN/commune" --json | python3 -c '
import json, sys, hashlib
for c in json.load(sys.stdin):
    h = hashlib.sha256(open(c["path"], "rb").read()).hexdigest()
    print(("✔" if h == c["sha256"] else "✘"), c["path"], "sha256", h[:16] + "…", "matches" if h == c["sha256"] else "DIFFERS")
'

step "commune request: an operator asks the box for footage nobody flagged (picked up at its next heartbeat)"
PICK='import json,sys; s=json.load(sys.stdin); u=[x for x in s if not x["flagged"]] or s; print(u[-1][sys.argv[1]])'
FROM=$("$JUNCTION" list --config "$RUN/junction.toml" --json | python3 -c "$PICK" start)
TO=$("$JUNCTION" list --config "$RUN/junction.toml" --json | python3 -c "$PICK" end)
"$COMMUNE" request --data "$RUN/commune" --device demo-0001 --from "$FROM" --to "$TO" --reason "demo: police request"
for _ in $(seq 1 60); do
  "$COMMUNE" requests --data "$RUN/commune" --json | python3 -c 'import json,sys; sys.exit(0 if all(r["state"]=="complete" for r in json.load(sys.stdin)) else 1)' && break
  sleep 0.5
done
step "commune requests (state, coverage and the preview the box sent before the video)"
"$COMMUNE" requests --data "$RUN/commune"
REQ=$("$COMMUNE" requests --data "$RUN/commune" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
"$COMMUNE" requests --data "$RUN/commune" --preview "$REQ" --out "$RUN/preview"
ls "$RUN/preview" | sed -e 's/^/  /'
"$COMMUNE" devices --data "$RUN/commune"

step "Stopping the recorder (SIGTERM closes the open segment)"
kill -TERM "$DAEMON"; wait "$DAEMON" || true
sed -e 's/^/  /' "$RUN/junction.log"

step "junction list"
"$JUNCTION" list --config "$RUN/junction.toml"

step "junction check --deep"
"$JUNCTION" check --config "$RUN/junction.toml" --deep

first=$("$JUNCTION" list --config "$RUN/junction.toml" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["path"])')
step "ffprobe of the first segment"
ffprobe -v error -show_entries format=duration:stream=codec_name,codec_tag_string,width,height -of compact "$first"

step "Done. The recordings stay in $RUN/data (make clean removes them)."
echo "  The police desk (web page, Vietnamese first) on what arrived:"
echo "    $COMMUNE serve --data $RUN/commune --listen 127.0.0.1:$CPORT --insecure-http"
echo "    then open http://127.0.0.1:$CPORT/ and sign in as demo-officer, password demo-password-1"
