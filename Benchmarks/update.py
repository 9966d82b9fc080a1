#!/usr/bin/env python3
"""Update benchmark (issue 24): bytes a box fetches over its link for a release that changes only
`junction`, against the whole bundle and against zstd --patch-from (a delta made on the build
machine from the exact old image, which a box in the field cannot rely on: its old slot may be
any earlier release).

Two root filesystems are made with mke2fs -d (no root needed, fixed UUID, hash seed and time):
the same real shared libraries and programs from this machine (about ROOTFS_MB of them) with
OLD as usr/bin/junction in the first and NEW in the second. Each is packed with `junction update
pack` at each BLOCKS size; the old image is slot a of a card made of files (an ESP folder and
two slot files), and `junction update install` writes the new release into slot b reading the
bundle through a counter: that count is what the box would fetch by range. Slot b is checked
sha256-equal to the new image.

usage (make bench-update): update.py OLD_JUNCTION NEW_JUNCTION
env: ROOTFS_MB=300 BLOCKS=4096,65536
"""
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLD, NEW = sys.argv[1], sys.argv[2]
TOOL = NEW  # the junction that packs and installs
ROOTFS_MB = int(os.environ.get("ROOTFS_MB", 300))
BLOCKS = [int(b) for b in os.environ.get("BLOCKS", "4096,65536").split(",")]
STAMP = time.strftime("%Y%m%dT%H%M%S")
WORK = os.path.join(ROOT, "Benchmarks", "results", f"update-{STAMP}")


def log(*a):
    print(*a, flush=True)


def run(*args, **kw):
    p = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} … failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p.stdout


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def tree(junction, dest):
    """A root filesystem's worth of real files: shared libraries and programs of this machine."""
    os.makedirs(dest + "/usr/bin")
    os.makedirs(dest + "/usr/lib")
    budget = ROOTFS_MB << 20
    used = 0
    for pattern in ["/usr/lib/x86_64-linux-gnu/*.so*", "/usr/lib/aarch64-linux-gnu/*.so*", "/usr/bin/*"]:
        for f in sorted(glob.glob(pattern)):
            if used >= budget or not os.path.isfile(f) or os.path.islink(f):
                continue
            size = os.path.getsize(f)
            if size > 64 << 20:
                continue
            sub = "/usr/bin/" if f.startswith("/usr/bin/") else "/usr/lib/"
            try:
                shutil.copyfile(f, dest + sub + os.path.basename(f))
            except OSError:
                continue
            used += size
    shutil.copyfile(junction, dest + "/usr/bin/junction")
    os.chmod(dest + "/usr/bin/junction", 0o755)
    return used + os.path.getsize(junction)


def image(src, out, size_mb):
    env = dict(os.environ, E2FSPROGS_FAKE_TIME="1764547200")
    run("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-U", "4a756e63-7469-6f6e-0000-000000000001",
        "-E", "hash_seed=4a756e63-7469-6f6e-0000-000000000002,root_owner=0:0", "-O", "^metadata_csum_seed",
        "-d", src, out, f"{size_mb}M", env=env)


