#!/usr/bin/env python3
"""Uplink benchmark: junction's uploader beside a third-party tus client (tuspy, with retries) on
the same bad link, in the same run, against the same commune server.

The link (a network namespace this script makes, loopback inside it): RATE kbit/s and DELAY ms
each way through Tests/Support/flaky_link.py, which also takes the link down for FLAP_SECONDS
every FLAP_EVERY seconds; LOSS packet loss each way by iptables. Both uploaders send the same
recorded segments (SIZE_MB of them). Measured: wall time until every file is stored and
verified, bytes sent beyond the payload (re-sent + HTTP heads), how soon the upload resumed
after each flap, and flag -> first upload request on the same link without loss or flaps.

usage (root; make bench runs it): uplink.py JUNCTION COMMUNE
env: SIZE_MB=50 RATE_KBPS=1000 DELAY_MS=150 LOSS=0.02 FLAP_EVERY=30 FLAP_SECONDS=5 TIMEOUT=5400
"""
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from junction_format import free_port  # noqa: E402,F401  (preview.py takes it from here too)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JUNCTION, COMMUNE = sys.argv[1], sys.argv[2]
SIZE_MB = float(os.environ.get("SIZE_MB", 50))
RATE = int(os.environ.get("RATE_KBPS", 1000))
DELAY = int(os.environ.get("DELAY_MS", 150))
LOSS = float(os.environ.get("LOSS", 0.02))
FLAP_EVERY = float(os.environ.get("FLAP_EVERY", 30))
FLAP_SECONDS = float(os.environ.get("FLAP_SECONDS", 5))
TIMEOUT = float(os.environ.get("TIMEOUT", 5400))
STAMP = time.strftime("%Y%m%dT%H%M%S")
WORK = os.path.join(ROOT, "Benchmarks", "results", f"uplink-{STAMP}")
NS = f"jbench-{os.getpid()}"
started = []  # (Popen) we started, stopped by PID at the end


def log(*a):
    print(*a, flush=True)


