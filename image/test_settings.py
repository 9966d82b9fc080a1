#!/usr/bin/env python3
"""`make image-test-settings`: settings sent from the commune to a box in QEMU (issue 24, item 7).

  image/test_settings.py --image .build/image/junction-V-amd64.img --commune BIN [--arch amd64|arm64] [--work DIR]

On a copy of the image (image/test.py's helpers: the same card, camera, commune and console):
  1. The box boots and records; `commune settings send` an upload cap: the box's daemon hands it
     on, junction-settings.service restarts the recorder with it and keeps it once it recorded and
     reached the commune; the commune lists it applied.
  2. A camera address that records nothing: rolled back at [update] health_deadline_seconds, the
     recorder back on the previous settings and recording; the commune lists it rolled back.
  3. The power is cut while a third change is being checked: the box comes back recording with
     the settings before, and the commune lists the third rolled back.
  4. The installer edits junction.toml on the card: at the next boot the card's file is in force
     alone and the commune lists the change in force before as superseded.
Every wait is bounded; results.json in the work folder holds the figures.
"""
import argparse
import importlib.util
import json
import os
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name, file):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


upd = load("imagetestupdate", "test_update.py")
base = upd.base  # one test.py module, so its Failure is the one caught
log, run, Failure, kill = base.log, base.run, base.Failure, base.kill


def revisions(commune, data):
    return (upd.commune_json(commune, data, "settings", "list", "image-test-01") or {}).get("revisions", [])


def result_of(commune, data, revision):
    return next((r.get("result") for r in revisions(commune, data) if r["revision"] == revision), None)


def send(commune, data, work, revision, text):
    path = os.path.join(work, f"settings-{revision}.toml")
    with open(path, "w") as f:
        f.write(text)
    out = run([commune, "settings", "send", "image-test-01", path, "--data", data, "--by", "image-test"])
    if f"Revision {revision} " not in out:
        raise Failure(f"commune settings send did not make revision {revision}: {out}")
    return time.monotonic()


def recording_pid(box):
    """The recorder's pid once it records (status.json of this boot), else None."""
    rc, out = box.con.sh("cat /var/lib/junction/status.json 2>/dev/null")
    try:
        s = json.loads(out) if rc == 0 else {}
    except json.JSONDecodeError:
        return None
    return s.get("pid") if s.get("state") == "recording" and s.get("segments_written", 0) >= 1 else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", required=True)
    ap.add_argument("--arch", choices=["amd64", "arm64"], default="amd64")
    ap.add_argument("--commune", required=True)
    ap.add_argument("--work")
    ap.add_argument("--boot-timeout", type=int, default=600)
    args = ap.parse_args()
    args.slow = 1 if args.arch == "amd64" else 2
    args.boot_timeout *= args.slow
    if os.geteuid() != 0:
        sys.exit("image-test-settings: run as root (debugfs and mtools write the image copy)")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit("image-test-settings: stopped"))
    work = args.work or tempfile.mkdtemp(prefix="junction-settings-test-")
    os.makedirs(work, exist_ok=True)
    log(f"work folder {work}; the guest's console goes to {work}/console.log")
    procs = []
    try:
        return test(args, work, procs)
    except Failure as e:
        log(f"FAILED: {e}")
        log(f"the guest's console: {work}/console.log")
        return 1
    finally:
        for p in procs:
            kill(p)


