#!/usr/bin/env python3
"""A second verifier of Junction evidence bundles, written from Sources/Evidence/BUNDLE-FORMAT.md
alone (it shares no code with Junction; Ed25519 from PyPI `cryptography`, i.e. OpenSSL).

    verify.py [--commune-key BASE64|FILE ...] BUNDLE_DIR_OR_MANIFEST    prints the verdict, exits with its status
    verify.py --table Tests/Vectors/verdicts.tsv                        runs every vector, prints a summary
"""
import argparse
import base64
import binascii
import calendar
import hashlib
import json
import os
import re
import stat
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EXIT = {"authentic_complete": 0, "not_authentic": 1, "authentic_incomplete": 2, "consistent_unanchored": 3, "unreadable": 4}
MAX_MANIFEST, MAX_CHAIN, MAX_RECORDS, MAX_LINE = 64 << 20, 2 << 30, 10**6, 1_314_816
MAX_BODY, MAX_PIECES = 655_360, 8192
MAX_SEAL = 655_360 + 4096 + 200 * 1024
MIN_MS, MAX_MS = -62_135_596_800_000, 253_402_300_799_999
HEX64 = re.compile(r"^[0-9a-f]{64}$")
PROOF_FILES = {"device-key.pub", "chain.jsonl", "countersigns.jsonl", "key-binding.json", "manifest.sig", "segments"}


class Unreadable(Exception):
    pass


def key_of(b64):
    """A public key from base64 (standard alphabet, padded, 32 bytes), or None."""
    try:
        raw = base64.b64decode(b64, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw) if len(raw) == 32 else None
    except (binascii.Error, ValueError, TypeError):
        return None


def signed(key_b64, signature_b64, message):
    key = key_of(key_b64) if isinstance(key_b64, str) else None
    try:
        sig = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return False
    if key is None or len(sig) != 64:
        return False
    try:
        key.verify(sig, message.encode() if isinstance(message, str) else message)
        return True
    except InvalidSignature:
        return False


def fingerprint(b64):
    try:
        return hashlib.sha256(base64.b64decode(b64)).hexdigest()[:16]
    except (binascii.Error, ValueError, TypeError):
        return "?"


def ms(text):
    """RFC 3339 to Unix ms."""
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", text or "")
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "0").ljust(3, "0")[:3]
    t = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1000 + int(frac)
    if m.group(8) != "Z":
        sign = 1 if m.group(8)[0] == "+" else -1
        t -= sign * (int(m.group(8)[1:3]) * 60 + int(m.group(8)[4:6])) * 60_000
    return t


def plain_file(path, limit):
    """The bytes of a plain file of at most `limit` bytes, or why not."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, "missing"
    if not stat.S_ISREG(st.st_mode):
        return None, "not a plain file"
    if st.st_size > limit:
        return None, f"over {limit} bytes"
    with open(path, "rb") as f:
        return f.read(), None


def lines(data):
    for raw in data.split(b"\n"):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        if raw:
            yield raw


def plain_name(s):
    return isinstance(s, str) and 0 < len(s.encode()) <= 64 and "/" not in s and not s.startswith(".")


def parse_body(body):
    """A record body's fields, or raise ValueError."""
    if len(body.encode()) > MAX_BODY:
        raise ValueError("record too large")
    r = json.loads(body)
    ok = (isinstance(r, dict) and r.get("v") == 1 and isinstance(r.get("seq"), int) and 1 <= r["seq"] <= 2**53
          and isinstance(r.get("prev"), str) and HEX64.match(r["prev"]) and r.get("kind") in ("segment", "gap")
          and plain_name(r.get("device")) and plain_name(r.get("camera"))
          and all(isinstance(r.get(k), int) and MIN_MS <= r[k] <= MAX_MS for k in ("start_ms", "end_ms"))
          and r["end_ms"] >= r["start_ms"] and isinstance(r.get("clock_synced"), bool))
    if ok and r["kind"] == "segment":
        p = r.get("pieces")
        ok = (plain_name(r.get("file")) and isinstance(r.get("media_bytes"), int) and 0 <= r["media_bytes"] <= 2**50
              and isinstance(r.get("media_sha256"), str) and HEX64.match(r["media_sha256"])
              and isinstance(p, list) and 0 < len(p) <= MAX_PIECES and all(isinstance(x, str) and HEX64.match(x) for x in p))
    if ok and "software" in r:
        sw = r["software"]
        ok = isinstance(sw, str) and 1 <= len(sw.encode()) <= 64 and all(0x20 <= ord(c) <= 0x7E for c in sw)
    if not ok:
        raise ValueError("not a version-1 chain record")
    return r


def sealed_line(raw):
    s = json.loads(raw)
    if not (isinstance(s, dict) and isinstance(s.get("body"), str) and isinstance(s.get("signature"), str)):
        raise ValueError("not a sealed record")
    return s["body"], s["signature"], hashlib.sha256(s["body"].encode()).hexdigest()


