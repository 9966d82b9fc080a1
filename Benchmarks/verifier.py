#!/usr/bin/env python3
"""Verifier benchmark (issue 22): the commune's check of an arriving clip (ClipProof, through a
real tus upload to `commune serve` on loopback) and `commune verify` on whole bundles, linear in
their input and bounded in memory. No root needed.

Generated here (Ed25519 by PyPI `cryptography`, the format of README "The bundle format"):
  - a sealed segment of SIZE_MB MiB (default 2000: at the commune's 2 GiB upload bound), 1 MiB
    fragments, in a one-record bundle, and uploaded to the commune as a clip;
  - a sealed 30 MiB clip of 8-byte `moof` boxes (issue 22 #3: 686 MB of memory before), uploaded;
  - bundles whose chains hold RECORDS (default 10^6) and RECORDS/10 sealed 10-s segment records
    (11 pieces each, as a box makes them), the manifest's range the last hour (360 files of
    ~10 kB): every seal and link of the chain is checked, the files of the range hashed.
Measured for each: wall time and peak RSS (`commune verify` from wait4's rusage; the commune's
VmHWM from /proc before and after the upload's last PATCH, and that PATCH's latency, which is
the whole-file SHA-256 and the seal's check). Peers in the same run: `openssl dgst -sha256` on the same
bytes (the I/O and hashing floor, SHA-NI where the CPU has it), and a seal-only chain check in Python (OpenSSL's Ed25519 through
`cryptography`: the signature floor). Results go to Benchmarks/results/verifier-STAMP.txt.

usage (make bench-verifier): verifier.py COMMUNE
env: SIZE_MB=2000 RECORDS=1000000 KEEP=0 (KEEP=1 leaves the generated files)
"""
import base64
import calendar
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from junction_format import (GENESIS, HEADER, Key, Segment, box, file_sha, fragment, free_port, record,  # noqa: E402
                             rfc3339, tus_upload, wait_for_port)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMUNE = sys.argv[1]
SIZE_MB = int(os.environ.get("SIZE_MB", 2000))
RECORDS = int(os.environ.get("RECORDS", 1_000_000))
KEEP = os.environ.get("KEEP", "0") == "1"
STAMP = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
WORK = os.path.join(ROOT, "Benchmarks", "results", f"verifier-{STAMP}")
RESULT = WORK + ".txt"
DEVICE, CAMERA = "bench-box", "cam1"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, in ms
KEY, COMMUNE_KEY = Key(), Key()
started = []
lines = []


def say(text=""):
    print(text, flush=True)
    lines.append(text)


