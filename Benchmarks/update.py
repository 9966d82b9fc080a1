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

With BASE_IMAGE=a card image (.build/image/junction-V-amd64.img, made by `make image`), the old
root filesystem is that card's slot A itself (Debian trixie, FFmpeg, the units: what a box runs)
and the new one the same file system with only /usr/bin/junction replaced by NEW (debugfs, as a
release that fixes only junction would be); OLD is then not used.

Then the link (with COMMUNE, a commune binary): the 4 KiB bundle is served by a real `commune
serve` through Tests/Support/flaky_link.py (the same bad link as `make bench-uplink`: RATE_KBPS,
DELAY_MS), and root's installer, `junction update apply`, fetches it by range as a box does:
once on a steady link, once with the link taken down FLAPS times (FLAP_SECONDS each) during the
download. What the flaps cost is the bytes the link carried beyond the steady run's: fetched
twice.

usage (make bench-update): update.py OLD_JUNCTION NEW_JUNCTION [COMMUNE]
env: ROOTFS_MB=300 BLOCKS=4096,65536 BASE_IMAGE= TOOL= (a junction that runs here: packs and
installs; default NEW) RATE_KBPS=1000 DELAY_MS=150 FLAPS=10 FLAP_SECONDS=5 PEERS=1
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
COMMUNE = sys.argv[3] if len(sys.argv) > 3 else None
RATE = int(os.environ.get("RATE_KBPS", 1000))
DELAY = int(os.environ.get("DELAY_MS", 150))
FLAPS = int(os.environ.get("FLAPS", 10))
FLAP_SECONDS = float(os.environ.get("FLAP_SECONDS", 5))
TOOL = os.environ.get("TOOL") or NEW  # the junction that packs and installs
BASE_IMAGE = os.environ.get("BASE_IMAGE")
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


def from_card(card, old_img, new_img):
    """Slot A of a card image, and a copy of it with only /usr/bin/junction replaced by NEW."""
    table = json.loads(run("sfdisk", "--json", card))["partitiontable"]["partitions"]
    start, size = table[1]["start"], table[1]["size"]
    run("dd", f"if={card}", f"of={old_img}", "bs=512", f"skip={start}", f"count={size}", "conv=sparse", "status=none")
    run("cp", "--sparse=always", old_img, new_img)
    with open(f"{WORK}/debugfs.cmds", "w") as f:
        f.write(f"rm /usr/bin/junction\nwrite {NEW} /usr/bin/junction\nsif /usr/bin/junction mode 0100755\n")
    run("debugfs", "-w", "-f", f"{WORK}/debugfs.cmds", new_img)
    subprocess.run(["debugfs", "-R", f"dump /usr/bin/junction {WORK}/got", new_img], capture_output=True)
    if sha256(f"{WORK}/got") != sha256(NEW):
        raise SystemExit("debugfs did not put the new junction in the copy")
    os.remove(f"{WORK}/got")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_card(card, old_img):
    """A card made of files: the boot partition (slot a's entry, junction/slots), slot a holding
    the old release, an empty slot b, a data folder."""
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


