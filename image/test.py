#!/usr/bin/env python3
"""`make image-test`: boots a Junction SD image in QEMU (TCG) and checks it is a recording box.

  image/test.py --image .build/image/junction-V-amd64.img [--arch amd64|arm64] [--commune BIN] [--work DIR]

On a copy of the image (the built image is not touched):
  1. Inspects it without booting: partitions, FAT label and boot files (and the Raspberry Pi files
     on arm64), and in the root (debugfs on a copy of the partition, no loop device) the binary,
     the enabled units, fstab by PARTUUID, an empty machine-id, no SSH host keys.
  2. Makes the copy 3 GiB bigger (a bigger card) and writes the installer's junction.toml onto the
     FAT partition with mtools, Windows line ends and all, as an installer would on a laptop. For
     the test only, a serial-console autologin is written into the copy's root.
  3. Boots it under QEMU user networking with restrict=on: the guest reaches only two guestfwd
     rules, 10.0.2.100:8554 -> a synthetic RTSP camera and 10.0.2.101:8080 -> a commune server,
     each a socat to the host's 127.0.0.1.
  4. Cuts the power during the first boot, boots again and checks: multi-user with no failed
     units, the data partition grown, junction-status.txt saying OK, junction.service recording,
     `junction status` and `junction doctor`, the watchdog armed, a heartbeat at the commune, and
     a flag in the guest arriving at the commune byte-identical.
  5. Flags a range reaching into the future and cuts the power 5 s or more into an open segment,
     without a sync: boots again, and checks recording resumes, `junction check` passes, the
     recorded time lost to the cut (the power-cut instant minus the end of what was recovered) is
     at most 2 s, and the recovered segment reaches the commune byte-identical and decodes.
  6. Cuts the power, puts a typo in junction.toml and unplugs the camera, boots again:
     junction-status.txt names the line, the box keeps its settings, and three minutes after
     power-on the report there says the recorder is not running and why.
amd64 boots under qemu-system-x86_64 (q35, OVMF), arm64 under qemu-system-aarch64 -M virt
(AAVMF), both emulated (TCG); arm64's waits are twice as long, its card only 1 GiB bigger than
the image (too small: the box must say so, and still record). Every wait has a timeout; the log
says how long each step took.
"""
import argparse
import codecs
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


class Failure(Exception):
    pass