def anchor(manifest):
    """Binds the box's key by the commune's and signs the manifest by the box (issue 23), as
    `junction export` leaves a bundle; `commune verify` is then given the commune's key."""
    proof = os.path.join(os.path.dirname(manifest), "b.proof")
    m = json.load(open(manifest))
    # Its gaps: the stretches over 1 s its verified segments leave (the format, rule 13).
    def ms(t):
        return calendar.timegm(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + (int(t[20:23]) if len(t) > 20 else 0)
    cursor, end, gaps = ms(m["from"]), ms(m["to"]), []
    for a, b in sorted((ms(x["start"]), ms(x["end"])) for x in m["segments"] if x["verified"]):
        if a - cursor > 1000:
            gaps.append({"from": rfc3339(cursor), "to": rfc3339(a), "reason": "not recorded"})
        cursor = max(cursor, b)
    if end - cursor > 1000:
        gaps.append({"from": rfc3339(cursor), "to": rfc3339(end), "reason": "not recorded"})
    m["gaps"] = gaps
    json.dump(m, open(manifest, "w"))
    json.dump(COMMUNE_KEY.bind(DEVICE, KEY.public, T0), open(os.path.join(proof, "key-binding.json"), "w"))
    json.dump(KEY.sign_manifest(manifest), open(os.path.join(proof, "manifest.sig"), "w"))
    return ["--commune-key", COMMUNE_KEY.public]


def bundle(dir, chain_lines, manifest_from, manifest_to, sources, countersign=None):
    proof = os.path.join(dir, "b.proof")
    os.makedirs(os.path.join(proof, "segments"), exist_ok=True)
    open(os.path.join(proof, "device-key.pub"), "w").write(KEY.public + "\n")
    with open(os.path.join(proof, "countersigns.jsonl"), "w") as f:
        if countersign:
            f.write(json.dumps(COMMUNE_KEY.countersign(DEVICE, *countersign)) + "\n")
    manifest = {"device": DEVICE, "camera": CAMERA, "from": rfc3339(manifest_from), "to": rfc3339(manifest_to),
                "exported_at": rfc3339(manifest_to), "junction_version": "bench", "clock_synchronized": True, "parts": [],
                "segments": sources, "gaps": [], "proof": "b.proof"}
    json.dump(manifest, open(os.path.join(dir, "b.manifest.json"), "w"))
    return proof, os.path.join(dir, "b.manifest.json")


def measure(args):
    """Wall time, peak RSS (MiB), exit status and output of one run of `args`."""
    t = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - t, usage.ru_maxrss / 1024, p.returncode, out


def python_seal_check(chain):
    """The peer for a chain: every seal checked, nothing else (an outside verifier's floor)."""
    pub = KEY.private.public_key()
    n = 0
    with open(chain, "rb") as f:
        for line in f:
            s = json.loads(line)
            h = hashlib.sha256(s["body"].encode()).hexdigest()
            pub.verify(base64.b64decode(s["signature"]), b"junction-seal/1\n" + h.encode())
            n += 1
    return n


def case_big_segment():
    dir = os.path.join(WORK, "segment")
    os.makedirs(dir)
    proof, manifest = bundle(dir, None, T0, T0 + 3_600_000, [])
    name = "big.mp4"
    path = os.path.join(proof, "segments", name)
    seg = Segment(path)
    seg.piece(HEADER)
    for n in range(SIZE_MB):
        seg.piece(fragment(n, 1 << 20))
    body, h, sig = seg.seal(KEY, DEVICE, CAMERA, 1, GENESIS, T0, T0 + 3_600_000)
    open(os.path.join(proof, "chain.jsonl"), "w").write(json.dumps({"body": body, "signature": sig}) + "\n")
    size = os.path.getsize(path)
    m = json.load(open(manifest))
    m["segments"] = [{"file": name, "start": rfc3339(T0), "end": rfc3339(T0 + 3_600_000), "bytes": size,
                      "sha256": file_sha(path),
                      "verified": True}]
    json.dump(m, open(manifest, "w"))
    return path, manifest, size




def case_tiny_moofs():
    path = os.path.join(WORK, "tiny-moofs.mp4")
    seg = Segment(path)
    seg.piece(HEADER)
    # 30 MiB of 8-byte moof boxes: one piece each as a hasher would cut them, sealed with the
    # first 8191 of them as a hostile box could (the record's bound is 8192 pieces).
    tiny = box(b"moof", b"")
    count = (30 << 20) // 8
    seg.f.write(tiny * count)
    seg.whole.update(tiny * count)
    seg.bytes += 8 * count
    seg.pieces += [hashlib.sha256(tiny).hexdigest()] * 8191  # the bound is 8192 pieces, the header one of them
    seg.seal(KEY, DEVICE, CAMERA, 1, GENESIS, T0, T0 + 10_000)
    return path


def case_chain(records):
    """A chain of `records` sealed 10-s segment records; the range the last hour, with files."""
    dir = os.path.join(WORK, f"chain-{records}")
    os.makedirs(dir)
    in_range = min(360, records)
    first_in_range = records - in_range + 1
    range_from = T0 + (first_in_range - 1) * 10_000
    range_to = T0 + records * 10_000
    proof, manifest = bundle(dir, None, range_from, range_to, [])
    prev = GENESIS
    sources = []
    fake_pieces = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(11)]
    fake_sha = hashlib.sha256(b"overwritten").hexdigest()
    with open(os.path.join(proof, "chain.jsonl"), "w") as chain:
        for seq in range(1, records + 1):
            start = T0 + (seq - 1) * 10_000
            name = f"seg-{seq:07d}.mp4"
            mono = (seq - 1) * 10_000_000_000
            if seq >= first_in_range:
                seg = Segment(os.path.join(proof, "segments", name))
                seg.piece(HEADER)
                for n in range(10):
                    seg.piece(fragment(n, 1024))
                body, h, sig = seg.seal(KEY, DEVICE, CAMERA, seq, prev, start, start + 10_000, mono)
                sources.append({"file": name, "start": rfc3339(start), "end": rfc3339(start + 10_000),
                                "bytes": os.path.getsize(os.path.join(proof, "segments", name)),
                                "sha256": file_sha(os.path.join(proof, "segments", name)), "verified": True})
            else:
                body = record(DEVICE, CAMERA, seq, prev, start, start + 10_000, name, (4_000_000, fake_sha), fake_pieces, mono)
                h, sig = KEY.seal(body)
            chain.write(json.dumps({"body": body, "signature": sig}) + "\n")
            prev = h
    # The manifest lists the range's files; the commune countersigned the head.
    bundle(dir, None, range_from, range_to, sources, countersign=(records, prev, range_to + 60_000))
    return proof, manifest


# ---- the commune, on loopback ----



