#!/usr/bin/env python3
"""Soak (issue 22): one box hostile in every way issue 22 lists, at once, beside HONEST honest
boxes and an officer on the desk, for MINUTES minutes against one `commune serve` on loopback.
No root needed; every loop is bounded by the run's end and sleeps between requests.

Honest boxes (from 127.0.0.1): a heartbeat every HB_SECONDS (health, chain head) and a sealed
200 kB clip every UPLOAD_SECONDS (tus, its chain linked). The officer (127.0.0.1, a browser with
the desk's cookies): the box list (with the hostile box on it), the requests, the new-request form and both kinds of box's page every 2 s, and at the end signs
out and back in with the right password.
The hostile box (from 127.0.0.2, its own token and key), all at once:
  - heartbeats 5 a second cycling through every extreme of Tests/FuzzTests/Corpus/heartbeat/
    extremes.txt, with activity dated 2099, planted chain records (seq 2^63-1, start -2^63,
    unasked), a 2 MB body;
  - 63 idle connections and slow headers (a byte every 20 s), reopened when closed;
  - a sign-in guess for the officer's name 10 times a second;
  - every 30 s a sealed 30 MiB clip of 8-byte `moof` boxes, an upload claiming 2^63-1 bytes, a
    PATCH at a wrong offset; desk forms over 16 kB; Range headers past every rule.
Reported: honest heartbeats answered (200 within 10 s) and their worst latency, honest uploads
filed and verified, the desk's pages answered (200 within 5 s), the officer's sign-in at the
end, the commune's peak memory, and that it never stopped. Results: Benchmarks/results/soak-STAMP.txt.

usage (make bench-soak, part of make bench): soak.py COMMUNE
env: MINUTES=10 HONEST=20 HB_SECONDS=5 UPLOAD_SECONDS=30
"""
import hashlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from junction_format import GENESIS, HEADER, Key, Segment, box, file_sha, fragment, free_port, record, rfc3339, tus_upload, wait_for_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMUNE = sys.argv[1]
MINUTES = float(os.environ.get("MINUTES", 10))
HONEST = int(os.environ.get("HONEST", 20))
HB_SECONDS = float(os.environ.get("HB_SECONDS", 5))
UPLOAD_SECONDS = float(os.environ.get("UPLOAD_SECONDS", 30))
STAMP = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
WORK = os.path.join(ROOT, "Benchmarks", "results", f"soak-{STAMP}")
RESULT = WORK + ".txt"
OFFICER, PASSWORD = "soak-officer", "soak-password-1"
HOSTILE_ADDRESS = "127.0.0.2"
END = 0.0
lock = threading.Lock()
stats = {}


def count(key, n=1):
    with lock:
        stats[key] = stats.get(key, 0) + n


def worst(key, value):
    with lock:
        stats[key] = max(stats.get(key, 0), value)


def running():
    return time.monotonic() < END


def nap(seconds):
    time.sleep(max(0, min(seconds, END - time.monotonic())))


def now_ms():
    return int(time.time() * 1000)


def health(device_time_ms, **extra):
    h = {"recording": "recording", "last_error": None, "oldest": rfc3339(device_time_ms - 3_600_000),
         "newest": rfc3339(device_time_ms), "ring_bytes": 1 << 30, "budget_bytes": 8 << 30, "free_bytes": 20 << 30,
         "pinned_bytes": 1 << 20, "pinned_cap_bytes": 2 << 30, "queued_segments": 0, "clock_synchronized": True,
         "version": "soak", "sent_at": rfc3339(device_time_ms), "upload_bytes_per_second": 50_000.0}
    h.update(extra)
    return h