def pieces(media):
    """SHA-256 of the header and of each top-level moof onward."""
    cuts, off = [0], 0
    while off + 8 <= len(media):
        size, kind = int.from_bytes(media[off:off + 4], "big"), media[off + 4:off + 8]
        if size == 1 and off + 16 <= len(media):
            size = int.from_bytes(media[off + 8:off + 16], "big")
        elif size == 0:
            size = len(media) - off
        if size < 8:
            break
        if kind == b"moof" and off > 0:
            cuts.append(off)
        off += size
    cuts.append(len(media))
    return [hashlib.sha256(media[a:b]).hexdigest() for a, b in zip(cuts, cuts[1:])]


def seal_box(tail):
    """The seal box that is exactly `tail`, or None."""
    if len(tail) < 24 or len(tail) > MAX_SEAL or int.from_bytes(tail[:4], "big") != len(tail) or tail[4:24] != b"uuid" + b"Junction-seal-v1":
        return None
    try:
        box = json.loads(tail[24:])
    except ValueError:
        return None
    return box if isinstance(box, dict) and box.get("v") == 1 and isinstance(box.get("record"), str) else None


def uncovered(frm, to, stretches):
    """Pieces of frm–to longer than 1 s that `stretches` leave uncovered."""
    out, cursor = [], frm
    for a, b in sorted((max(a, frm), min(b, to)) for a, b in stretches if b > frm and a < to):
        if a - cursor > 1000:
            out.append((cursor, a))
        cursor = max(cursor, b)
    if to - cursor > 1000:
        out.append((cursor, to))
    return out