def over_the_link(old_img, bundle, keys, flap_every):
    """Root's installer fetches `bundle` from a commune through the bad link; returns the link's
    counts and the installer's words. flap_every 0: a steady link."""
    name = "flaps" if flap_every else "steady"
    card, data = f"{WORK}/link-{name}", f"{WORK}/link-{name}/commune"
    make_card(card, old_img)
    token = run(COMMUNE, "devices", "add", "bench-0001", "--data", data).strip().splitlines()[-1]
    run(COMMUNE, "releases", "add", bundle, "--keyring", keys, "--data", data)
    port, lport = free_port(), free_port()
    server = subprocess.Popen([COMMUNE, "serve", "--data", data, "--listen", f"127.0.0.1:{port}", "--insecure-http"],
                              stdout=open(data + ".log", "w"), stderr=subprocess.STDOUT)
    stats = f"{card}/link.json"
    args = ["python3", os.path.join(ROOT, "Tests/Support/flaky_link.py"), "--listen", str(lport), "--target", str(port),
            "--rate-kbps", str(RATE), "--delay-ms", str(DELAY), "--stats", stats, "--duration", "7200"]
    if flap_every:
        args += ["--flap-every", str(flap_every), "--flap-seconds", str(FLAP_SECONDS)]
    proxy = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(f"{card}/link.log", "w"))
    try:
        time.sleep(1.5)
        with open(card + "/junction.toml", "w") as f:
            f.write(f'[device]\nid = "bench-0001"\n[camera]\nurl = "rtsp://127.0.0.1:8554/cam"\n[storage]\npath = "{card}/data"\n'
                    f'[server]\nurl = "http://127.0.0.1:{lport}"\ntoken = "{token}"\nallow_insecure_http = true\n')
        with open(card + "/data/update-offer.json", "w") as f:
            json.dump({"version": "1.1.0", "arch": "amd64", "path": "/api/v1/releases/1.1.0/amd64", "bytes": os.path.getsize(bundle),
                       "rollout": "bench"}, f)
        t0 = time.monotonic()
        out = run(TOOL, "update", "apply", "--config", card + "/junction.toml", "--esp", card + "/esp", "--keyring", keys,
                  "--no-reboot", "--cmdline", "root=PARTUUID=0000abcd-02 ro junction.slot=a", "--running", "1.0.0")
        seconds = time.monotonic() - t0
    finally:
        for p in (proxy, server):
            p.terminate()
            p.wait(timeout=30)
    with open(stats) as f:
        link = json.load(f)
    m = re.search(r"Fetched (\d+) of the bundle's (\d+) bytes .* in (\d+) requests", out)
    if not m:
        raise SystemExit(f"no byte count in: {out}")
    equal = sha256(card + "/slot-b") == sha256(f"{WORK}/new.ext4")
    shutil.rmtree(card)
    return {"seconds": round(seconds, 1), "link_bytes_down": link["bytes_down"], "link_bytes_up": link["bytes_up"],
            "flaps": link["flaps"], "connections": link["connections"], "fetched_bytes": int(m.group(1)),
            "requests": int(m.group(3)), "slot_equal": equal, "installer_said": out.strip().splitlines()[-1]}