class Honest(threading.Thread):
    def __init__(self, n, port, token, key, dir):
        super().__init__(daemon=True)
        self.device, self.port, self.token, self.key, self.dir = f"honest-{n:02d}", port, token, key, dir
        self.seq, self.prev, self.uploaded = 0, GENESIS, []

    def heartbeat(self):
        t = now_ms()
        report = {"device": self.device, "health": health(t), "requests": [],
                  "evidence": {"public_key": self.key.public, "seq": self.seq or None, "hash": self.prev if self.seq else None}}
        start = time.monotonic()
        try:
            r = requests.post(f"http://127.0.0.1:{self.port}/api/v1/heartbeat", json=report, timeout=10,
                              headers={"Authorization": f"Bearer {self.token}"})
            took = time.monotonic() - start
            count("honest heartbeats sent")
            if r.status_code == 200:
                count("honest heartbeats answered")
                worst("honest heartbeat worst latency (s)", round(took, 3))
            else:
                count(f"honest heartbeat status {r.status_code}")
        except requests.RequestException as e:
            count("honest heartbeats sent")
            count(f"honest heartbeat failed: {type(e).__name__}")

    def upload(self):
        self.seq += 1
        start = now_ms() - 10_000
        path = os.path.join(self.dir, f"{self.device}-{self.seq}.mp4")
        seg = Segment(path)
        seg.piece(HEADER)
        for n in range(10):
            seg.piece(fragment(self.seq * 100 + n, 20_000))
        _, h, _ = seg.seal(self.key, self.device, "cam1", self.seq, self.prev, start, start + 10_000, self.seq * 10_000_000_000)
        self.prev = h
        meta = {"device": self.device, "camera": "cam1", "start": rfc3339(start), "end": rfc3339(start + 10_000),
                "sha256": file_sha(path), "filename": os.path.basename(path), "chain_seq": self.seq}
        count("honest uploads sent")
        try:
            tus_upload(self.port, self.token, path, meta, timeout=30)
            count("honest uploads acknowledged")
            self.uploaded.append(meta["sha256"])
        except Exception as e:  # noqa: BLE001 - counted and reported
            count(f"honest upload failed: {e}")
        os.unlink(path)

    def run(self):
        nap(random.uniform(0, HB_SECONDS))
        next_upload = time.monotonic() + random.uniform(0, UPLOAD_SECONDS)
        while running():
            self.heartbeat()
            if time.monotonic() >= next_upload and running():
                self.upload()
                next_upload += UPLOAD_SECONDS
            nap(HB_SECONDS)


class Officer(threading.Thread):
    def __init__(self, port):
        super().__init__(daemon=True)
        self.base = f"http://127.0.0.1:{port}"
        self.browser = requests.Session()

    def sign_in(self):
        page = self.browser.get(self.base + "/sign-in", timeout=10)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = self.browser.post(self.base + "/sign-in", data={"csrf": csrf, "name": OFFICER, "password": PASSWORD},
                              timeout=30, allow_redirects=True)
        return r.status_code == 200 and "sign-in" not in r.url

    def run(self):
        stats["officer signed in at the start"] = self.sign_in()
        while running():
            for page in ["/boxes", "/requests", "/requests/new", "/boxes/hostile/play", "/boxes/honest-00/play"]:
                start = time.monotonic()
                try:
                    r = self.browser.get(self.base + page, timeout=5)
                    count("desk pages asked")
                    if r.status_code == 200 and "sign-in" not in r.url:
                        count("desk pages answered")
                        worst("desk page worst latency (s)", round(time.monotonic() - start, 3))
                    else:
                        count(f"desk page {page} status {r.status_code}")
                except requests.RequestException as e:
                    count("desk pages asked")
                    count(f"desk page {page} failed: {type(e).__name__}")
            nap(2)
        form = re.search(r'name="csrf" value="([^"]+)"', self.browser.get(self.base + "/boxes", timeout=10).text)
        if form:
            self.browser.post(self.base + "/sign-out", data={"csrf": form.group(1)}, timeout=10)
        stats["officer signed in again at the end (right password, during the guessing)"] = self.sign_in()