def test(args, work, procs):
    results = {}
    img = os.path.join(work, "card.img")
    log(f"copying {args.image}")
    run(["cp", "--sparse=always", args.image, img])
    with open(img, "r+b") as f:
        f.truncate(os.path.getsize(img) + 2**30)
    _, parts = base.partitions(img)
    if len(parts) != 4:
        raise Failure(f"the image has {len(parts)} partitions, not 4 (FAT, slot A, slot B, data): build it again")
    fat = f"{img}@@{parts[0][0]}"
    tty = "ttyS0" if args.arch == "amd64" else "ttyAMA0"
    with base.RootPartition(img, parts[1][0], parts[1][1], work) as root:
        root.write(f"/etc/systemd/system/serial-getty@{tty}.service.d/autologin.conf",
                   "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 %I $TERM\n")
        if "junction-settings.path" not in root.debugfs("ls -l /etc/systemd/system/paths.target.wants"):
            raise Failure("the image does not enable junction-settings.path: build it again")

    commune = os.path.abspath(args.commune)
    data = os.path.join(work, "commune")
    token = run([commune, "devices", "add", "image-test-01", "--data", data]).strip().splitlines()[-1]
    template = run(["mtype", "-i", fat, "::/junction.toml"]).replace("\r", "")
    deadline_s = 120 * args.slow
    config = base.installer_config(template) + base.server_config(token)
    config += "\n[update]\nhealth_segments = 2\nhealth_deadline_seconds = %d\n" % deadline_s
    toml = os.path.join(work, "junction.toml")
    with open(toml, "w") as f:
        f.write(config.replace("\n", "\r\n"))
    run(["mcopy", "-o", "-i", fat, toml, "::/junction.toml"])
    commune_port = base.free_port()
    procs.append(base.subprocess.Popen([commune, "serve", "--data", data, "--listen", f"127.0.0.1:{commune_port}", "--insecure-http"],
                                       stdout=open(os.path.join(work, "commune.log"), "w"), stderr=base.subprocess.STDOUT))
    netdev = base.user_net(base.start_camera(work, procs)[0], commune_port)
    vars_file = os.path.join(work, "efivars.fd")
    shutil.copy("/usr/share/OVMF/OVMF_VARS_4M.fd" if args.arch == "amd64" else "/usr/share/AAVMF/AAVMF_VARS.fd", vars_file)
    box = upd.Box(args, img, vars_file, netdev, work, procs)
    try:
        return steps(args, work, results, box, commune, data, fat, toml, config, deadline_s)
    except Failure:
        if box.proc is not None and box.proc.poll() is None:
            for command in ["junction settings status", "ls -la /var/lib/junction /var/lib/junction/update",
                            "systemctl status junction-settings.path junction-settings.service --no-pager | tail -20",
                            "journalctl -b -u junction-settings -o cat --no-pager | tail -20", "journalctl -b -u junction -o cat --no-pager | tail -20"]:
                try:
                    log(f"{command}:\n" + box.con.sh(command, timeout=60)[1])
                except Failure:
                    pass
        raise