class ControlConfirmed(Exception):
    """--control-no-fragment-sync: the loss check failed, as it must without the feature."""


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise Failure(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def partitions(img):
    """(MBR disk id without 0x, [(offset, size) of each partition]) of an image file."""
    table = json.loads(run(["sfdisk", "--json", img]))["partitiontable"]
    return table["id"].lower().replace("0x", ""), [(p["start"] * 512, p["size"] * 512) for p in table["partitions"]]


class RootPartition:
    """The image's ext4 root, read and written with debugfs on a copy of the partition (no loop
    device): `with RootPartition(img, offset, size, work) as root: ...` puts it back on exit."""

    def __init__(self, img, offset, size, work):
        self.img, self.offset, self.size, self.work = img, offset, size, work
        self.part = os.path.join(work, "root.part")
        self.dirty = False

    def __enter__(self):
        run(["dd", f"if={self.img}", f"of={self.part}", "bs=1M", f"skip={self.offset // 2**20}",
             f"count={self.size // 2**20}", "status=none"])
        return self

    def __exit__(self, *exc):
        if self.dirty and exc[0] is None:
            run(["dd", f"if={self.part}", f"of={self.img}", "bs=1M", f"seek={self.offset // 2**20}", "conv=notrunc", "status=none"])
        os.unlink(self.part)

    def debugfs(self, request):
        return subprocess.run(["debugfs", "-R", request, self.part], capture_output=True, text=True).stdout

    def write(self, path, text):
        local = os.path.join(self.work, "inject")
        with open(local, "w") as f:
            f.write(text)
        parts = path.strip("/").split("/")
        cmds = ["mkdir /" + "/".join(parts[:i]) for i in range(1, len(parts))]
        cmds += [f"write {local} {path}", f"sif {path} mode 0100644"]
        script = os.path.join(self.work, "debugfs.cmds")
        with open(script, "w") as f:
            f.write("\n".join(cmds) + "\n")
        subprocess.run(["debugfs", "-w", "-f", script, self.part], capture_output=True, text=True)
        if text.strip() not in self.debugfs(f"cat {path}"):
            raise Failure(f"debugfs did not write {path}")
        self.dirty = True


def inspect(root, disk_id, fat):
    """What the build promised, read off the image without booting it."""
    problems = []
    if "Mode:  0755" not in root.debugfs("stat /usr/bin/junction"):
        problems.append("/usr/bin/junction is missing or not 0755")
    wants = root.debugfs("ls -l /etc/systemd/system/multi-user.target.wants")
    for unit in ["junction.service", "junction-firstboot.service", "junction-growdata.service", "systemd-networkd.service"]:
        if unit not in wants:
            problems.append(f"{unit} is not enabled")
    if "junction-report.timer" not in root.debugfs("ls -l /etc/systemd/system/timers.target.wants"):
        problems.append("junction-report.timer is not enabled")
    if "multi-user.target" not in root.debugfs("stat /etc/systemd/system/default.target"):
        problems.append("the default target is not multi-user")
    fstab = root.debugfs("cat /etc/fstab")
    for n, where in [("01", "/boot/firmware"), ("04", "/var/lib/junction")]:
        if not re.search(rf"PARTUUID={disk_id}-{n}\s+{re.escape(where)}\s", fstab):
            problems.append(f"fstab does not mount PARTUUID={disk_id}-{n} at {where}")
    if not re.search(r"^/dev/root\s+/\s", fstab, re.M):
        problems.append("fstab names a partition for / (both root slots share one file system: it must be /dev/root)")
    if not re.fullmatch(r"\d+(\.\d+){0,3}(-[A-Za-z0-9.]+)?", root.debugfs("cat /usr/share/junction/release-version").strip()):
        problems.append("/usr/share/junction/release-version is not a release version")
    if "TEST-ONLY" not in root.debugfs("cat /usr/share/junction/release-keys") and not root.debugfs("cat /usr/share/junction/release-keys").strip():
        problems.append("the image trusts no release keys")
    if "junction-health.service" not in root.debugfs("ls -l /etc/systemd/system/boot-complete.target.requires"):
        problems.append("junction-health.service does not gate boot-complete.target")
    if "junction-update.path" not in root.debugfs("ls -l /etc/systemd/system/paths.target.wants"):
        problems.append("junction-update.path is not enabled")
    if "--path=/boot/firmware" not in root.debugfs("cat /etc/systemd/system/systemd-bless-boot.service.d/junction.conf"):
        problems.append("systemd-bless-boot is not told where the boot partition is (it would never keep a slot)")
    if "noatime,lazytime" not in fstab:
        problems.append("the data partition is not mounted noatime,lazytime")
    if "Size: 0" not in root.debugfs("stat /etc/machine-id"):
        problems.append("/etc/machine-id is not empty (every box must make its own)")
    if "ssh_host_" in root.debugfs("ls /etc/ssh"):
        problems.append("the image carries SSH host keys")
    if root.debugfs("cat /etc/hostname").strip() != "junction":
        problems.append("/etc/hostname is not reset")
    if "junction" not in root.debugfs("cat /etc/passwd"):
        problems.append("there is no junction user")
    entry = run(["mtype", "-i", fat, "::/loader/entries/junction-a.conf"])
    if f"root=PARTUUID={disk_id}-02" not in entry or "junction.slot=a" not in entry:
        problems.append(f"slot A's loader entry does not boot PARTUUID={disk_id}-02 as slot a: {entry}")
    slots = run(["mtype", "-i", fat, "::/junction/slots"])
    if f"b PARTUUID={disk_id}-03 /dev/disk/by-partuuid/{disk_id}-03" not in slots:
        problems.append(f"junction/slots does not name slot B: {slots}")
    if problems:
        raise Failure("the image is not what the build promised:\n  " + "\n  ".join(problems))


class Console:
    """The guest's serial console: QEMU's stdio, read by a thread into a buffer."""

    def __init__(self, proc, logfile):
        self.proc = proc
        self.buf = ""
        self.lock = threading.Lock()
        self.log = open(logfile, "a")
        self.n = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        while True:
            data = self.proc.stdout.read1(4096) if hasattr(self.proc.stdout, "read1") else self.proc.stdout.read(1)
            if not data:
                return
            text = self.decoder.decode(data)  # a character may be split across reads
            self.log.write(text)
            self.log.flush()
            with self.lock:
                self.buf += text

    def wait_for(self, pattern, timeout, what):
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.DOTALL)
        while time.monotonic() < deadline:
            with self.lock:
                m = rx.search(self.buf)
                if m:
                    self.buf = self.buf[m.end():]
                    return m
            if self.proc.poll() is not None:
                raise Failure(f"QEMU exited ({self.proc.returncode}) while waiting for {what}")
            time.sleep(0.2)
        raise Failure(f"timed out after {timeout}s waiting for {what}")

    def sh(self, command, timeout=60):
        """Runs a shell command in the guest; returns (exit status, output)."""
        self.n += 1
        n = self.n
        # The markers are computed by the shell, so the echoed command line never matches them.
        line = f"echo __B$((0+{n}))__; {command}; echo __E$((0+{n}))__ $?\n"
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()
        m = self.wait_for(rf"__B{n}__\r?\n(.*?)__E{n}__ (\d+)", timeout, f"`{command}`")
        out = m.group(1).replace("\r", "")
        return int(m.group(2)), out

    def must(self, command, timeout=60):
        rc, out = self.sh(command, timeout)
        if rc != 0:
            raise Failure(f"`{command}` exited {rc}:\n{out}")
        return out


