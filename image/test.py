#!/usr/bin/env python3
"""`make image-test`: boots a Junction SD image in QEMU (TCG) and checks it is a recording box.

  image/test.py --image .build/image/junction-V-amd64.img [--arch amd64] [--work DIR]

What it does, on a copy of the image (the built image is not touched):
  1. Makes the copy 3 GiB bigger (a bigger card), and writes the installer's junction.toml onto
     the FAT partition with mtools, as an installer would on a laptop. The camera is a synthetic
     RTSP camera on the host's 127.0.0.1; a commune server runs on 127.0.0.1 too.
  2. Gives the test a root shell on the serial console: a getty autologin drop-in is written into
     the copy's root filesystem with debugfs (the image itself has no login without a password).
  3. Boots it: QEMU user networking with restrict=on, so the guest reaches nothing but the two
     guestfwd rules (10.0.2.100:8554 -> the camera, 10.0.2.101:8080 -> the commune, each a
     socat to 127.0.0.1). Checks: multi-user with no failed units, junction.service active and
     recording, `junction status` shows segments, the watchdog armed, the data partition grown,
     junction-status.txt on the FAT partition says OK, a heartbeat reached the commune.
  4. Cuts the power (SIGKILL to QEMU) while recording, boots again, and checks `junction check`
     passes and recording resumed.
With --arch arm64 (a stand-in binary, no camera) it only boots to multi-user and checks the
partitions and units. Every wait has a timeout; the log says how long each step took.
"""
import argparse
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
    table = json.loads(run(["sfdisk", "--json", img]))["partitiontable"]
    return [(p["start"] * 512, p["size"] * 512) for p in table["partitions"]]


def write_root_file(img, offset, size, path, text, work):
    """Writes a file into the ext4 root partition of an image file, without a loop device:
    copy the partition out, debugfs -w, copy it back."""
    part = os.path.join(work, "root.part")
    run(["dd", f"if={img}", f"of={part}", "bs=1M", f"skip={offset // 2**20}", f"count={size // 2**20}", "status=none"])
    local = os.path.join(work, "inject")
    with open(local, "w") as f:
        f.write(text)
    cmds = []
    parts = path.strip("/").split("/")
    for i in range(1, len(parts)):
        cmds.append("mkdir /" + "/".join(parts[:i]))
    cmds.append(f"write {local} {path}")
    cmds.append(f"sif {path} mode 0100644")
    script = os.path.join(work, "debugfs.cmds")
    with open(script, "w") as f:
        f.write("\n".join(cmds) + "\n")
    subprocess.run(["debugfs", "-w", "-f", script, part], capture_output=True, text=True)
    check = run(["debugfs", "-R", f"cat {path}", part])
    if text.strip() not in check:
        raise Failure(f"debugfs did not write {path}")
    run(["dd", f"if={part}", f"of={img}", "bs=1M", f"seek={offset // 2**20}", "conv=notrunc", "status=none"])
    os.unlink(part)


class Console:
    """The guest's serial console: QEMU's stdio, read by a thread into a buffer."""

    def __init__(self, proc, logfile):
        self.proc = proc
        self.buf = ""
        self.lock = threading.Lock()
        self.log = open(logfile, "a")
        self.n = 0
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        while True:
            data = self.proc.stdout.read1(4096) if hasattr(self.proc.stdout, "read1") else self.proc.stdout.read(1)
            if not data:
                return
            text = data.decode("utf-8", "replace")
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


def boot(args, img, vars_file, netdev, logfile):
    if args.arch == "amd64":
        cmd = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max",
               "-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
               "-drive", f"if=pflash,format=raw,unit=1,file={vars_file}"]
    else:
        cmd = ["qemu-system-aarch64", "-machine", "virt", "-accel", "tcg", "-cpu", "cortex-a72",
               "-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd",
               "-drive", f"if=pflash,format=raw,unit=1,file={vars_file}"]
    cmd += ["-m", "1024", "-smp", "2", "-drive", f"file={img},format=raw,if=virtio,cache=unsafe",
            "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
            "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot"]
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
    ap.add_argument("--commune", help="the commune binary (default: beside the image's junction build)")
    ap.add_argument("--work", help="a folder for the copy and logs (default: a new temporary one)")
    ap.add_argument("--boot-timeout", type=int, default=600)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("image-test: run as root (debugfs and mtools write the image copy; QEMU needs none)")
    work = args.work or tempfile.mkdtemp(prefix="junction-image-test-")
    os.makedirs(work, exist_ok=True)
    console_log = os.path.join(work, "console.log")
    log(f"work folder {work}; the guest's console goes to {console_log}")
    procs = []
    try:
        return test(args, work, console_log, procs)
    except Failure as e:
        log(f"FAILED: {e}")
        log(f"the guest's console: {console_log}")
        return 1
    finally:
        for p in procs:
            kill(p)