def verify(path, trusted):
    """(verdict, problems) for the bundle at `path` (a manifest, or a folder holding one)."""
    if os.path.isdir(path):
        found = [n for n in os.listdir(path) if n.endswith(".manifest.json")]
        if len(found) != 1:
            return "unreadable", ["no single manifest in the folder"]
        path = os.path.join(path, found[0])
    folder = os.path.dirname(path) or "."
    manifest_raw, why = plain_file(path, MAX_MANIFEST)
    try:
        if manifest_raw is None:
            raise Unreadable(why)
        m = json.loads(manifest_raw)
        if not isinstance(m, dict) or not isinstance(m.get("device"), str) or not m["device"]:
            raise Unreadable("no device")
        frm, to = ms(m["from"]), ms(m["to"])
        camera = m["camera"]
        sources = {os.path.basename(s["file"]): s for s in m["segments"]}
        for s in m["segments"]:
            s["_start"], s["_end"] = ms(s["start"]), ms(s["end"])
        gaps = [(ms(g["from"]), ms(g["to"])) for g in m["gaps"]]
        parts = m["parts"]
    except (Unreadable, ValueError, KeyError, TypeError) as e:
        return "unreadable", [f"the manifest cannot be read: {e}"]
    problems = []
    proof_name = m.get("proof")
    if not plain_name(proof_name):
        return "not_authentic", ["no proof folder"]
    proof = os.path.join(folder, proof_name)
    data, why = plain_file(os.path.join(proof, "device-key.pub"), 200)
    device_key = data.decode(errors="replace").strip() if data else ""
    if key_of(device_key) is None:
        return "not_authentic", ["device-key.pub is not a key"]
    device = m["device"]
    trusted = set(trusted)
    anchored = False

    # Rule 3: only the format's files.
    problems += [f"{n} is not a file of the format" for n in sorted(set(os.listdir(proof)) - PROOF_FILES)]

    # Rule 4: the binding.
    binding = None
    data, why = plain_file(os.path.join(proof, "key-binding.json"), 4096)
    if data is not None:
        try:
            b = json.loads(data)
            msg = f"junction-key-binding/1\n{b['device']}\n{b['device_key']}\n{ms(b['bound_at'])}\n{b['commune_key']}"
            if b.get("v") != 1 or not signed(b["commune_key"], b["signature"], msg):
                raise ValueError("does not verify")
            if b["device"] != device or b["device_key"] != device_key:
                problems.append("the binding is of another device or key")
            else:
                binding = b
                anchored = b["commune_key"] in trusted
        except (ValueError, KeyError, TypeError):
            problems.append("key-binding.json does not verify")
    elif why != "missing":
        problems.append(f"key-binding.json: {why}")

    # Rule 5: countersignatures.
    counters = []
    data, why = plain_file(os.path.join(proof, "countersigns.jsonl"), 16 << 20)
    if data is None:
        problems.append(f"countersigns.jsonl: {why}")
    else:
        for raw in lines(data):
            try:
                c = json.loads(raw)
                c["_at"] = ms(c["received_at"])
                counters.append(c)
            except (ValueError, KeyError, TypeError):
                problems.append("a countersignature line cannot be read")

    # Rules 6–8: the chain, and the files of the records in the range.
    hashes, named_files, in_range_files = {}, set(), set()
    present, covered, missing = [], [], []
    last_seq, last_hash, range_end = None, None, None
    data, why = plain_file(os.path.join(proof, "chain.jsonl"), MAX_CHAIN)
    if data is None:
        problems.append(f"chain.jsonl: {why}")
        data = b""
    segdir = os.path.join(proof, "segments")
    for n, raw in enumerate(lines(data)):
        if n >= MAX_RECORDS or len(raw) > MAX_LINE:
            problems.append("chain.jsonl is over its bounds")
            break
        try:
            body, signature, h = sealed_line(raw)
            r = parse_body(body)
        except ValueError:
            problems.append(f"chain line {n + 1} is not a sealed record")
            continue
        if not signed(device_key, signature, "junction-seal/1\n" + h):
            problems.append(f"record {r['seq']} is not sealed by the device key")
            continue
        if r["device"] != device:
            problems.append(f"record {r['seq']} is of another device")
            continue
        if last_seq is not None and (r["seq"] != last_seq + 1 or r["prev"] != last_hash):
            problems.append(f"record {r['seq']} does not follow record {last_seq}")
        last_seq, last_hash = r["seq"], h
        hashes[r["seq"]] = h
        if r.get("file"):
            named_files.add(r["file"])
        if not (r["end_ms"] > frm and r["start_ms"] < to):
            continue
        range_end = r["seq"]
        covered.append((r["start_ms"], r["end_ms"]))
        if r["camera"] != camera:
            problems.append(f"record {r['seq']}: camera {r['camera']}, the manifest says {camera}")
        if r["kind"] != "segment":
            continue
        name = r["file"]
        in_range_files.add(name)
        fpath = os.path.join(segdir, name)
        listed = sources.get(name)
        try:
            st = os.lstat(fpath)
        except FileNotFoundError:
            missing.append((r["start_ms"], r["end_ms"]))
            continue
        if listed is None or listed["verified"]:
            present.append((listed["_start"], listed["_end"]) if listed else (r["start_ms"], r["end_ms"]))
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{name} is not a plain file")
            continue
        with open(fpath, "rb") as f:
            content = f.read()
        media, tail = content[:r["media_bytes"]], content[r["media_bytes"]:]
        box = seal_box(tail) if len(content) >= r["media_bytes"] else None
        if box is None:
            problems.append(f"{name}: the bytes after its media are not exactly a seal box")
            continue
        if box["record"] != body or box.get("signature") != signature:
            problems.append(f"{name}: its seal box is not record {r['seq']}'s (edited, swapped or replayed)")
            continue
        for g in box.get("gaps") or []:
            if not signed(device_key, g.get("signature"), "junction-seal/1\n" + hashlib.sha256(g.get("body", "").encode()).hexdigest()):
                problems.append(f"{name}: a gap record in its seal box is not sealed by the device key")
        if hashlib.sha256(media).hexdigest() != r["media_sha256"] or pieces(media) != r["pieces"]:
            if listed is not None and not listed["verified"]:
                missing.append((r["start_ms"], r["end_ms"]))
            else:
                problems.append(f"{name}: bytes changed since it was sealed")
            continue
        if listed is not None and listed["verified"]:
            if hashlib.sha256(content).hexdigest() != listed["sha256"]:
                problems.append(f"the manifest's sha256 of {name} is not the file's")
            if r["clock_synced"] and (listed["_start"], listed["_end"]) != (r["start_ms"], r["end_ms"]):
                problems.append(f"the manifest's times of {name} are not its record's")

    # Rule 9: every file in segments/ named; a stray one sealed past the end proves a cut.
    for name in sorted(set(os.listdir(segdir)) - named_files) if os.path.isdir(segdir) else []:
        problems.append(f"segments/{name} is named by no record")

    # Rule 10: the manifest's segments and parts.
    for s in m["segments"]:
        if s["verified"] and os.path.basename(s["file"]) not in in_range_files:
            problems.append(f"the manifest lists {s['file']}, which no record in the range names")
    for p in parts:
        data, why = plain_file(os.path.join(folder, os.path.basename(p["file"])), 1 << 62)
        if data is None or hashlib.sha256(data).hexdigest() != p["sha256"]:
            problems.append(f"{p['file']} is not the joined MP4 the manifest describes")

    # Rule 11: countersignatures.
    end = range_end if range_end is not None else last_seq
    for c in counters:
        try:
            v2 = "device_key" in c
            msg = (f"junction-countersign/2\n{c['device']}\n{c['device_key']}\n{c['seq']}\n{c['hash']}\n{c['_at']}" if v2
                   else f"junction-countersign/1\n{c['device']}\n{c['seq']}\n{c['hash']}\n{c['_at']}")
            ok = signed(c["commune_key"], c["signature"], msg) and c["device"] == device
        except (KeyError, TypeError):
            ok = False
        if not ok:
            problems.append("a countersignature does not verify")
            continue
        if v2 and c["device_key"] != device_key:
            problems.append(f"the countersignature of record {c['seq']} names another device key")
            continue
        if binding and c["commune_key"] != binding["commune_key"]:
            problems.append(f"the countersignature of record {c['seq']} is by another commune key than the binding's")
            continue
        if c["seq"] in hashes:
            if hashes[c["seq"]] != c["hash"]:
                problems.append(f"record {c['seq']} is not the one the commune countersigned")
            elif v2 and c["commune_key"] in trusted:
                anchored = True
        elif last_seq is not None and c["seq"] > last_seq:
            problems.append(f"the commune countersigned record {c['seq']}, past the chain's end: its tail was cut")

    # Rule 12: the manifest's signature.
    data, why = plain_file(os.path.join(proof, "manifest.sig"), 4096)
    if data is None:
        problems.append(f"manifest.sig: {why}")
    else:
        try:
            sig = json.loads(data)
            digest = hashlib.sha256(manifest_raw.replace(b"\r\n", b"\n")).hexdigest()
            if sig.get("v") != 1 or not signed(sig["key"], sig["signature"], "junction-manifest/1\n" + digest):
                problems.append("the manifest's signature does not verify")
            elif sig["signer"] == "box" and sig["key"] != device_key:
                problems.append("the manifest is signed by a key that is not the box's")
            elif sig["signer"] == "commune" and trusted and sig["key"] not in trusted:
                problems.append("the manifest is signed by a commune key not trusted")
            elif sig["signer"] == "commune" and not trusted and binding and sig["key"] != binding["commune_key"]:
                problems.append("the manifest is signed by another commune key than the binding's")
            elif sig["signer"] not in ("box", "commune"):
                problems.append("the manifest's signer is neither box nor commune")
        except (ValueError, KeyError, TypeError, AttributeError):
            problems.append("manifest.sig cannot be read")

    # Rule 13: the manifest's gaps are the stretches without footage here.
    without = uncovered(frm, to, present)
    if any(uncovered(a, b, gaps) for a, b in without):
        problems.append("the manifest's gaps hide a stretch without footage")
    if any(uncovered(max(a, frm), min(b, to), without) for a, b in gaps if max(a, frm) < min(b, to)):
        problems.append("a gap of the manifest holds sealed footage")

    # Rule 14 and the verdict.
    if trusted and not anchored:
        problems.append(f"the device key {fingerprint(device_key)} is bound by no commune key trusted")
    if problems:
        return "not_authentic", problems
    if not anchored:
        return "consistent_unanchored", [f"device key {fingerprint(device_key)}"
                                         + (f", bound by commune key {fingerprint(binding['commune_key'])}" if binding else "")]
    complete = not missing and not uncovered(frm, to, covered)
    return ("authentic_complete" if complete else "authentic_incomplete"), []