def wait_for_segments(con, count, seconds=180):
    """Polls `junction list` in the guest until the ring holds `count` segments (bounded)."""
    t = time.monotonic()
    n = 0
    while time.monotonic() - t < seconds:
        rc, out = con.sh("junction list --json 2>/dev/null")
        try:
            n = len(json.loads(out)) if rc == 0 else 0
        except json.JSONDecodeError:
            n = 0
        if n >= count:
            break
        time.sleep(5)
    return n


def boot(args, img, vars_file, netdev, logfile, reboots=False, qmp=None):
    """QEMU on the card image. With reboots=False a guest's reboot ends QEMU (this test boots
    again itself); qmp= a Unix socket path for QEMU's machine protocol."""
    if args.arch == "amd64":
        cmd = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max",
               "-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
               "-drive", f"if=pflash,format=raw,unit=1,file={vars_file}"]
    else:
        cmd = ["qemu-system-aarch64", "-machine", "virt", "-accel", "tcg", "-cpu", "cortex-a72",
               "-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd",
               "-drive", f"if=pflash,format=raw,unit=1,file={vars_file}"]
    cmd += ["-m", str(args.memory), "-smp", "2", "-drive", f"file={img},format=raw,if=virtio,cache=unsafe",
            "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
            "-display", "none", "-monitor", "none", "-serial", "stdio"]
    cmd += [] if reboots else ["-no-reboot"]
    cmd += ["-qmp", f"unix:{qmp},server=on,wait=off"] if qmp else []
    log("boot: " + " ".join(cmd))
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, Console(proc, logfile)