def main():
    os.makedirs(WORK)
    log(f"work: {WORK}")
    payload = 0
    old_img, new_img = f"{WORK}/old.ext4", f"{WORK}/new.ext4"
    if BASE_IMAGE:
        from_card(BASE_IMAGE, old_img, new_img)
        payload = os.path.getsize(old_img)
    else:
        for name, binary in [("old", OLD), ("new", NEW)]:
            payload = tree(binary, f"{WORK}/{name}-tree")
        size_mb = int(payload / (1 << 20) * 1.25) + 64
        for name in ["old", "new"]:
            image(f"{WORK}/{name}-tree", f"{WORK}/{name}.ext4", size_mb)
            shutil.rmtree(f"{WORK}/{name}-tree")
    with open(f"{WORK}/vmlinuz", "wb") as f:
        f.write(os.urandom(8 << 20))
    with open(f"{WORK}/initrd.img", "wb") as f:
        f.write(os.urandom(16 << 20))
    key = f"{WORK}/release-key.BENCH-ONLY"
    with open(f"{WORK}/release-keys", "w") as f:
        f.write(run(TOOL, "update", "keygen", "--out", key))
    results = {"rootfs_bytes": os.path.getsize(new_img), "files_bytes": payload, "base_image": BASE_IMAGE,
               "junction_old_bytes": os.path.getsize(OLD), "junction_new_bytes": os.path.getsize(NEW), "blocks": {}}

    # The peers: the new image compressed whole (what a full download is), and zstd's delta from
    # the exact old image (what a build machine could send a box it knew to run that image).
    # PEERS=0 skips them (minutes on a 1 GiB image) when only the link is being measured.
    if os.environ.get("PEERS", "1") != "0":
        run("zstd", "-q", "-f", "-19", "-T0", new_img, "-o", f"{WORK}/new.ext4.zst")
        run("zstd", "-q", "-f", "-19", "-T0", "--long=31", f"--patch-from={old_img}", new_img, "-o", f"{WORK}/new.patch.zst")
    for name, path in [("zstd_full_bytes", "new.ext4.zst"), ("zstd_patch_bytes", "new.patch.zst")]:
        results[name] = os.path.getsize(f"{WORK}/{path}") if os.path.exists(f"{WORK}/{path}") else None

    for block in BLOCKS:
        for version, img in [("1.0.0", old_img), ("1.1.0", new_img)]:
            run(TOOL, "update", "pack", "--rootfs", img, "--kernel", f"{WORK}/vmlinuz", "--initrd", f"{WORK}/initrd.img",
                "--version", version, "--arch", "amd64", "--key", key, "--out", f"{WORK}/{version}-{block}.jub", "--block-bytes", str(block))
        card = f"{WORK}/card-{block}"
        make_card(card, old_img)
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
                                    "fetched_vs_zstd_full": fetched / results["zstd_full_bytes"] if results["zstd_full_bytes"] else None,
                                    "fetched_vs_zstd_patch": fetched / results["zstd_patch_bytes"] if results["zstd_patch_bytes"] else None,
                                    "slot_equal": equal,
                                    "install_seconds": round(seconds, 1), "installer_said": out.strip().splitlines()[0]}
        log(f"{block} B blocks: bundle {bundle} B, fetched {fetched} B ({100 * fetched / bundle:.1f} %) in {reads} reads, slot b equal: {equal}")
        os.remove(card + "/slot-a")
        os.remove(card + "/slot-b")
        if not equal:
            raise SystemExit("slot b is not the new image")

    if COMMUNE and 4096 in BLOCKS:
        # The same link as make bench-uplink, steady, then with FLAPS flaps spread over a download
        # as long as the steady one took.
        steady = over_the_link(old_img, f"{WORK}/1.1.0-4096.jub", f"{WORK}/release-keys", 0)
        log(f"steady link: {steady}")
        flapped = over_the_link(old_img, f"{WORK}/1.1.0-4096.jub", f"{WORK}/release-keys",
                                max(FLAP_SECONDS + 3, (steady["seconds"] + FLAPS * FLAP_SECONDS) / (FLAPS + 1)))
        log(f"with flaps: {flapped}")
        twice = flapped["link_bytes_down"] - steady["link_bytes_down"]
        bundle = results["blocks"][4096]["bundle_bytes"]
        results["link"] = {"rate_kbps": RATE, "delay_ms": DELAY, "flap_seconds": FLAP_SECONDS, "steady": steady, "flapped": flapped,
                           "fetched_twice_bytes": twice, "fetched_twice_share_of_bundle": twice / bundle,
                           "fetched_twice_share_of_download": twice / steady["link_bytes_down"]}
        log(f"{flapped['flaps']} flaps cost {twice} bytes fetched twice: {100 * twice / bundle:.2f} % of the bundle, "
            f"{100 * twice / steady['link_bytes_down']:.2f} % of the download")
        if not (steady["slot_equal"] and flapped["slot_equal"]):
            raise SystemExit("over the link, slot b is not the new image")

    with open(f"{WORK}/results.json", "w") as f:
        json.dump(results, f, indent=2)
    log(json.dumps(results, indent=2))
    for name in ["old.ext4", "new.ext4", "new.ext4.zst", "new.patch.zst", "vmlinuz", "initrd.img"] + [f for f in os.listdir(WORK) if f.endswith(".jub")]:
        if os.path.exists(f"{WORK}/{name}"):
            os.remove(f"{WORK}/{name}")
    for name in os.listdir(WORK):
        if name.startswith("card-"):
            shutil.rmtree(f"{WORK}/{name}")
    log(f"results: {WORK}/results.json")


if __name__ == "__main__":
    main()