def trusted_keys(values):
    keys = []
    for v in values:
        if key_of(v.strip()):
            keys.append(v.strip())
            continue
        with open(v) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    if not key_of(line):
                        sys.exit(f"{v}: {line!r} is not a base64 Ed25519 key")
                    keys.append(line)
    return keys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commune-key", action="append", default=[])
    ap.add_argument("--table")
    ap.add_argument("bundle", nargs="?")
    a = ap.parse_args()
    if a.table:
        here = os.path.dirname(os.path.abspath(a.table))
        keys = {"commune": trusted_keys([os.path.join(here, "commune-key.pub")]),
                "other": trusted_keys([os.path.join(here, "other-commune-key.pub")]), "none": []}
        rows = [l.rstrip("\n").split("\t") for l in open(a.table, encoding="utf-8") if l.strip() and not l.startswith("#")]
        failed = 0
        for name, trust, status, verdict, *_ in rows:
            got, why = verify(os.path.join(here, "cases", name), keys[trust])
            ok = got == verdict and EXIT[got] == int(status)
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name:34} {trust:8} {got:22} exit {EXIT[got]}" + ("" if ok else f"  (want {verdict}, exit {status}: {why[:3]})"))
        print(f"verify.py: {len(rows) - failed} of {len(rows)} vectors got the verdict of their row" + (f", {failed} FAILED" if failed else ""))
        return 1 if failed else 0
    if not a.bundle:
        ap.error("give a bundle, or --table")
    verdict, notes = verify(a.bundle, trusted_keys(a.commune_key))
    print(verdict)
    for n in notes:
        print("  " + n)
    return EXIT[verdict]


if __name__ == "__main__":
    sys.exit(main())