def kill(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", required=True)
    ap.add_argument("--arch", choices=["amd64", "arm64"], default="amd64")
    ap.add_argument("--commune", required=True, help="the commune binary that receives the guest's uploads")
    ap.add_argument("--work", help="a folder for the copy and logs (default: a new temporary one)")
    ap.add_argument("--boot-timeout", type=int, default=600)
    ap.add_argument("--control-no-fragment-sync", action="store_true",
                    help="a control run: storage.sync_fragments = false, and the power cut must then lose more than 2 s")
    ap.add_argument("--first-boot-cut", type=float, default=20, help="seconds after the first root fsck to cut the power")
    ap.add_argument("--memory", type=int, default=1024, help="the guest's memory in MiB (a Pi 3 or Zero 2 class board: 512)")
    ap.add_argument("--reader", choices=["ffmpeg", "junction"], help="[camera] reader for the box (default: the card's template)")
    ap.add_argument("--activity", action="store_true", help="[activity] enabled on the recorded stream, and checked")
    args = ap.parse_args()
    # Emulating arm64 on x86_64 is slower than x86_64 on x86_64: every wait is twice as long.
    args.slow = 1 if args.arch == "amd64" else 2
    if args.arch == "arm64":
        args.boot_timeout *= 2
    if os.geteuid() != 0:
        sys.exit("image-test: run as root (debugfs and mtools write the image copy; QEMU needs none)")
    work = args.work or tempfile.mkdtemp(prefix="junction-image-test-")
    os.makedirs(work, exist_ok=True)
    console_log = os.path.join(work, "console.log")
    log(f"work folder {work}; the guest's console goes to {console_log}")
    procs = []
    try:
        return test(args, work, console_log, procs)
    except ControlConfirmed as e:
        log(f"PASS: {e}")
        return 0
    except Failure as e:
        log(f"FAILED: {e}")
        log(f"the guest's console: {console_log}")
        return 1
    finally:
        for p in procs:
            kill(p)


def guest_json(con, command, timeout=60):
    rc, out = con.sh(command + " 2>/dev/null", timeout)
    try:
        return json.loads(out) if rc == 0 else None
    except json.JSONDecodeError:
        return None


def epoch(rfc3339):
    """Seconds since 1970 of the RFC 3339 UTC times junction prints (2026-12-02T05:01:02.345Z)."""
    from datetime import datetime
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def start_shell(con, args, what):
    t = time.monotonic()
    con.wait_for(r"root@[\w-]+:~#", args.boot_timeout, what)
    con.must("stty -echo; export SYSTEMD_PAGER= SYSTEMD_COLORS=0 NO_COLOR=1 TERM=dumb")
    return round(time.monotonic() - t, 1)


def power_cut_loss(con, args, results, commune, data):
    """Flags a range reaching into the future, cuts the power 5 s or more into an open segment
    (no sync first), and returns the facts to check after the next boot."""
    con.must("junction flag --from=-20s --to=+60s --reason power-cut-test")
    # Into an open segment: the newest indexed segment ended 5 to 7 s ago (bounded wait; with
    # 10 s segments, the cut then comes before the next cut of the recorder's own).
    t = time.monotonic()
    age = 0.0
    health = {}
    while time.monotonic() - t < 60 * args.slow:
        health = (guest_json(con, "junction status --json") or {}).get("health") or {}
        segs = guest_json(con, "junction list --json --from=-2m") or []
        now = float(con.must("date +%s.%N").strip())
        age = now - epoch(segs[-1]["end"]) if segs else 0.0
        if 5 <= age <= 7:
            break
        time.sleep(0.5)
    # The cut: the guest's clock, then SIGKILL to QEMU at once (what the guest had not written
    # to its virtual disk is lost, as in a power cut).
    sent = time.monotonic()
    guest_now = float(con.must("date +%s.%N").strip())
    answered = time.monotonic()
    kill(con.proc)
    cut = guest_now + (time.monotonic() - answered)
    log(f"power cut at {cut:.3f} (guest clock; the `date` round trip took {answered - sent:.3f} s), "
        f"the open segment {age:.1f} s old a moment before; status.json before it: last frame "
        f"{health.get('last_packet_at')}, durable until {health.get('durable_until')}")
    # The loss below is measured to within this: the clock was read up to that long before the kill.
    results["power cut: guest clock read within (s) of the kill"] = round(time.monotonic() - sent, 2)
    return {"cut": cut, "lead": health.get("timeline_lead_seconds") or 0.0, "durable_until": health.get("durable_until"), "last_packet_at": health.get("last_packet_at")}


def check_power_cut(con, args, results, cut, commune, data):
    """After the boot that follows a cut: the recording lost at most 2 s, and what was recovered
    is playable and on its way to the commune."""
    segs = guest_json(con, "junction list --json") or []
    before = [x for x in segs if epoch(x["start"]) < cut["cut"]]
    if not before:
        raise Failure(f"no segment from before the power cut survived:\n{json.dumps(segs[-5:], indent=1)}")
    last = max(before, key=lambda x: epoch(x["end"]))
    # Footage times are the box's timeline, which may run ahead of arrival (its anchor is the
    # first packet of a connection, which libavformat may have buffered while probing): the
    # recovered end in real time is its footage time minus that lead.
    loss = cut["cut"] - (epoch(last["end"]) - cut["lead"])
    results["power cut: footage timeline ahead of arrival (s)"] = round(cut["lead"], 2)
    # The open segment is the recovered one; when nothing of it was recovered, it began where the
    # last segment kept ends.
    opened = epoch(last["start"]) if last.get("recovered") else epoch(last["end"])
    results["power cut: seconds into the open segment"] = round(cut["cut"] - opened, 1)
    results["power cut: recorded time lost (s)"] = round(loss, 2)
    if results["power cut: seconds into the open segment"] < 3:
        raise Failure(f"the cut came only {results['power cut: seconds into the open segment']} s into a segment: "
                      "too little to show what a cut loses (the aim missed)")
    log(f"after the power cut: the last recovered second is {last['end']} ({last['path'].split('/')[-1]}, "
        f"recovered={last.get('recovered')}, {last['duration_seconds']} s): {loss:.2f} s lost")
    if args.control_no_fragment_sync:
        # The control run: with per-fragment sync off the same cut must lose more than 2 s, or
        # this test could not tell the feature from its absence.
        if loss <= 2.0:
            raise Failure(f"control: with sync_fragments = false the cut lost only {loss:.2f} s; the test cannot tell")
        raise ControlConfirmed(f"control: with sync_fragments = false the power cut lost {loss:.2f} s "
                               f"({results['power cut: seconds into the open segment']} s into the open segment): the ≤ 2 s check can fail")
    if loss > 2.0:
        raise Failure(f"the power cut lost {loss:.2f} s of recording (at most 2 s allowed):\n{json.dumps(before[-3:], indent=1)}")
    if loss < -1.0:
        raise Failure(f"a segment claims to end {-loss:.2f} s after the power cut: its times are wrong")
    if not last.get("flagged"):
        raise Failure(f"the recovered segment lost its flag: {last}")
    if commune:
        t = time.monotonic()
        clip = None
        while time.monotonic() - t < 180 * args.slow and clip is None:
            out = run([commune, "clips", "--device", "image-test-01", "--json", "--data", data])
            clip = next((c for c in (json.loads(out) if out.strip() else []) if c.get("sha256") == last["sha256"]), None)
            if clip is None:
                time.sleep(3)
        if clip is None:
            raise Failure(f"the recovered, flagged segment did not reach the commune:\n{con.must('junction status')}")
        files = subprocess.run(["find", data, "-name", "*.mp4"], capture_output=True, text=True).stdout.split()
        path = next((f for f in files if run(["sha256sum", f]).split()[0] == last["sha256"]), None)
        if not path:
            raise Failure("the recovered segment's clip is not on the commune's disk")
        probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v", "-show_entries",
                                "stream=nb_read_frames", "-of", "csv=p=0", path], capture_output=True, text=True)
        frames = int((probe.stdout.strip() or "0").split(",")[0])
        if probe.returncode != 0 or probe.stderr.strip() or frames < 20 * last["duration_seconds"]:
            raise Failure(f"the recovered clip does not decode cleanly: {frames} frames for {last['duration_seconds']} s; {probe.stderr[:400]}")
        results["power cut: recovered segment at the commune"] = f"sha256-equal, {frames} frames decode"
        log(f"the recovered segment reached the commune sha256-equal and decodes ({frames} frames)")