def vm(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def upload(port, token, path, start_ms, seq):
    meta = {"device": DEVICE, "camera": CAMERA, "start": rfc3339(start_ms), "end": rfc3339(start_ms + 10_000),
            "sha256": file_sha(path), "filename": os.path.basename(path), "chain_seq": seq}
    return tus_upload(port, token, path, meta)


def main():
    os.makedirs(WORK)
    say(f"# Verifier benchmark, {STAMP} (Benchmarks/verifier.py; SIZE_MB={SIZE_MB} RECORDS={RECORDS})")
    say(f"# machine: {os.cpu_count()} CPUs; {os.uname().machine}; commune {COMMUNE}")
    say()
    try:
        big, big_manifest, big_size = case_big_segment()
        tiny = case_tiny_moofs()

        # The commune: enrolled box key, then the two clips as a box would upload them.
        data = os.path.join(WORK, "commune")
        out = subprocess.run([COMMUNE, "devices", "add", DEVICE, "--key", KEY.public, "--data", data], check=True,
                             capture_output=True, text=True).stdout
        token = out.strip().splitlines()[-1]
        port = free_port()
        log = open(os.path.join(WORK, "commune.log"), "w")
        p = subprocess.Popen([COMMUNE, "serve", "--data", data, "--listen", f"127.0.0.1:{port}", "--insecure-http"],
                             stdout=log, stderr=subprocess.STDOUT)
        started.append(p)
        assert wait_for_port(port), "the commune did not start: see commune.log"
        idle = vm(p.pid, "VmRSS")
        say("## ClipProof: the commune files an arriving clip (whole-file SHA-256, then the seal's check)")
        say("| clip | bytes | last PATCH (hash + seal check) | openssl dgst -sha256 of it (peer) | ratio | commune peak RSS (VmHWM) before → after | proof |")
        say("|---|---|---|---|---|---|---|")
        for name, path, start in [("sealed segment, 1 MiB fragments", big, T0), ("8-byte moof boxes", tiny, T0 + 3_600_000)]:
            before = vm(p.pid, "VmHWM")
            last = upload(port, token, path, start, 1)
            after = vm(p.pid, "VmHWM")
            peer, _, _, _ = measure(["openssl", "dgst", "-sha256", path])
            clips = json.loads(subprocess.run([COMMUNE, "clips", "--data", data, "--json"], capture_output=True, text=True).stdout or "[]")
            clip = next((c for c in clips if c.get("bytes") == os.path.getsize(path)), {})
            proof = clip.get("proof", "not filed") + (f" ({clip['proof_detail']})" if clip.get("proof") != "verified" and clip.get("proof_detail") else "")
            say(f"| {name} | {os.path.getsize(path):,} | {last:.2f} s | {peer:.2f} s | {last / peer:.2f} | {before:.0f} → {after:.0f} MiB | {proof} |")
        say(f"(commune idle RSS {idle:.0f} MiB)")
        p.send_signal(signal.SIGTERM)
        p.wait(30)
        say()

        say("## commune verify on bundles (wall time and peak RSS from wait4)")
        say("| bundle | chain bytes | files hashed | commune verify | max RSS | exit | peer | peer time | ratio |")
        say("|---|---|---|---|---|---|---|---|---|")
        t, rss, rc, out = measure([COMMUNE, "verify", *anchor(big_manifest), big_manifest])
        peer, prss, _, _ = measure(["openssl", "dgst", "-sha256", big])
        say(f"| one {big_size / (1 << 30):.2f} GiB segment | 1 record | {big_size:,} B (twice: pieces, manifest hash) | {t:.2f} s | {rss:.0f} MiB | {rc} | openssl dgst -sha256 ×2 | {2 * peer:.2f} s | {t / (2 * peer):.2f} |")
        first = out.splitlines()[0] if out else ""
        say(f"  verdict: {first}")
        chains = []
        for n in sorted({max(1, RECORDS // 10), RECORDS}):
            proof, manifest = case_chain(n)
            chain = os.path.join(proof, "chain.jsonl")
            t, rss, rc, out = measure([COMMUNE, "verify", *anchor(manifest), manifest])
            tp = time.monotonic()
            checked = python_seal_check(chain)
            peer = time.monotonic() - tp
            assert checked == n
            chains.append((n, t, rss))
            say(f"| {n:,} records, last hour in range | {os.path.getsize(chain):,} B | {min(360, n)} | {t:.2f} s | {rss:.0f} MiB | {rc} | Python seal-only check | {peer:.2f} s | {t / peer:.2f} |")
            say(f"  verdict: {out.splitlines()[0] if out else ''}")
            if not KEEP:
                shutil.rmtree(os.path.dirname(proof))
        if len(chains) == 2:
            (n1, t1, r1), (n2, t2, r2) = chains
            say()
            say(f"Linearity: {n2 / n1:.0f}× the records took {t2 / t1:.2f}× the time and {r2 / r1:.2f}× the peak memory.")
    finally:
        for p in started:
            if p.poll() is None:
                p.kill()
                p.wait()
        open(RESULT, "w").write("\n".join(lines) + "\n")
        if not KEEP:
            shutil.rmtree(WORK, ignore_errors=True)
        print(f"results: {RESULT}")


if __name__ == "__main__":
    main()