def run(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


def spawn(args, logfile, netns=False):
    if netns:
        args = ["ip", "netns", "exec", NS] + args
    p = subprocess.Popen(args, stdout=open(logfile, "a"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    started.append(p)
    return p


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait(seconds, cond, every=0.5):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(every)
    return cond()


def segments(config):
    return json.loads(run(JUNCTION, "list", "--config", config, "--json").stdout)


def clips(data):
    r = run(COMMUNE, "clips", "--data", data, "--json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else []


def write_config(dir, camera_url, server_url, token, segment_seconds=4, max_bytes="4GB", heartbeat_seconds=3600):
    path = os.path.join(dir, "junction.toml")
    with open(path, "w") as f:
        f.write(f"""[device]
id = "bench-box"
[camera]
url = "{camera_url}"
stall_seconds = 3
connect_timeout_seconds = 5
[storage]
path = "{dir}/data"
segment_seconds = {segment_seconds}
max_bytes = "{max_bytes}"
reserve_bytes = "1MB"
[server]
url = "{server_url}"
token = "{token}"
allow_insecure_http = true
heartbeat_seconds = {heartbeat_seconds}
[upload]
pre_roll_seconds = 0
post_roll_seconds = 0
""")
    return path


def commune(name):
    data = os.path.join(WORK, name)
    token = run(COMMUNE, "devices", "add", "bench-box", "--data", data).stdout.strip().splitlines()[-1]
    port = free_port()
    spawn([COMMUNE, "serve", "--data", data, "--listen", f"127.0.0.1:{port}", "--insecure-http"], data + ".log", netns=True)
    return data, token, port


def link(name, target, port=None, lossy=True, flaps=True):
    """The bad link in front of `target`, listening on `port` (or a free one)."""
    port = port or free_port()
    if lossy and LOSS > 0:
        for rule in (["--dport", str(port)], ["--sport", str(port)]):
            run("ip", "netns", "exec", NS, "iptables", "-A", "INPUT", "-i", "lo", "-p", "tcp", *rule,
                "-m", "statistic", "--mode", "random", "--probability", str(LOSS), "-j", "DROP")
    stats = os.path.join(WORK, f"{name}-link.json")
    args = ["/usr/bin/python3", os.path.join(ROOT, "Tests/Support/flaky_link.py"), "--listen", str(port), "--target", str(target),
            "--rate-kbps", str(RATE), "--delay-ms", str(DELAY), "--stats", stats, "--duration", str(TIMEOUT + 600)]
    if flaps:
        args += ["--flap-every", str(FLAP_EVERY), "--flap-seconds", str(FLAP_SECONDS)]
    return spawn(args, os.path.join(WORK, f"{name}-link.log"), netns=True), port, stats


def main():
    if os.geteuid() != 0:
        sys.exit("uplink bench: needs root (it makes a network namespace)")
    os.makedirs(WORK)
    # SIGTERM (and SIGINT, even when started in the background) ends the run through `finally`.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit("uplink bench: stopped"))
    run("ip", "netns", "add", NS)
    try:
        bench()
    finally:
        for p in started:
            stop(p)
        run("ip", "netns", "del", NS, check=False)


def bench():
    run("ip", "-n", NS, "link", "set", "lo", "up")
    run("ip", "-n", NS, "link", "set", "lo", "mtu", "1500")
    run("ip", "netns", "exec", NS, "ethtool", "-K", "lo", "tso", "off", "gso", "off", "gro", "off", check=False)

    # 1. Record SIZE_MB (+ a few segments left unflagged for the latency probe), outside the namespace.
    clip = os.path.join(WORK, "clip.mp4")
    run("ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25,noise=alls=8:allf=t",
        "-c:v", "libx264", "-g", "25", "-preset", "veryfast", "-b:v", "8M", "-maxrate", "8M", "-bufsize", "8M", "-pix_fmt", "yuv420p",
        "-t", "20", clip)
    cam_port = free_port()
    cam = spawn(["/usr/bin/python3", os.path.join(ROOT, "Tests/Support/rtsp_camera.py"), "--clip", clip, "--port", str(cam_port)],
                os.path.join(WORK, "camera.log"))
    time.sleep(2)
    box = os.path.join(WORK, "box")
    os.makedirs(box)
    data_j, token_j, port_j = commune("commune-junction")
    proxy_port_j = free_port()
    config = write_config(box, f"rtsp://127.0.0.1:{cam_port}/cam", f"http://127.0.0.1:{proxy_port_j}", token_j)
    rec = spawn([JUNCTION, "run", "--config", config], config + ".log")
    need = SIZE_MB * 1e6
    log(f"recording {SIZE_MB:.0f} MB of 8 Mbit/s video...")
    if not wait(SIZE_MB / 0.9 + 120, lambda: sum(s["bytes"] for s in segments(config)[:-3]) >= need, every=1):
        sys.exit("could not record enough footage")
    stop(rec)
    stop(cam)
    segs = segments(config)
    chosen, total = [], 0
    for s in segs:
        if total >= need:
            break
        chosen.append(s)
        total += s["bytes"]
    spare = segs[len(chosen):]
    run(JUNCTION, "flag", f"--config={config}", f"--from={chosen[0]['start']}", f"--to={chosen[-1]['end']}", "--reason", "bench")
    chosen = [s for s in segments(config) if s["flagged"]]
    payload = sum(s["bytes"] for s in chosen)
    log(f"{len(chosen)} segments, {payload / 1e6:.1f} MB flagged")

    link_desc = f"{RATE} kbit/s, {2 * DELAY} ms RTT, {LOSS * 100:.0f} % loss each way, {FLAP_SECONDS:.0f} s down every {FLAP_EVERY:.0f} s"
    results = {"link": link_desc, "payload_bytes": payload, "segments": len(chosen)}

    # 2. junction.
    proxy_j, _, stats_j = link("junction", port_j, port=proxy_port_j)
    t0 = time.monotonic()
    daemon = spawn([JUNCTION, "run", "--config", config], config + ".log", netns=True)
    ok = wait(TIMEOUT, lambda: len(clips(data_j)) >= len(chosen), every=2)
    tj = time.monotonic() - t0
    stop(daemon)
    stop(proxy_j)
    results["junction"] = summarize(stats_j, tj, ok, payload, data_j, chosen)
    log("junction:", results["junction"])

    # 3. tuspy, the same files, the same link, its own commune.
    data_p, token_p, port_p = commune("commune-tuspy")
    proxy_p, pport, stats_p = link("tuspy", port_p)
    box_data = os.path.join(box, "data")
    files = [{"path": os.path.join(box_data, s["path"]), "sha256": s["sha256"], "start": s["start"], "end": s["end"]} for s in chosen]
    with open(os.path.join(WORK, "tuspy-files.json"), "w") as f:
        json.dump(files, f)
    t0 = time.monotonic()
    peer = spawn([sys.executable, os.path.join(ROOT, "Benchmarks", "tuspy_peer.py"), f"http://127.0.0.1:{pport}/files/", token_p,
                  os.path.join(WORK, "tuspy-files.json")], os.path.join(WORK, "tuspy.log"), netns=True)
    wait(TIMEOUT, lambda: peer.poll() is not None or len(clips(data_p)) >= len(chosen), every=2)
    tp = time.monotonic() - t0
    stop(peer)
    stop(proxy_p)
    results["tuspy"] = summarize(stats_p, tp, len(clips(data_p)) >= len(chosen), payload, data_p, chosen)
    log("tuspy:", results["tuspy"])

    # 4. flag -> first PATCH byte, same rate and delay, no loss, no flaps.
    proxy_l, lport, stats_l = link("latency", port_j, lossy=False, flaps=False)
    with open(config) as f:
        text = f.read()
    with open(config, "w") as f:
        f.write(text.replace(f"127.0.0.1:{proxy_port_j}", f"127.0.0.1:{lport}"))
    daemon = spawn([JUNCTION, "run", "--config", config], config + ".log", netns=True)
    latencies = []
    for s in spare[:3]:
        time.sleep(6)  # idle: the startup heartbeat is done, the server answered within the minute
        before = json.load(open(stats_l)).get("upload_request_at", []) if os.path.exists(stats_l) else []
        t_flag = time.time()
        run(JUNCTION, "flag", f"--config={config}", f"--from={s['start']}", f"--to={s['end']}")
        wait(20, lambda: len(json.load(open(stats_l)).get("upload_request_at", [])) > len(before), every=0.2)
        after = json.load(open(stats_l)).get("upload_request_at", [])
        first = [t for t in after if t >= t_flag]
        if first:
            latencies.append(round(min(first) - t_flag, 3))
        # The next flag only once this one is uploaded: a busy link would answer for it.
        wait(180, lambda: all(x["uploaded"] for x in segments(config) if x["flagged"]), every=1)
    stop(daemon)
    stop(proxy_l)
    results["flag_to_first_patch_s"] = latencies

    j, p = results["junction"], results["tuspy"]
    results["time_ratio"] = round(j["seconds"] / p["seconds"], 3) if p["seconds"] else None
    out = os.path.join(ROOT, "Benchmarks", "results", f"uplink-{STAMP}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    table = f"""
Uplink benchmark, {STAMP}: {results['segments']} segments, {payload / 1e6:.1f} MB, link: {link_desc}

| metric | junction | tuspy | ratio | target |
|---|---|---|---|---|
| time to all verified | {j['seconds']:.0f} s | {p['seconds']:.0f} s | {results['time_ratio']}x | <= 0.8x |
| all arrived, verified | {j['complete']} | {p['complete']} | | |
| bytes beyond payload (re-sent + HTTP heads) | {j['beyond_payload_pct']:.2f} % | {p['beyond_payload_pct']:.2f} % | | <= 1 % |
| resumed after each flap (s) | {j['resume_after_flap_s']} | {p['resume_after_flap_s']} | | <= 3 s |
| flag -> first upload request (POST with first chunk, or PATCH), same link without loss/flaps (s) | {latencies} | | | <= 1 s |
"""
    with open(out.replace(".json", ".md"), "w") as f:
        f.write(table)
    log(table)
    log(f"results: {out}")


def summarize(stats_path, seconds, complete, payload, data, chosen):
    stats = json.load(open(stats_path)) if os.path.exists(stats_path) else {}
    got = {c["sha256"] for c in clips(data)}
    complete = complete and all(s["sha256"] in got for s in chosen)
    sent = stats.get("bytes_up", 0)
    return {"seconds": round(seconds, 1), "complete": complete, "bytes_up": sent,
            "beyond_payload_pct": round((sent - payload) * 100 / payload, 3) if payload else 0,
            "flaps": stats.get("flaps", 0), "resume_after_flap_s": stats.get("resume_after_flap_s", []),
            "connections": stats.get("connections", 0)}


if __name__ == "__main__":
    main()