def installer_config(template):
    """The installer's edit of the card's junction.toml: the box's id and its camera (the CHANGE
    lines), 10 s segments, no pre- or post-roll."""
    return (template.replace('id = ""', 'id = "image-test-01"', 1)
            .replace('url = ""', 'url = "rtsp://10.0.2.100:8554/cam"', 1)
            .replace("# segment_seconds = 10 ", "segment_seconds = 10   ")
            .replace("# pre_roll_seconds = 10 ", "pre_roll_seconds = 0   ")
            .replace("# post_roll_seconds = 10 ", "post_roll_seconds = 0   ")
            .replace("# [upload]", "[upload]"))


def server_config(token):
    return ("\n[server]\nurl = \"http://10.0.2.101:8080\"\ntoken = \"%s\"\nallow_insecure_http = true\n"
            "heartbeat_seconds = 10\n" % token)


def start_camera(work, procs):
    """The synthetic RTSP camera on the host (a 20 s clip, looped); returns its port."""
    port = free_port()
    clip = os.path.join(work, "clip.mp4")
    run(["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
         "-t", "20", "-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-pix_fmt", "yuv420p", "-b:v", "800k", clip])
    cam = subprocess.Popen(["/usr/bin/python3", os.path.join(REPO, "Tests/Support/rtsp_camera.py"), "--clip", clip,
                            "--port", str(port)], stdout=subprocess.PIPE, stderr=open(os.path.join(work, "camera.log"), "w"), text=True)
    procs.append(cam)
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and "READY" not in line:
        line = cam.stdout.readline()
        if not line and cam.poll() is not None:
            raise Failure("the synthetic camera did not start (camera.log)")
    log(f"camera: {line.strip()}")
    return port, cam


def user_net(camera_port, commune_port):
    """QEMU user networking with restrict=on: the guest reaches the camera and the commune only."""
    return ("user,id=n0,restrict=on"
            f",guestfwd=tcp:10.0.2.100:8554-cmd:socat - TCP:127.0.0.1:{camera_port}"
            f",guestfwd=tcp:10.0.2.101:8080-cmd:socat - TCP:127.0.0.1:{commune_port}")


def passed(args, work, results):
    results["whole test (s)"] = round(time.monotonic() - T0, 1)
    log(f"PASS ({args.arch}): " + json.dumps(results, indent=1))
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    return 0