def main():
    os.makedirs(WORK)
    log(f"work: {WORK}")
    payload = 0
    for name, binary in [("old", OLD), ("new", NEW)]:
        payload = tree(binary, f"{WORK}/{name}-tree")
    size_mb = int(payload / (1 << 20) * 1.25) + 64
    for name in ["old", "new"]:
        image(f"{WORK}/{name}-tree", f"{WORK}/{name}.ext4", size_mb)
        shutil.rmtree(f"{WORK}/{name}-tree")
    old_img, new_img = f"{WORK}/old.ext4", f"{WORK}/new.ext4"
    with open(f"{WORK}/vmlinuz", "wb") as f:
        f.write(os.urandom(8 << 20))
    with open(f"{WORK}/initrd.img", "wb") as f:
        f.write(os.urandom(16 << 20))
    key = f"{WORK}/release-key.BENCH-ONLY"
    with open(f"{WORK}/release-keys", "w") as f:
        f.write(run(TOOL, "update", "keygen", "--out", key))
    results = {"rootfs_bytes": os.path.getsize(new_img), "files_bytes": payload,
               "junction_old_bytes": os.path.getsize(OLD), "junction_new_bytes": os.path.getsize(NEW), "blocks": {}}

    # The peers: the new image compressed whole (what a full download is), and zstd's delta from
    # the exact old image (what a build machine could send a box it knew to run that image).
    run("zstd", "-q", "-f", "-19", "-T0", new_img, "-o", f"{WORK}/new.ext4.zst")
    run("zstd", "-q", "-f", "-19", "-T0", "--long=31", f"--patch-from={old_img}", new_img, "-o", f"{WORK}/new.patch.zst")
    results["zstd_full_bytes"] = os.path.getsize(f"{WORK}/new.ext4.zst")
    results["zstd_patch_bytes"] = os.path.getsize(f"{WORK}/new.patch.zst")

    for block in BLOCKS:
        for version, img in [("1.0.0", old_img), ("1.1.0", new_img)]:
            run(TOOL, "update", "pack", "--rootfs", img, "--kernel", f"{WORK}/vmlinuz", "--initrd", f"{WORK}/initrd.img",
                "--version", version, "--arch", "amd64", "--key", key, "--out", f"{WORK}/{version}-{block}.jub", "--block-bytes", str(block))
        card = f"{WORK}/card-{block}"
        os.makedirs(card + "/esp/loader/entries")
        os.makedirs(card + "/esp/junction/a")
        os.makedirs(card + "/data")
        shutil.copyfile(old_img, card + "/slot-a")
        with open(card + "/slot-b", "wb") as f:
            f.truncate(os.path.getsize(old_img))
        with open(card + "/esp/loader/entries/junction-a.conf", "w") as f:
            f.write("title Junction 1.0.0 (slot a)\nversion 1\nsort-key junction\n"
                    "linux /junction/a/vmlinuz\ninitrd /junction/a/initrd.img\noptions root=PARTUUID=0000abcd-02 ro junction.slot=a\n")
        with open(card + "/esp/junction/slots", "w") as f:
            f.write(f"a PARTUUID=0000abcd-02 {card}/slot-a\nb PARTUUID=0000abcd-03 {card}/slot-b\n")
        with open(card + "/junction.toml", "w") as f:
            f.write(f'[device]\nid = "bench-0001"\n[camera]\nurl = "rtsp://127.0.0.1:8554/cam"\n[storage]\npath = "{card}/data"\n')
        t0 = time.monotonic()
        out = run(TOOL, "update", "install", f"{WORK}/1.1.0-{block}.jub", "--config", card + "/junction.toml", "--esp", card + "/esp",
                  "--keyring", f"{WORK}/release-keys", "--cmdline", "root=PARTUUID=0000abcd-02 ro junction.slot=a", "--running", "1.0.0")
        seconds = time.monotonic() - t0
        m = re.search(r"Read (\d+) of the bundle's (\d+) bytes .* in (\d+) reads", out)
        if not m:
            raise SystemExit(f"no byte count in: {out}")
        fetched, bundle, reads = int(m.group(1)), int(m.group(2)), int(m.group(3))
        equal = sha256(card + "/slot-b") == sha256(new_img)
        results["blocks"][block] = {"bundle_bytes": bundle, "fetched_bytes": fetched, "reads": reads, "fetched_share": fetched / bundle,
                                    "fetched_vs_zstd_full": fetched / results["zstd_full_bytes"],
                                    "fetched_vs_zstd_patch": fetched / results["zstd_patch_bytes"], "slot_equal": equal,
                                    "install_seconds": round(seconds, 1), "installer_said": out.strip().splitlines()[0]}
        log(f"{block} B blocks: bundle {bundle} B, fetched {fetched} B ({100 * fetched / bundle:.1f} %) in {reads} reads, slot b equal: {equal}")
        os.remove(card + "/slot-a")
        os.remove(card + "/slot-b")
        if not equal:
            raise SystemExit("slot b is not the new image")

    with open(f"{WORK}/results.json", "w") as f:
        json.dump(results, f, indent=2)
    log(json.dumps(results, indent=2))
    for name in ["old.ext4", "new.ext4", "new.ext4.zst", "new.patch.zst"] + [f for f in os.listdir(WORK) if f.endswith(".jub")]:
        os.remove(f"{WORK}/{name}")
    log(f"results: {WORK}/results.json")


if __name__ == "__main__":
    main()
