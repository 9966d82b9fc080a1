"""Junction's evidence format written from the README alone ("The bundle format, for a third
party writing a verifier"), for the benchmarks: sealed chain records, segment files with their
seal box, proof folders, and a minimal tus 1.0.0 client for the commune. Ed25519 by PyPI
`cryptography` (OpenSSL), not by Junction's code."""
import base64
import hashlib
import http.client
import json
import os
import socket
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

GENESIS = "0" * 64


def rfc3339(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def box(kind, payload):
    """An MP4 box: 4-byte big-endian size, type, payload."""
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


HEADER = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso6mp41") + box(b"moov", b"\x00" * 600)
BLOCK = os.urandom(1 << 20)


def fragment(n, size):
    """A `moof` + `mdat` of `size` bytes, numbered so that no two have the same hash."""
    moof = box(b"moof", n.to_bytes(8, "big") + b"\x00" * 88)
    return moof + box(b"mdat", BLOCK[: size - len(moof) - 8])


def file_sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


class Key:
    """An Ed25519 key: a box's device key, or a commune's."""

    def __init__(self):
        self.private = Ed25519PrivateKey.generate()
        raw = self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public = base64.b64encode(raw).decode()

    def seal(self, body):
        """(hash, signature) of a record body: the seal is over `junction-seal/1\\n` + its hash."""
        h = hashlib.sha256(body.encode()).hexdigest()
        return h, base64.b64encode(self.private.sign(b"junction-seal/1\n" + h.encode())).decode()

    def bind(self, device, device_key, at_ms):
        """The commune's key binding (`key-binding.json`, issue 23)."""
        msg = f"junction-key-binding/1\n{device}\n{device_key}\n{at_ms}\n{self.public}".encode()
        return {"v": 1, "device": device, "device_key": device_key, "bound_at": rfc3339(at_ms), "commune_key": self.public,
                "signature": base64.b64encode(self.private.sign(msg)).decode()}

    def sign_manifest(self, manifest_path, signer="box"):
        """`manifest.sig`: the signature over `junction-manifest/1\n` + SHA-256 of the manifest (CRLF as LF)."""
        digest = hashlib.sha256(open(manifest_path, "rb").read().replace(b"\r\n", b"\n")).hexdigest()
        sig = self.private.sign(b"junction-manifest/1\n" + digest.encode())
        return {"v": 1, "signer": signer, "key": self.public, "signature": base64.b64encode(sig).decode()}

    def countersign(self, device, seq, h, at_ms):
        msg = f"junction-countersign/1\n{device}\n{seq}\n{h}\n{at_ms}".encode()
        return {"device": device, "seq": seq, "hash": h, "received_at": rfc3339(at_ms),
                "signature": base64.b64encode(self.private.sign(msg)).decode(), "commune_key": self.public}


def record(device, camera, seq, prev, start, end, file, media, pieces, mono=0):
    """A segment record's body (keys sorted, no spaces: the bytes that are hashed and sealed)."""
    r = {"v": 1, "device": device, "seq": seq, "prev": prev, "kind": "segment", "camera": camera, "start_ms": start,
         "end_ms": end, "clock_synced": True, "boot_id": "b1", "mono_start_ns": mono, "file": file,
         "media_bytes": media[0], "media_sha256": media[1], "pieces": pieces, "codec": "h264"}
    return json.dumps(r, sort_keys=True, separators=(",", ":"))


class Segment:
    """Writes a fragmented-MP4-shaped file piece by piece, hashing as it goes, then its seal box."""

    def __init__(self, path):
        self.path = path
        self.f = open(path, "wb")
        self.whole = hashlib.sha256()
        self.pieces = []
        self.bytes = 0

    def piece(self, data):
        self.f.write(data)
        self.whole.update(data)
        self.pieces.append(hashlib.sha256(data).hexdigest())
        self.bytes += len(data)

    def seal(self, key, device, camera, seq, prev, start, end, mono=0):
        """Appends the seal box; returns (body, hash, signature) of the segment's record."""
        name = os.path.basename(self.path)
        body = record(device, camera, seq, prev, start, end, name, (self.bytes, self.whole.hexdigest()), self.pieces, mono)
        h, sig = key.seal(body)
        payload = json.dumps({"key": key.public, "record": body, "signature": sig, "v": 1}, sort_keys=True, separators=(",", ":"))
        self.f.write(box(b"uuid", b"Junction-seal-v1" + payload.encode()))
        self.f.close()
        return body, h, sig


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for_port(port, seconds=20):
    for _ in range(int(seconds * 10)):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def tus_upload(port, token, path, meta, chunk=16 << 20, timeout=600, source=None):
    """A minimal tus 1.0.0 client: create, then PATCH `chunk` bytes at a time (the commune's
    limit is 16 MiB). Returns the last PATCH's latency; raises on any refusal."""
    size = os.path.getsize(path)
    header = ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in meta.items())
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0) if source else None)
    auth = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}"}
    c.request("POST", "/files/", headers={**auth, "Upload-Length": str(size), "Upload-Metadata": header})
    r = c.getresponse()
    r.read()
    if r.status != 201:
        raise RuntimeError(f"create: {r.status}")
    location = r.getheader("Location")
    offset, last = 0, 0.0
    with open(path, "rb") as f:
        for _ in range(size // chunk + 2):  # bounded: one PATCH per chunk
            if offset >= size:
                break
            data = f.read(chunk)
            t = time.monotonic()
            c.request("PATCH", location, body=data, headers={
                **auth, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
            r = c.getresponse()
            r.read()
            last = time.monotonic() - t
            if r.status != 204:
                raise RuntimeError(f"PATCH at {offset}: {r.status} {r.reason}")
            offset += len(data)
    c.close()
    return last