def test(args, work, console_log, procs):
    results = {}
    img = os.path.join(work, "card.img")
    run(["cp", "--sparse=always", args.image, img])
    # A bigger card than the image: the data partition must grow into it. arm64's card is only
    # 1 GiB bigger, too small for a real box: it must say so and still record.
    grow = 3 if args.arch == "amd64" else 1
    log(f"copied {args.image}; making the copy a {grow} GiB bigger card")
    with open(img, "r+b") as f:
        f.truncate(os.path.getsize(img) + grow * 2**30)
    disk_id, parts = partitions(img)
    fat_off, _ = parts[0]
    root_off, root_size = parts[1]
    fat = f"{img}@@{fat_off}"
    listing = run(["mdir", "-b", "-i", fat, "::/"])
    for required in ["junction.toml", "README.txt", "EFI", "loader", "junction"]:
        if f"::/{required}" not in listing:
            raise Failure(f"the FAT partition lacks {required}: {listing}")
    label = run(["mlabel", "-s", "-i", fat, "::"]).strip()
    if "JUNCTION" not in label:
        raise Failure(f"the FAT partition is labelled {label!r}, not JUNCTION")
    log(f"disk id {disk_id}, partitions (offset, size MiB): {[(o, s // 2**20) for o, s in parts]}; FAT: {label}")
    if args.arch == "arm64":
        for required in ["config.txt", "cmdline.txt", "start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb"]:
            if f"::/{required}" not in listing:
                raise Failure(f"the arm64 FAT partition lacks the Raspberry Pi file {required}")
        cmdline = run(["mtype", "-i", fat, "::/cmdline.txt"])
        if f"root=PARTUUID={disk_id}-02" not in cmdline:
            raise Failure(f"cmdline.txt does not boot PARTUUID={disk_id}-02: {cmdline}")
        config_txt = run(["mtype", "-i", fat, "::/config.txt"])
        if "arm_64bit=1" not in config_txt or "kernel=junction/a/vmlinuz" not in config_txt:
            raise Failure(f"config.txt does not boot the 64-bit kernel: {config_txt}")
        pi5 = "::/bcm2712-rpi-5-b.dtb" in listing
        results["Raspberry Pi boot files"] = "Pi 4" + (" and Pi 5" if pi5 else " (no Pi 5: this kernel cannot drive its SD card)")
        log(f"Raspberry Pi files: config.txt, cmdline.txt, start4.elf, fixup4.dat, bcm2711 device trees; Pi 5: {pi5}")
    tty = "ttyS0" if args.arch == "amd64" else "ttyAMA0"
    with RootPartition(img, root_off, root_size, work) as root:
        inspect(root, disk_id, fat)
        log("image inspected: binary, enabled units, default target, fstab by PARTUUID, empty machine-id, "
            "no SSH host keys, hostname reset, junction user, slot A's loader entry, the slots, release version and keys, update units")
        # A test-only root shell on the serial console (the image has no login without a key).
        root.write(f"/etc/systemd/system/serial-getty@{tty}.service.d/autologin.conf",
                   "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 %I $TERM\n")

    # The installer's edit: the shipped template with the two CHANGE lines filled in.
    template = run(["mtype", "-i", fat, "::/junction.toml"]).replace("\r", "")
    commune_port = free_port()
    config = installer_config(template)
    if args.reader:
        if not re.search(r"^# reader = .*$", config, re.M):
            raise Failure("the card's junction.toml has no reader line to set")
        config = re.sub(r"^# reader = .*$", f'reader = "{args.reader}"', config, count=1, flags=re.M)
    if args.activity:
        config += "\n[activity]\nenabled = true\n"
    if args.control_no_fragment_sync:
        if "# sync_fragments = true " not in config:
            raise Failure("control: the card's junction.toml has no sync_fragments line to turn off")
        config = config.replace("# sync_fragments = true ", "sync_fragments = false")
    commune = os.path.abspath(args.commune) if args.commune else None
    data = os.path.join(work, "commune")
    if not commune or not os.access(commune, os.X_OK):
        raise Failure(f"no commune binary at {args.commune}: give --commune (make image-test builds it)")
    token = run([commune, "devices", "add", "image-test-01", "--data", data]).strip().splitlines()[-1]
    config += server_config(token)
    p = subprocess.Popen([commune, "serve", "--data", data, "--listen", f"127.0.0.1:{commune_port}", "--insecure-http"],
                         stdout=open(os.path.join(work, "commune.log"), "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    toml = os.path.join(work, "junction.toml")
    with open(toml, "w") as f:
        f.write(config.replace("\n", "\r\n"))
    run(["mcopy", "-o", "-i", fat, toml, "::/junction.toml"])
    # A technician's SSH key on the card, as README.txt says.
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "technician@image-test", "-f", os.path.join(work, "tech")])
    with open(os.path.join(work, "tech.pub")) as f:
        tech_key = f.read().strip()
    keys = os.path.join(work, "authorized_keys")
    with open(keys, "w") as f:
        f.write(tech_key + "\r\n")
    run(["mcopy", "-o", "-i", fat, keys, "::/authorized_keys"])

    camera_port, cam = start_camera(work, procs)
    netdev = user_net(camera_port, commune_port)
    vars_file = os.path.join(work, "efivars.fd")
    shutil.copy("/usr/share/OVMF/OVMF_VARS_4M.fd" if args.arch == "amd64" else "/usr/share/AAVMF/AAVMF_VARS.fd", vars_file)

    # A power cut during the very first boot (while the data partition grows and the settings
    # are taken): the next boot must finish the job.
    qemu, con = boot(args, img, vars_file, netdev, console_log)
    procs.append(qemu)
    con.wait_for(r"junction-root: (clean|recovering)", args.boot_timeout, "the root filesystem check of the first boot")
    time.sleep(args.first_boot_cut * args.slow)
    log(f"cutting the power during the first boot, {args.first_boot_cut * args.slow} s after the root filesystem check")
    kill(qemu)
    procs.remove(qemu)

    qemu, con = boot(args, img, vars_file, netdev, console_log)
    procs.append(qemu)
    results["first complete boot to shell (s)"] = start_shell(con, args, "a shell on the serial console")
    log(f"first complete boot: shell after {results['first complete boot to shell (s)']} s")
    state = con.sh("systemctl is-system-running --wait", timeout=args.boot_timeout)[1].strip()
    failed = con.must("systemctl --failed --no-legend --plain").strip()
    analyze = con.must("systemd-analyze").strip()
    log(f"system state: {state}; {analyze}")
    results["systemd-analyze, first complete boot"] = analyze
    results["kernel"] = con.must("uname -rm").strip()
    results["os"] = con.must(". /etc/os-release; echo $PRETTY_NAME").strip()
    log(f"{results['os']}, kernel {results['kernel']}")
    if failed:
        raise Failure(f"failed units:\n{failed}\n{con.must('journalctl -b -p warning --no-pager -n 60 -o short-monotonic')}")
    if state != "running":
        raise Failure(f"the system is {state}")

    ssh = con.must("systemctl is-active ssh.service; ls /etc/ssh/ | grep -c '_key$'; cat /root/.ssh/authorized_keys")
    if not ssh.startswith("active") or tech_key not in ssh:
        raise Failure(f"SSH is not ready with the box's own host keys and the card's technician key:\n{ssh}")
    log("ssh: active, host keys made on this box, the technician's key from the card installed")
    status_txt = con.must("cat /boot/firmware/junction-status.txt")
    if "OK: settings taken" not in status_txt:
        raise Failure(f"junction-status.txt does not say OK:\n{status_txt}")
    data_mb = int(con.must("df -m --output=size /var/lib/junction | tail -1").strip())
    results["data partition after growth (MiB)"] = data_mb
    log(f"data partition: {data_mb} MiB (512 MiB in the image, card {grow} GiB bigger)")
    if data_mb < 512 + grow * 1024 - 200:
        raise Failure(f"the data partition did not grow: {data_mb} MiB\n{con.must('journalctl -b -u junction-growdata --no-pager')}")
    warning = con.sh("cat /run/junction-card-warning.txt")[1]
    if grow == 1:
        log(f"card warning: {warning.strip()}")
        if "use a card of 8 gb or more" not in warning.lower():
            raise Failure("no warning for a card too small:\n" + con.sh("journalctl -b -u junction-growdata -o cat --no-pager")[1])
    con.must("systemctl is-active junction.service")
    segments = wait_for_segments(con, 3, seconds=180 * args.slow)
    if segments < 3:
        raise Failure(f"fewer than 3 segments after {180 * args.slow} s:\n{con.must('junction status; journalctl -b -u junction --no-pager -n 40')}")
    log(f"recording: {segments} segments")
    memory = con.must("grep -E 'MemTotal|MemAvailable' /proc/meminfo; grep -E 'VmRSS|RssAnon' /proc/$(systemctl show -p MainPID --value junction)/status")
    log(f"memory in the guest:\n{memory}")
    results["guest memory (MiB), junction's RSS"] = " ".join(memory.split())
    if args.activity:
        moved = json.loads(con.must("junction list --activity --json") or "[]")
        if not any(seg.get("activity") for seg in moved):
            raise Failure(f"activity is on, but no segment has an activity summary:\n{con.must('journalctl -b -u junction --no-pager -n 40')}")
        results["activity: segments where something moved"] = sum(1 for seg in moved if seg.get("activity"))
    status = con.must("junction status --hours 1")
    log("junction status in the guest:\n" + status)
    if "recording" not in status.lower():
        raise Failure("junction status does not say it is recording")
    rc, doctor = con.sh("junction doctor", timeout=180 * args.slow)
    log(f"junction doctor in the guest (exit {rc}):\n{doctor}")
    # The small arm64 card is a warning (⚠), not a failure; anything ✘ fails.
    if rc != 0 or "✔ storage" not in doctor:
        raise Failure("junction doctor finds something wrong on a healthy box")
    # The daemon (sandboxed by its unit) and doctor (root) must agree on the clock.
    synced_daemon = "Clock    synchronised" in status
    synced_doctor = "✔ clock" in doctor
    if synced_daemon != synced_doctor:
        raise Failure(f"status says the clock is {'' if synced_daemon else 'not '}synchronised, doctor the opposite")
    watchdog = con.must("systemctl show junction.service -p WatchdogUSec -p WatchdogTimestampMonotonic -p NRestarts")
    log(f"watchdog: {' '.join(watchdog.split())}")
    w = dict(line.split("=", 1) for line in watchdog.strip().splitlines())
    if w.get("WatchdogUSec") in (None, "0", "infinity") or w.get("WatchdogTimestampMonotonic", "0") == "0":
        raise Failure(f"the watchdog is not armed: {watchdog}")
    t = time.monotonic()
    while time.monotonic() - t < 60 * args.slow:
        devices = run([commune, "devices", "--data", data])
        if "image-test-01" in devices and "never" not in devices:
            break
        time.sleep(3)
    log(f"commune devices:\n{devices}")
    if "never" in devices:
        raise Failure("no heartbeat from the guest reached the commune")
    # A technician's flag in the guest: the footage reaches the commune, byte-identical.
    t = time.monotonic()
    flag = con.must("junction flag --from=-25s --to=-5s --reason image-test")
    log(f"flag in the guest: {flag.strip()}")
    clips = []
    while time.monotonic() - t < 120 * args.slow:
        out = run([commune, "clips", "--device", "image-test-01", "--json", "--data", data])
        clips = json.loads(out) if out.strip() else []
        if len(clips) >= 2:
            break
        time.sleep(3)
    if len(clips) < 2:
        raise Failure(f"the flagged footage did not reach the commune: {clips}\n{con.must('junction status')}")
    results["flag to 2 clips at the commune (s)"] = round(time.monotonic() - t, 1)
    local = con.must("junction list --json")
    hashes = {seg.get("sha256") for seg in json.loads(local)}
    if not all(c.get("sha256") in hashes for c in clips):
        raise Failure(f"a clip's sha256 is not one of the box's segments: {clips}")
    log(f"{len(clips)} clips at the commune, each matching a segment's sha256, {results['flag to 2 clips at the commune (s)']} s after the flag")
    before = wait_for_segments(con, 0)

    # The power cut, 5 s or more into an open segment, with nothing synced by hand.
    cut = power_cut_loss(con, args, results, commune, data)
    procs.remove(qemu)

    qemu, con = boot(args, img, vars_file, netdev, console_log)
    procs.append(qemu)
    results["boot after power cut to shell (s)"] = start_shell(con, args, "a shell after the power cut")
    state = con.sh("systemctl is-system-running --wait", timeout=args.boot_timeout)[1].strip()
    results["systemd-analyze, after power cut"] = con.must("systemd-analyze").strip()
    log(f"after the power cut: {state}; {results['systemd-analyze, after power cut']}")
    if state != "running":
        raise Failure(f"after the power cut the system is {state}:\n{con.must('systemctl --failed --no-legend --plain')}")
    recovery = con.must("journalctl -b -u junction --no-pager -o cat | grep -i -m5 -E 'recover|partial|orphan|index' || true")
    log(f"recovery, from the journal:\n{recovery}")
    after = wait_for_segments(con, before + 2, seconds=180 * args.slow)
    if after < before + 2:
        raise Failure(f"recording did not resume: {before} segments before, {after} after")
    results["resumed: segments before / now"] = f"{before} / {after}"
    check_power_cut(con, args, results, cut, commune, data)
    check = con.must("(systemctl stop junction && junction check; rc=$?; systemctl start junction; exit $rc)", timeout=120 * args.slow)
    log(f"junction check after the power cut:\n{check}")
    con.must("systemctl is-active junction.service")

    # The installer's typo, with the camera gone: the status file on the card names the line,
    # the box keeps its previous settings, and the report says why it does not record.
    log("cutting the power; the installer edits junction.toml with a typo, and the camera is unplugged")
    kill(qemu)
    procs.remove(qemu)
    with open(toml, "w") as f:
        f.write(config.replace("segment_seconds = 10", "segment_secs = 10").replace("\n", "\r\n"))
    typo_line = 1 + config[:config.index("segment_seconds = 10")].count("\n")
    run(["mcopy", "-o", "-i", fat, toml, "::/junction.toml"])
    kill(cam)
    qemu, con = boot(args, img, vars_file, netdev, console_log)
    procs.append(qemu)
    start_shell(con, args, "a shell after the typo")
    # The shell can come before firstboot has run (the camera being down, boot never "finishes").
    t = time.monotonic()
    firstboot = ""
    while time.monotonic() - t < 180 * args.slow and firstboot not in ("failed", "active"):
        firstboot = con.must("systemctl show -p ActiveState --value junction-firstboot.service").strip()
        time.sleep(3)
    if firstboot != "failed":
        raise Failure(f"junction-firstboot is {firstboot!r} after a typo: it must fail, visibly")
    con.must("systemctl is-active junction-growdata.service")
    status_txt = con.must("cat /boot/firmware/junction-status.txt")
    if f"line {typo_line}" not in status_txt or "segment_secs" not in status_txt or "previous ones" not in status_txt:
        raise Failure(f"junction-status.txt does not name line {typo_line} and the unknown key:\n{status_txt}")
    log(f"junction-status.txt after the typo:\n{status_txt.strip()}")
    if "segment_seconds = 10" not in con.must("cat /etc/junction/junction.toml"):
        raise Failure("the box did not keep its previous settings")
    # junction-report.timer fires 3 minutes after power-on (bounded wait).
    report = ""
    t = time.monotonic()
    while time.monotonic() - t < 300 * args.slow and "Recorder:" not in report:
        time.sleep(10)
        report = con.must("cat /boot/firmware/junction-status.txt")
    if "Recorder: NOT running" not in report and "Recorder: NOT recording yet" not in report:
        raise Failure(f"the report does not say the recorder is not running:\n{report}")
    log(f"junction-status.txt 3 minutes after power-on:\n{report.strip()}")
    results["typo and unplugged camera"] = "named in junction-status.txt; previous settings kept"
    return passed(args, work, results)


if __name__ == "__main__":
    sys.exit(main())
