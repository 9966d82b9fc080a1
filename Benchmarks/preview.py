#!/usr/bin/env python3
"""Preview benchmark (issue 14): a MINUTES-minute footage request over a thin link, the preview
against the video, and narrowing.

The box records MINUTES minutes of 1080p at CAMERA_MBPS Mbit/s (a synthetic camera on the
host's loopback), then runs inside a network namespace this script makes, behind
Tests/Support/flaky_link.py at RATE_KBPS kbit/s and DELAY_MS ms each way (LOSS packet loss each
way by iptables; no flaps). The commune asks for the whole range. Measured, in the same run:
  - the first preview picture and the whole preview at the commune, from the request and from
    the moment the box took it (its heartbeat every 5 s; a real box's is 60 s);
  - the video's goodput over VIDEO_SAMPLE seconds of uploading after the preview, and the time
    the whole range's video takes at that rate (projected: it would take most of an hour);
  - narrowing the request to NARROW_SECONDS near its end: every clip outside the narrowed range
    that still arrives afterwards, and the time until the narrowed request is complete.

usage (root; make bench-preview runs it): preview.py JUNCTION COMMUNE
env: MINUTES=10 CAMERA_MBPS=4 RATE_KBPS=1000 DELAY_MS=100 LOSS=0.005 VIDEO_SAMPLE=120 NARROW_SECONDS=20
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("RATE_KBPS", "1000")
os.environ.setdefault("DELAY_MS", "100")
os.environ.setdefault("LOSS", "0.005")
import uplink  # noqa: E402  (its namespace, link, commune and process helpers; argv is the same)
from uplink import free_port, log, run, spawn, stop, wait  # noqa: E402

MINUTES = float(os.environ.get("MINUTES", 10))
CAMERA_MBPS = float(os.environ.get("CAMERA_MBPS", 4))
VIDEO_SAMPLE = float(os.environ.get("VIDEO_SAMPLE", 120))
NARROW_SECONDS = float(os.environ.get("NARROW_SECONDS", 20))
STAMP = time.strftime("%Y%m%dT%H%M%S")
uplink.WORK = os.path.join(uplink.ROOT, "Benchmarks", "results", f"preview-{STAMP}")
uplink.NS = f"jprev-{os.getpid()}"
WORK, NS, JUNCTION, COMMUNE = uplink.WORK, uplink.NS, uplink.JUNCTION, uplink.COMMUNE


def ts(text):
    """Epoch seconds of an RFC 3339 UTC time ("2026-11-29T14:02:00.120Z")."""
    base = time.mktime(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    frac = re.match(r"\.(\d+)", text[19:])
    return base + (float("0." + frac.group(1)) if frac else 0)


def requests(data):
    r = run(COMMUNE, "requests", "--data", data, check=False)
    return r.stdout


def stamp_of(logfile, text):
    """The time (epoch s) of the first log line containing `text` (swift-log's ISO time, UTC)."""
    for line in open(logfile, errors="replace"):
        if text in line:
            m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", line)
            if m:
                return time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return None


def bench():
    run("ip", "-n", NS, "link", "set", "lo", "up")
    run("ip", "-n", NS, "link", "set", "lo", "mtu", "1500")
    run("ip", "netns", "exec", NS, "ethtool", "-K", "lo", "tso", "off", "gso", "off", "gro", "off", check=False)

    # 1. Record MINUTES minutes outside the namespace: a moving 1080p scene at CAMERA_MBPS.
    clip = os.path.join(WORK, "clip.mp4")
    rate = f"{CAMERA_MBPS:g}M"
    run("ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25,noise=alls=6:allf=t",
        "-c:v", "libx264", "-g", "50", "-preset", "veryfast", "-b:v", rate, "-maxrate", rate, "-bufsize", rate, "-pix_fmt", "yuv420p",
        "-t", "30", clip)
    cam_port = free_port()
    cam = spawn(["/usr/bin/python3", os.path.join(uplink.ROOT, "Tests/Support/rtsp_camera.py"), "--clip", clip, "--port", str(cam_port)],
                os.path.join(WORK, "camera.log"))
    time.sleep(2)
    box = os.path.join(WORK, "box")
    os.makedirs(box)
    data, token, port = uplink.commune("commune")
    proxy, proxy_port, stats = uplink.link("box", port, lossy=True, flaps=False)
    config = uplink.write_config(box, f"rtsp://127.0.0.1:{cam_port}/cam", f"http://127.0.0.1:{proxy_port}", token,
                                 segment_seconds=10, max_bytes="8GB", heartbeat_seconds=5)
    # Recording with the server unreachable from the host (it lives in the namespace): fine, nothing is flagged.
    rec = spawn([JUNCTION, "run", "--config", config], os.path.join(WORK, "record.log"))
    log(f"recording {MINUTES:g} min of 1080p at {rate}bit/s...")
    need = MINUTES * 60 + 10
    if not wait(need + 120, lambda: span(config) >= need, every=2):
        sys.exit("could not record enough footage")
    stop(rec)
    stop(cam)
    segs = uplink.segments(config)
    t_from = round(ts(segs[1]["start"])) + 1
    t_to = t_from + int(MINUTES * 60)
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    in_range = [s for s in segs if ts(s["end"]) > t_from and ts(s["start"]) < t_to]
    video_bytes = sum(s["bytes"] for s in in_range)
    log(f"recorded; the request covers {len(in_range)} segments, {video_bytes / 1e6:.1f} MB")

    # 2. The box inside the namespace, behind the link; the commune asks for the range.
    boxlog = os.path.join(WORK, "box.log")
    spawn([JUNCTION, "run", "--config", config], boxlog, netns=True)
    time.sleep(3)
    asked = time.time()
    made = run(COMMUNE, "request", "--data", data, "--device", "bench-box", "--from", iso(t_from), "--to", iso(t_to), "--json")
    rid = json.loads(made.stdout)["id"]
    first_picture = whole = None
    pictures = 0
    end = time.monotonic() + 1800
    while time.monotonic() < end and whole is None:
        text = requests(data)
        m = re.search(r"preview: (\d+) pictures( so far)?", text)
        if m and int(m.group(1)) > 0 and first_picture is None:
            first_picture = time.time()
        if m and "complete" in text.split("preview:")[1].split("\n")[0]:
            whole = time.time()
            pictures = int(m.group(1))
        time.sleep(0.25)
    taken = stamp_of(boxlog, "footage request taken")
    made_at = stamp_of(boxlog, "uplink: preview made")
    preview_files = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(data, "previews")) for f in fs]
    preview_bytes = sum(os.path.getsize(f) for f in preview_files)
    log(f"preview: {pictures} pictures, {preview_bytes / 1e3:.0f} kB; first picture {first_picture - asked:.1f} s after the request, whole {whole - asked:.1f} s")

    # 3. The video's goodput over VIDEO_SAMPLE s, then narrowing near the end of the range.
    time.sleep(VIDEO_SAMPLE)
    sample_end = time.time()
    got = uplink.clips(data)
    uploads = os.path.join(data, ".uploads")
    arriving = sum(os.path.getsize(os.path.join(uploads, f)) for f in os.listdir(uploads) if f.endswith(".part")) if os.path.isdir(uploads) else 0
    got_bytes = sum(c["bytes"] for c in got) + arriving  # whole clips and the one arriving
    goodput = got_bytes / max(1, sample_end - whole)
    at_link_rate = video_bytes * 8 / (uplink.RATE * 1000)
    projected = video_bytes / goodput if goodput > 0 else float("inf")
    n_from = t_to - 60
    n_to = n_from + int(NARROW_SECONDS)
    narrowed_at = time.time()
    run(COMMUNE, "narrow", "--data", data, "--request", rid, "--from", iso(n_from), "--to", iso(n_to))
    before = {c["sha256"] for c in uplink.clips(data)}
    complete = wait(900, lambda: re.search(rf"{rid} .* complete", requests(data)) is not None, every=1)
    done_at = time.time()
    after = [c for c in uplink.clips(data) if c["sha256"] not in before]
    outside = [c for c in after if not (ts(c["end"]) > n_from and ts(c["start"]) < n_to)]
    inside = [c for c in after if c not in outside]
    stopped = len(re.findall(r"no longer wanted", open(boxlog, errors="replace").read()))

    results = {
        "minutes": MINUTES, "camera_mbps": CAMERA_MBPS, "link": {"rate_kbps": uplink.RATE, "delay_ms": uplink.DELAY, "loss": uplink.LOSS},
        "video_bytes": video_bytes, "segments": len(in_range),
        "preview": {"pictures": pictures, "bytes": preview_bytes,
                    "first_picture_after_request_s": round(first_picture - asked, 1), "whole_after_request_s": round(whole - asked, 1),
                    "request_taken_after_s": round(taken - asked, 1) if taken else None,
                    "made_after_taken_s": round(made_at - taken, 1) if taken and made_at else None,
                    "first_picture_after_taken_s": round(first_picture - taken, 1) if taken else None,
                    "whole_after_taken_s": round(whole - taken, 1) if taken else None},
        "video": {"sampled_s": round(sample_end - whole, 1), "sampled_bytes": got_bytes, "goodput_bytes_per_s": round(goodput),
                  "projected_whole_range_s": round(projected), "at_link_rate_s": round(at_link_rate)},
        "preview_vs_video": round((whole - asked) / projected, 4) if projected else None,
        "preview_vs_video_at_link_rate": round((whole - asked) / at_link_rate, 4),
        "narrow": {"seconds": NARROW_SECONDS, "complete": complete, "until_complete_s": round(done_at - narrowed_at, 1),
                   "clips_inside_after": len(inside), "clips_outside_after": len(outside),
                   "uploads_stopped_between_chunks": stopped,
                   "bytes_not_sent": video_bytes - sum(c["bytes"] for c in uplink.clips(data))},
    }
    out = os.path.join(uplink.ROOT, "Benchmarks", "results", f"preview-{STAMP}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    p, v, n = results["preview"], results["video"], results["narrow"]
    table = f"""
Preview benchmark, {STAMP}: a {MINUTES:g}-minute request of 1080p at {CAMERA_MBPS:g} Mbit/s ({video_bytes / 1e6:.0f} MB, {len(in_range)} segments);
link {uplink.RATE} kbit/s, {uplink.DELAY} ms each way, {uplink.LOSS * 100:g} % loss each way; box heartbeat 5 s

| metric | measured | goal |
|---|---|---|
| preview | {pictures} pictures, {preview_bytes / 1e3:.0f} kB | |
| first preview picture, from the request (from the box taking it) | {p['first_picture_after_request_s']} s ({p['first_picture_after_taken_s']} s) | <= 30 s |
| whole preview, from the request (from the box taking it) | {p['whole_after_request_s']} s ({p['whole_after_taken_s']} s) | |
| preview made on the box, after taking the request | {p['made_after_taken_s']} s | |
| video goodput after the preview ({v['sampled_s']} s sampled) | {v['goodput_bytes_per_s'] * 8 / 1000:.0f} kbit/s | |
| the whole range's video at that rate (projected) | {v['projected_whole_range_s']} s | |
| the same at the link's full rate, with no overhead (the best case for the video) | {v['at_link_rate_s']} s | |
| whole preview / video time (/ the video's best case) | {results['preview_vs_video'] * 100:.2f} % ({results['preview_vs_video_at_link_rate'] * 100:.2f} %) | <= 10 % |
| narrowed to {NARROW_SECONDS:g} s: complete after | {n['until_complete_s']} s ({'complete' if complete else 'NOT complete'}) | |
| clips outside the narrowed range arriving after narrowing | {n['clips_outside_after']} (uploads stopped between chunks: {stopped}) | 0-1 |
| bytes the box did not send | {n['bytes_not_sent'] / 1e6:.0f} MB | |
"""
    with open(out.replace(".json", ".md"), "w") as f:
        f.write(table)
    log(table)
    log(f"results: {out}")


def span(config):
    """Seconds of footage recorded."""
    return sum(ts(s["end"]) - ts(s["start"]) for s in uplink.segments(config))


def main():
    if os.geteuid() != 0:
        sys.exit("preview bench: needs root (it makes a network namespace)")
    os.makedirs(WORK)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit("preview bench: stopped"))
    run("ip", "netns", "add", NS)
    try:
        bench()
    finally:
        for p in uplink.started:
            stop(p)
        run("ip", "netns", "del", NS, check=False)


if __name__ == "__main__":
    main()