def test(args, work, console_log, procs):
    results = {}
    img = os.path.join(work, "card.img")
    log(f"copying {args.image} (sparse) and making it a 3 GiB bigger card")
    run(["cp", "--sparse=always", args.image, img])
    with open(img, "r+b") as f:
        f.truncate(os.path.getsize(img) + 3 * 2**30)
    parts = partitions(img)
    fat_off, _ = parts[0]
    root_off, root_size = parts[1]
    fat = f"{img}@@{fat_off}"
    listing = run(["mdir", "-b", "-i", fat, "::/"])
    for required in ["junction.toml", "README.txt", "EFI", "loader", "vmlinuz", "initrd.img"]:
        if f"::/{required}" not in listing:
            raise Failure(f"the FAT partition lacks {required}: {listing}")
    label = run(["mlabel", "-s", "-i", fat, "::"]).strip()
    if "JUNCTION" not in label:
        raise Failure(f"the FAT partition is labelled {label!r}, not JUNCTION")
    log(f"partitions (offset, size MiB): {[(o, s // 2**20) for o, s in parts]}; FAT label: {label}")
    if args.arch == "arm64":
        for required in ["config.txt", "cmdline.txt", "start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb"]:
            if f"::/{required}" not in listing:
                raise Failure(f"the arm64 FAT partition lacks the Raspberry Pi file {required}")
        cmdline = run(["mtype", "-i", fat, "::/cmdline.txt"])
        if "root=PARTUUID=" not in cmdline:
            raise Failure(f"cmdline.txt does not name the root by PARTUUID: {cmdline}")

    # The installer's edit: the shipped template with the two CHANGE lines filled in.
    template = run(["mtype", "-i", fat, "::/junction.toml"]).replace("\r", "")
    camera_port, commune_port = free_port(), free_port()
    config = (template.replace('id = ""', 'id = "image-test-01"', 1)
              .replace('url = ""', 'url = "rtsp://10.0.2.100:8554/cam"', 1)
              .replace("# segment_seconds = 10 ", "segment_seconds = 4    "))
    commune = None
    if args.arch == "amd64":
        commune = args.commune or os.path.join(os.path.dirname(os.path.dirname(args.image)), "..", "release", "commune")
        commune = os.path.abspath(commune)
        if os.access(commune, os.X_OK):
            data = os.path.join(work, "commune")
            token = run([commune, "devices", "add", "image-test-01", "--data", data]).strip().splitlines()[-1]
            config += ("\n[server]\nurl = \"http://10.0.2.101:8080\"\ntoken = \"%s\"\nallow_insecure_http = true\n"
                       "heartbeat_seconds = 10\n" % token)
            p = subprocess.Popen([commune, "serve", "--data", data, "--listen", f"127.0.0.1:{commune_port}", "--insecure-http"],
                                 stdout=open(os.path.join(work, "commune.log"), "w"), stderr=subprocess.STDOUT)
            procs.append(p)
        else:
            log(f"no commune binary at {commune}: the heartbeat is not checked")
            commune = None
    toml = os.path.join(work, "junction.toml")
    with open(toml, "w") as f:
        f.write(config.replace("\n", "\r\n"))
    run(["mcopy", "-o", "-i", fat, toml, "::/junction.toml"])

    # A test-only root shell on the serial console.
    tty = "ttyS0" if args.arch == "amd64" else "ttyAMA0"
    write_root_file(img, root_off, root_size, f"/etc/systemd/system/serial-getty@{tty}.service.d/autologin.conf",
                    "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 %I $TERM\n",
                    work)
    netdev = "user,id=n0,restrict=on"
    if args.arch == "amd64":
        clip = os.path.join(work, "clip.mp4")
        run(["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
             "-t", "20", "-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-pix_fmt", "yuv420p", "-b:v", "800k", clip])
        cam = subprocess.Popen(["/usr/bin/python3", os.path.join(REPO, "Tests/Support/rtsp_camera.py"), "--clip", clip,
                                "--port", str(camera_port)], stdout=subprocess.PIPE, stderr=open(os.path.join(work, "camera.log"), "w"), text=True)
        procs.append(cam)
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and "READY" not in line:
            line = cam.stdout.readline()
            if not line and cam.poll() is not None:
                raise Failure("the synthetic camera did not start (camera.log)")
        log(f"camera: {line.strip()}")
        netdev += f",guestfwd=tcp:10.0.2.100:8554-cmd:socat - TCP:127.0.0.1:{camera_port}"
        if commune:
            netdev += f",guestfwd=tcp:10.0.2.101:8080-cmd:socat - TCP:127.0.0.1:{commune_port}"
    vars_file = os.path.join(work, "efivars.fd")
    shutil.copy("/usr/share/OVMF/OVMF_VARS_4M.fd" if args.arch == "amd64" else "/usr/share/AAVMF/AAVMF_VARS.fd", vars_file)

    # First boot.
    t = time.monotonic()
    qemu, con = boot(args, img, vars_file, netdev, console_log)
    procs.append(qemu)
    con.wait_for(r"root@[\w-]+:~#", args.boot_timeout, "a shell on the serial console")
    results["first boot to shell (s)"] = round(time.monotonic() - t, 1)
    log(f"first boot: shell after {results['first boot to shell (s)']} s")
    con.must("stty -echo; export SYSTEMD_PAGER= SYSTEMD_COLORS=0 NO_COLOR=1 TERM=dumb")
    state = con.sh("systemctl is-system-running --wait", timeout=args.boot_timeout)[1].strip()
    failed = con.must("systemctl --failed --no-legend --plain").strip()
    analyze = con.must("systemd-analyze").strip()
    log(f"system state: {state}; {analyze}")
    results["systemd-analyze, first boot"] = analyze
    if failed and args.arch == "amd64":
        raise Failure(f"failed units:\n{failed}\n{con.must('journalctl -b -p warning --no-pager -n 60 -o short-monotonic')}")
    if args.arch == "arm64":
        # Booting to multi-user is the check without a real arm64 binary; the units are there.
        units = con.must("systemctl list-unit-files 'junction*' --no-legend --plain")
        log(f"junction units:\n{units}")
        if state != "running" and "junction" not in con.must("systemctl --failed --no-legend --plain"):
            raise Failure(f"the system is {state}")
        log(f"PASS (arm64 boot): {json.dumps(results)}")
        return 0
    if state != "running":
        raise Failure(f"the system is {state}")

    status_txt = con.must("cat /boot/firmware/junction-status.txt")
    if "OK: settings taken" not in status_txt:
        raise Failure(f"junction-status.txt does not say OK:\n{status_txt}")
    data_mb = int(con.must("df -m --output=size /var/lib/junction | tail -1").strip())
    results["data partition after growth (MiB)"] = data_mb
    log(f"data partition: {data_mb} MiB (512 MiB in the image, card 3 GiB bigger)")
    if data_mb < 3000:
        raise Failure(f"the data partition did not grow: {data_mb} MiB\n{con.must('journalctl -b -u junction-growdata --no-pager')}")
    con.must("systemctl is-active junction.service")
    segments = wait_for_segments(con, 3)
    if segments < 3:
        raise Failure(f"fewer than 3 segments after 180 s:\n{con.must('junction status; journalctl -b -u junction --no-pager -n 40')}")
    log(f"recording: {segments} segments")
    status = con.must("junction status --hours 1")
    log("junction status in the guest:\n" + status)
    if "recording" not in status.lower():
        raise Failure("junction status does not say it is recording")
    watchdog = con.must("systemctl show junction.service -p WatchdogUSec -p WatchdogTimestampMonotonic -p NRestarts")
    log(f"watchdog: {' '.join(watchdog.split())}")
    w = dict(line.split("=", 1) for line in watchdog.strip().splitlines())
    if w.get("WatchdogUSec") in (None, "0", "infinity") or w.get("WatchdogTimestampMonotonic", "0") == "0":
        raise Failure(f"the watchdog is not armed: {watchdog}")
    if commune:
        t = time.monotonic()
        while time.monotonic() - t < 60:
            devices = run([commune, "devices", "--data", os.path.join(work, "commune")])
            if "image-test-01" in devices and "never" not in devices:
                break
            time.sleep(3)
        log(f"commune devices:\n{devices}")
        if "never" in devices:
            raise Failure("no heartbeat from the guest reached the commune")
        # A technician's flag in the guest: the footage reaches the commune, byte-identical.
        flag = con.must("junction flag --from=-15s --to now --reason image-test")
        log(f"flag in the guest: {flag.strip()}")
        t = time.monotonic()
        clips = []
        while time.monotonic() - t < 120:
            out = run([commune, "clips", "--device", "image-test-01", "--json", "--data", os.path.join(work, "commune")])
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
    before = segments

    # The power cut, while a segment is being written.
    con.must("sync")
    time.sleep(3)
    log("cutting the power (SIGKILL to QEMU)")
    kill(qemu)
    procs.remove(qemu)

    t = time.monotonic()
    qemu, con = boot(args, img, vars_file, netdev, console_log)
    procs.append(qemu)
    con.wait_for(r"root@[\w-]+:~#", args.boot_timeout, "a shell after the power cut")
    results["boot after power cut to shell (s)"] = round(time.monotonic() - t, 1)
    con.must("stty -echo; export SYSTEMD_PAGER= SYSTEMD_COLORS=0 NO_COLOR=1 TERM=dumb")
    state = con.sh("systemctl is-system-running --wait", timeout=args.boot_timeout)[1].strip()
    results["systemd-analyze, after power cut"] = con.must("systemd-analyze").strip()
    log(f"after the power cut: {state}; {results['systemd-analyze, after power cut']}")
    if state != "running":
        raise Failure(f"after the power cut the system is {state}:\n{con.must('systemctl --failed --no-legend --plain')}")
    recovery = con.must("journalctl -b -u junction --no-pager -o cat | grep -i -m5 -E 'recover|partial|orphan|index' || true")
    log(f"recovery, from the journal:\n{recovery}")
    after = wait_for_segments(con, before + 2)
    if after < before + 2:
        raise Failure(f"recording did not resume: {before} segments before, {after} after")
    results["resumed: segments before / now"] = f"{before} / {after}"
    check = con.must("systemctl stop junction && junction check; rc=$?; systemctl start junction; exit $rc", timeout=120)
    log(f"junction check after the power cut:\n{check}")
    con.must("systemctl is-active junction.service")
    log("PASS: " + json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