class Hostile:
    """Each attack its own thread, all at once, all stopping at the run's end."""

    def __init__(self, port, token, key, dir):
        self.port, self.token, self.key, self.dir = port, token, key, dir
        self.base = f"http://127.0.0.1:{port}"
        extremes = os.path.join(ROOT, "Tests", "FuzzTests", "Corpus", "heartbeat", "extremes.txt")
        self.extremes = [json.loads(line) for line in open(extremes) if line.strip()]

    def session(self):
        s = requests.Session()
        s.mount("http://", SourceAdapter(HOSTILE_ADDRESS))
        return s

    def planted_chain(self):
        bodies = []
        for seq, start in [(2**63 - 1, 0), (5, -2**63), (7, 2**63 - 1), (1, now_ms())]:
            body = record("hostile", "cam1", seq, GENESIS, start, start, "x.mp4", (1, "a" * 64), ["a" * 64])
            _, sig = self.key.seal(body)
            bodies.append({"body": body, "signature": sig})
        return bodies

    def heartbeats(self):
        s = self.session()
        i = 0
        while running():
            template = self.extremes[i % len(self.extremes)]
            report = dict(template, device="hostile")
            report["activity"] = {"from": "2099-01-01T00:00:00Z", "levels": "ff" * 1440}
            report["chain"] = self.planted_chain()
            report["evidence"] = {"public_key": self.key.public, "seq": 2**53, "hash": "b" * 64}
            body = json.dumps(report) if i % 10 else json.dumps(report) + " " * (2 << 20)
            try:
                r = s.post(self.base + "/api/v1/heartbeat", data=body, timeout=10,
                           headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
                count(f"hostile heartbeat {r.status_code}")
            except requests.RequestException as e:
                count(f"hostile heartbeat {type(e).__name__}")
            i += 1
            nap(0.2)

    def hog(self):
        held = []
        for _ in range(4000):  # bounded: at most this many openings in the run
            if not running():
                break
            while len(held) < 63 and running():
                try:
                    c = socket.create_connection(("127.0.0.1", self.port), 2, source_address=(HOSTILE_ADDRESS, 0))
                    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a header that never ends
                    held.append(c)
                    count("hostile connections opened")
                except OSError:
                    count("hostile connection refused")
                    break
            nap(20)
            alive = []
            for c in held:
                try:
                    c.sendall(b"X")  # one byte every 20 s: slow headers
                    alive.append(c)
                except OSError:
                    c.close()
                    count("hostile connections closed by the commune")
            held = alive
        for c in held:
            c.close()

    def guesses(self):
        s = self.session()
        while running():
            try:
                page = s.get(self.base + "/sign-in", timeout=10)
                m = re.search(r'name="csrf" value="([^"]+)"', page.text)
                r = s.post(self.base + "/sign-in", timeout=10, allow_redirects=False,
                           data={"csrf": m.group(1) if m else "", "name": OFFICER, "password": f"guess-{random.random()}"})
                count(f"hostile sign-in guess {r.status_code}")
            except requests.RequestException as e:
                count(f"hostile sign-in guess {type(e).__name__}")
            nap(0.1)

    def uploads(self):
        tiny = os.path.join(self.dir, "tiny-moofs.mp4")
        seg = Segment(tiny)
        seg.piece(HEADER)
        moofs = box(b"moof", b"") * ((30 << 20) // 8)
        seg.f.write(moofs)
        seg.whole.update(moofs)
        seg.bytes += len(moofs)
        seg.pieces += [hashlib.sha256(box(b"moof", b"")).hexdigest()] * 8191
        seg.seal(self.key, "hostile", "cam1", 1, GENESIS, now_ms(), now_ms() + 1)
        s = self.session()
        auth = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {self.token}"}
        while running():
            meta = {"device": "hostile", "camera": "cam1", "start": rfc3339(now_ms()), "end": rfc3339(now_ms() + 1),
                    "sha256": file_sha(tiny), "filename": "tiny-moofs.mp4", "chain_seq": 1}
            try:
                tus_upload(self.port, self.token, tiny, meta, timeout=60, source=HOSTILE_ADDRESS)
                count("hostile tiny-moof clips filed (their proof bounded: ClipProof holds 8192 pieces)")
            except Exception as e:  # noqa: BLE001
                count(f"hostile tiny-moof clip refused: {e}")
            for headers in [{"Upload-Length": str(2**63 - 1)}, {"Upload-Length": "-1"}, {"Upload-Length": "1e300"}]:
                try:
                    r = s.post(self.base + "/files/", headers={**auth, **headers, "Upload-Metadata": ""}, timeout=10)
                    count(f"hostile absurd upload {r.status_code}")
                except requests.RequestException as e:
                    count(f"hostile absurd upload {type(e).__name__}")
            try:
                r = s.post(self.base + "/sign-in", data="x=" + "a" * (20 << 10), timeout=10,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
                count(f"hostile 20 kB form {r.status_code}")
                for rng in ["bytes=-0", "bytes=9223372036854775807-", "bytes=0-1,2-3,4-5", "bytes=a-b", "bytes=" + "1" * 400]:
                    r = s.get(self.base + "/clips/1", headers={"Range": rng}, timeout=10)
                    count(f"hostile range {r.status_code}")
                r = s.post(self.base + "/boxes/hostile/evidence", timeout=10,
                           data={"from_ms": str(-2**63), "to_ms": str(2**63 - 1)}, allow_redirects=False)
                count(f"hostile evidence form without a session {r.status_code}")
            except requests.RequestException as e:
                count(f"hostile desk request {type(e).__name__}")
            nap(30)

    def threads(self):
        return [threading.Thread(target=f, daemon=True) for f in [self.heartbeats, self.hog, self.guesses, self.uploads]]


class SourceAdapter(requests.adapters.HTTPAdapter):
    """Connections from a chosen loopback address (the hostile box's)."""

    def __init__(self, source, **kw):
        self.source = source
        super().__init__(**kw)

    def init_poolmanager(self, *a, **kw):
        kw["source_address"] = (self.source, 0)
        super().init_poolmanager(*a, **kw)


def vm(pid, field):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main():
    global END
    os.makedirs(WORK)
    data = os.path.join(WORK, "commune")
    lines = [f"# Soak, {STAMP} (Benchmarks/soak.py; MINUTES={MINUTES} HONEST={HONEST} HB_SECONDS={HB_SECONDS} UPLOAD_SECONDS={UPLOAD_SECONDS})",
             f"# machine: {os.cpu_count()} CPUs; commune {COMMUNE}", ""]
    boxes = []
    for n in range(HONEST):
        key = Key()
        out = subprocess.run([COMMUNE, "devices", "add", f"honest-{n:02d}", "--key", key.public, "--data", data],
                             check=True, capture_output=True, text=True).stdout
        boxes.append((n, out.strip().splitlines()[-1], key))
    hkey = Key()
    htoken = subprocess.run([COMMUNE, "devices", "add", "hostile", "--key", hkey.public, "--data", data],
                            check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    subprocess.run([COMMUNE, "operators", "add", OFFICER, "--password-stdin", "--data", data], input=PASSWORD + "\n",
                   check=True, capture_output=True, text=True)
    ok = False
    port = free_port()
    log = open(os.path.join(WORK, "commune.log"), "w")
    p = subprocess.Popen([COMMUNE, "serve", "--data", data, "--listen", f"127.0.0.1:{port}", "--insecure-http"],
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for_port(port), "the commune did not start: see commune.log"
        END = time.monotonic() + MINUTES * 60
        honest = [Honest(n, port, token, key, WORK) for n, token, key in boxes]
        officer = Officer(port)
        hostile = Hostile(port, htoken, hkey, WORK).threads()
        officer.start()  # signed in before the guessing starts (its browser is then known)
        time.sleep(3)
        for t in honest + hostile:
            t.start()
        peak, down = 0.0, 0
        while running():
            if p.poll() is not None:
                down += 1
                break
            peak = max(peak, vm(p.pid, "VmRSS"))
            nap(5)
        for t in honest + [officer] + hostile:
            t.join(120)
        alive = p.poll() is None
        filed = json.loads(subprocess.run([COMMUNE, "clips", "--data", data, "--json"], capture_output=True, text=True).stdout or "[]")
        verified = {c["sha256"] for c in filed if c.get("device", "").startswith("honest-") and c.get("proof") == "verified"}
        sent = [sha for b in honest for sha in b.uploaded]
        stats["honest uploads filed and verified at the commune"] = sum(1 for sha in sent if sha in verified)
        stats["commune alive at the end"] = alive and down == 0
        stats["commune peak RSS (MiB)"] = round(max(peak, vm(p.pid, "VmHWM")), 1)
        hb_sent, hb_ok = stats.get("honest heartbeats sent", 0), stats.get("honest heartbeats answered", 0)
        pages, pages_ok = stats.get("desk pages asked", 0), stats.get("desk pages answered", 0)
        lines.append(f"honest heartbeats answered: {hb_ok} of {hb_sent}; worst {stats.get('honest heartbeat worst latency (s)', '?')} s")
        lines.append(f"honest uploads filed and verified: {stats['honest uploads filed and verified at the commune']} of "
                     f"{stats.get('honest uploads sent', 0)} sent")
        lines.append(f"desk pages answered: {pages_ok} of {pages}; worst {stats.get('desk page worst latency (s)', '?')} s")
        lines.append(f"officer's sign-in at the end, during the guessing: {stats.get('officer signed in again at the end (right password, during the guessing)')}")
        lines.append(f"commune alive at the end: {stats['commune alive at the end']}; peak RSS {stats['commune peak RSS (MiB)']} MiB")
        lines.append("")
        lines.append("every counter:")
        lines += [f"  {k}: {v}" for k, v in sorted(stats.items())]
        ok = (hb_sent > 0 and hb_ok == hb_sent and stats["honest uploads filed and verified at the commune"] == stats.get("honest uploads sent", 0)
              and pages > 0 and pages_ok == pages and stats["commune alive at the end"]
              and stats.get("officer signed in at the start") and stats.get("officer signed in again at the end (right password, during the guessing)"))
        lines.append("")
        lines.append("PASS: every honest heartbeat answered, every honest upload filed, the desk never down" if ok else "FAIL: see the counters")
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        open(RESULT, "w").write("\n".join(lines) + "\n")
        print("\n".join(lines))
        shutil.rmtree(WORK, ignore_errors=True)
        print(f"results: {RESULT}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