def steps(args, work, results, box, commune, data, fat, toml, config, deadline_s):
    box.start()
    results["first boot to shell (s)"] = box.shell("the first boot's shell")
    if base.wait_for_segments(box.con, 3, seconds=180 * args.slow) < 3:
        raise Failure("the box does not record:\n" + box.con.must("junction status"))
    upd.until("a heartbeat at the commune", 90 * args.slow, lambda: "never" not in run([commune, "devices", "--data", data]))
    first_pid = upd.until("the recorder's pid", 60, lambda: recording_pid(box))

    # 1. An upload cap: applied, and the recorder restarted with it.
    t = send(commune, data, work, 1, "[upload]\nmax_kbps = 3000\n")
    upd.until("revision 1 applied at the commune", deadline_s + 120 * args.slow, lambda: result_of(commune, data, 1) == "applied")
    results["1: send to applied (s)"] = round(time.monotonic() - t, 1)
    shown = box.con.must("junction settings status")
    if "revision 1 over it" not in shown or "max_kbps = 3000" not in shown:
        raise Failure(f"the box does not show revision 1 in force:\n{shown}")
    pid = upd.until("the recorder's pid after revision 1", 60, lambda: recording_pid(box))
    if pid == first_pid:
        raise Failure("revision 1 was kept without a restart of the recorder")
    log("after revision 1:\n" + box.con.must("journalctl -u junction-settings -o cat --no-pager | tail -4"))

    # 2. A camera address that records nothing: rolled back at the deadline, recording again.
    t = send(commune, data, work, 2, '[camera]\nurl = "rtsp://10.0.2.100:1/nothing"\n')
    upd.until("revision 2 rolled back at the commune", deadline_s + 180 * args.slow, lambda: result_of(commune, data, 2) == "rolled_back", pause=10)
    results["2: send to rolled back (s)"] = round(time.monotonic() - t, 1)
    reason = next(r.get("reason") for r in revisions(commune, data) if r["revision"] == 2)
    results["2: reason at the commune"] = reason
    back = upd.until("recording again after the rollback", 120 * args.slow, lambda: recording_pid(box))
    if back == pid:
        raise Failure("the recorder was not restarted with the previous settings")
    if "revision 1 over it" not in box.con.must("junction settings status"):
        raise Failure("revision 1 is not in force after the rollback")
    doctor = box.con.must("junction doctor 2>&1 | grep -i settings || true")
    log(f"doctor after the rollback: {doctor.strip()}")
    if "rolled back" not in doctor:
        raise Failure(f"junction doctor does not warn of the rollback: {doctor}")

    # 3. A power cut while revision 3 is checked: back with revision 1, revision 3 rolled back.
    send(commune, data, work, 3, '[camera]\nurl = "rtsp://10.0.2.100:2/nothing"\n')
    upd.until("revision 3 on trial on the box", 120 * args.slow,
              lambda: '"trial"' in box.con.sh("cat /var/lib/junction/update/settings.json 2>/dev/null")[1], pause=3)
    box.cut()
    log("power cut while revision 3 was checked")
    box.start()
    box.shell("the shell after the cut")
    upd.until("recording after the cut", 180 * args.slow, lambda: recording_pid(box))
    # junction-update-settle.service records the cut-short check once the boot gets to it.
    shown = upd.until("revision 3 settled as rolled back", 180 * args.slow,
                      lambda: (lambda out: out if "revision 3 rolled back" in out else None)(box.con.must("junction settings status")))
    if "revision 1 over it" not in shown:
        raise Failure(f"after the cut the box does not run revision 1:\n{shown}")
    upd.until("revision 3 rolled back at the commune", 120 * args.slow, lambda: result_of(commune, data, 3) == "rolled_back")
    results["3: power cut in the check"] = "came back recording with revision 1; revision 3 rolled back at the commune"
    url = json.loads(box.con.must("cat /var/lib/junction/status.json")).get("camera_url", "")
    if "10.0.2.100:8554" not in url:
        raise Failure(f"after the cut the recorder reads {url}, not the installer's camera")

    # 4. The installer edits the card's file: it wins, revision 1 superseded.
    box.cut()
    with open(toml, "w") as f:
        f.write((config + "\n[log]\nlevel = \"notice\"\n").replace("\n", "\r\n"))
    run(["mcopy", "-o", "-i", fat, toml, "::/junction.toml"])
    box.start()
    box.shell("the shell after the card was edited")
    upd.until("recording after the card was edited", 180 * args.slow, lambda: recording_pid(box))
    shown = upd.until("revision 1 settled as superseded", 180 * args.slow,
                      lambda: (lambda out: out if "revision 1 superseded" in out else None)(box.con.must("junction settings status")))
    if "alone" not in shown:
        raise Failure(f"after the card's edit the box does not run its file alone:\n{shown}")
    upd.until("revision 1 superseded at the commune", 120 * args.slow, lambda: result_of(commune, data, 1) == "superseded")
    results["4: installer's edit"] = "the card's file alone in force; revision 1 superseded at the commune"
    log(run([commune, "settings", "list", "image-test-01", "--data", data]))
    return base.passed(args, work, results)


if __name__ == "__main__":
    sys.exit(main())
