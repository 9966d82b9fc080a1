#!/usr/bin/env python3
"""The police desk in a real browser: headless Chromium (Debian's chromium + chromium-driver),
driven with Selenium, against the real `commune` binary on loopback.

    python3 Tests/Browser/desk.py --commune PATH [--out DIR]

It registers an officer and two boxes, sends one box's heartbeat (it then goes silent), and checks
what an officer sees: the sign-in page in Vietnamese, a wrong password refused, guessing
throttled, the box list with the silent box as an alarm and first, the English switch, sign-out.
Screenshots of each page go to --out (default: a temporary folder, printed). Every wait is
bounded; the server is stopped by its PID however the script ends. Exit 0 when every check
passed; the last line is the summary.
"""
import argparse
import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHECKS = []


def check(name, ok, detail=""):
    CHECKS.append((name, bool(ok)))
    print(("  ok   " if ok else "  FAIL ") + name + ("" if ok else f": {detail}"), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, stdin=None):
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, check=True).stdout


def heartbeat(url, token, device, seconds, reports=()):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = {"device": device, "requests": list(reports), "health": {
        "recording": "recording", "version": "browser-test", "sent_at": now, "ring_bytes": 40_000_000_000,
        "budget_bytes": 57_000_000_000, "free_bytes": 8_000_000_000, "pinned_bytes": 0, "pinned_cap_bytes": 28_000_000_000,
        "queued_segments": 0, "clock_synchronized": True, "camera": "cam1", "heartbeat_seconds": seconds}}
    req = urllib.request.Request(url + "/api/v1/heartbeat", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def make_clip(path, seconds):
    """A fragmented MP4 like the box's: H.264, 320x240, 25 fps, a keyframe a second."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size=320x240:rate=25:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
                    "-movflags", "frag_keyframe+empty_moov+default_base_moof", path], check=True, timeout=60)


def upload(url, token, device, path, start, end):
    """One clip to the commune's tus endpoint, as the box sends it (creation-with-upload)."""
    data = open(path, "rb").read()
    meta = {"device": device, "camera": "cam1", "start": start, "end": end, "sha256": hashlib.sha256(data).hexdigest(),
            "filename": os.path.basename(path)}
    header = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items())
    req = urllib.request.Request(url + "/files", data=data, method="POST", headers={
        "Authorization": "Bearer " + token, "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
        "Upload-Metadata": header, "Content-Type": "application/offset+octet-stream"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, meta["sha256"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--commune", required=True)
    ap.add_argument("--out")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="desk-browser-")
    out = args.out or os.path.join(work, "screenshots")
    os.makedirs(out, exist_ok=True)
    data = os.path.join(work, "commune")
    commune = args.commune

    run([commune, "operators", "add", "nguyenvana", "--password-stdin", "--data", data], stdin="mat-khau-dai-1\n")
    run([commune, "operators", "add", "truongcongan", "--chief", "--password-stdin", "--data", data], stdin="mat-khau-truong-1\n")
    silent_token = run([commune, "devices", "add", "hop-ngatu-01", "--data", data]).strip().splitlines()[-1]
    waiting_token = run([commune, "devices", "add", "hop-cho-02", "--data", data]).strip().splitlines()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(os.path.join(work, "commune.log"), "w")
    server = subprocess.Popen([commune, "serve", "--data", data, "--listen", f"127.0.0.1:{port}", "--insecure-http"],
                              stdout=log, stderr=subprocess.STDOUT)
    driver = None
    try:
        for _ in range(100):  # bounded: 10 s for the server to listen
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        # One box says it heartbeats every second, then goes quiet: silent after 3 s.
        check("a box's heartbeat is taken", heartbeat(url, silent_token, "hop-ngatu-01", 1) == 200)

        options = webdriver.ChromeOptions()
        for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900",
                  "--lang=vi-VN", "--no-first-run", "--disable-background-networking", "--disable-sync",
                  "--disable-component-update", "--disable-default-apps", "--autoplay-policy=no-user-gesture-required"]:
            options.add_argument(a)
        options.add_experimental_option("prefs", {"intl.accept_languages": "vi-VN,vi"})
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        driver.set_page_load_timeout(30)
        wait = WebDriverWait(driver, 15)

        def sign_in(name, password):
            driver.get(url + "/sign-in")
            field = driver.find_element(By.NAME, "name")
            field.clear()
            field.send_keys(name)
            driver.find_element(By.NAME, "password").send_keys(password)
            driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            wait.until(lambda d: d.execute_script("return document.readyState") == "complete")

        driver.get(url + "/")
        check("an officer who is not signed in lands on the sign-in page", driver.current_url.endswith("/sign-in"), driver.current_url)
        check("the page speaks Vietnamese first", driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi"
              and "Đăng nhập" in driver.page_source)
        driver.save_screenshot(os.path.join(out, "1-sign-in.png"))

        sign_in("nguyenvana", "sai-mat-khau")
        check("a wrong password is refused, said in Vietnamese", "Tên hoặc mật khẩu không đúng" in driver.page_source)
        check("the name typed is kept for the next try", driver.find_element(By.NAME, "name").get_attribute("value") == "nguyenvana")
        driver.save_screenshot(os.path.join(out, "2-wrong-password.png"))
        for _ in range(6):  # five failures, then the sixth attempt is held back
            sign_in("tranthib", "doan-bua")
        check("guessing is throttled", "15 phút" in driver.page_source)

        time.sleep(3.5)  # past three of the silent box's one-second heartbeats
        sign_in("nguyenvana", "mat-khau-dai-1")
        check("the right password opens the box list", driver.current_url.endswith("/boxes"), driver.current_url)
        rows = driver.find_elements(By.CSS_SELECTOR, "table.boxes tbody tr")
        first = rows[0].get_attribute("data-device") if rows else None
        check("both boxes are listed, the silent one first", len(rows) == 2 and first == "hop-ngatu-01", f"{len(rows)} rows, first {first}")
        alarms = rows[0].find_element(By.CSS_SELECTOR, "td.alarms").text if rows else ""
        check("the silent box shows the alarm", "Mất liên lạc" in alarms, alarms)
        never = rows[1].find_element(By.CSS_SELECTOR, "td.alarms").text if len(rows) > 1 else ""
        check("a box never heard from says so", "Chưa từng liên lạc" in never, never)
        driver.save_screenshot(os.path.join(out, "3-boxes-vi.png"))

        driver.find_element(By.CSS_SELECTOR, "a.lang").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en")
        check("the English switch works", "Camera boxes" in driver.page_source and "Silent" in driver.page_source)
        driver.save_screenshot(os.path.join(out, "4-boxes-en.png"))

        # A request typed the Vietnamese way, followed as the box reports what it sent.
        driver.find_element(By.CSS_SELECTOR, "a.lang").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi")
        driver.get(url + "/requests/new?device=hop-cho-02")
        driver.find_element(By.NAME, "from").send_keys("29/11/2026 14:02")
        driver.find_element(By.NAME, "to").send_keys("29/11/2026 14:09")
        driver.find_element(By.NAME, "reason").send_keys("VV-2026-118 tai nạn QL37B")
        driver.save_screenshot(os.path.join(out, "5-new-request.png"))
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: "/requests/req-" in d.current_url)
        request_id = driver.current_url.rsplit("/", 1)[1]
        check("a request typed as dd/mm/yyyy HH:mm is made and waits for the box", "Chờ hộp nhận" in driver.page_source
              and "29/11/2026 14:02 – 29/11/2026 14:09" in driver.page_source)
        half = [{"from": "2026-11-29T07:02:00Z", "to": "2026-11-29T07:05:30Z", "status": "uploaded"},
                {"from": "2026-11-29T07:05:30Z", "to": "2026-11-29T07:09:00Z", "status": "pending"}]
        heartbeat(url, waiting_token, "hop-cho-02", 60, [{"id": request_id, "coverage": half}])
        WebDriverWait(driver, 15).until(lambda d: "Đang gửi về" in d.page_source)  # the page refreshes itself
        bar = driver.find_elements(By.CSS_SELECTOR, "svg.bar rect")
        check("its coverage bar shows what arrived and what is still on the box",
              [r.get_attribute("class") for r in bar] == ["uploaded", "pending"], str([r.get_attribute("class") for r in bar]))
        driver.save_screenshot(os.path.join(out, "6-request-arriving.png"))
        whole = [{"from": "2026-11-29T07:02:00Z", "to": "2026-11-29T07:09:00Z", "status": "uploaded"}]
        heartbeat(url, waiting_token, "hop-cho-02", 60, [{"id": request_id, "coverage": whole}])
        WebDriverWait(driver, 15).until(lambda d: "Hoàn tất" in d.page_source)
        check("the request completes on the page by itself", "Hoàn tất" in driver.page_source)
        driver.save_screenshot(os.path.join(out, "7-request-complete.png"))

        # Two real clips of the range arrive (a gap of 6 s between them) and are played.
        for name, seconds, start, end in [("a.mp4", 4, "2026-11-29T07:02:00Z", "2026-11-29T07:02:04Z"),
                                          ("b.mp4", 4, "2026-11-29T07:02:10Z", "2026-11-29T07:02:14Z")]:
            clip = os.path.join(work, name)
            make_clip(clip, seconds)
            status, _ = upload(url, waiting_token, "hop-cho-02", clip, start, end)
            check(f"clip {name} is uploaded over tus", status in (201, 204), str(status))
        driver.get(url + f"/requests/{request_id}/play")
        video_ready = "return document.getElementById('video') && document.getElementById('video').readyState >= 2"
        WebDriverWait(driver, 20).until(lambda d: d.execute_script(video_ready))
        check("the clip loads in the video element (readyState ≥ 2)", driver.execute_script(video_ready))
        check("the video is the camera's size", driver.execute_script("return document.getElementById('video').videoWidth") == 320)
        check("the gap between the clips is shown as a gap", len(driver.find_elements(By.CSS_SELECTOR, "#clips li.gap")) >= 1)
        driver.execute_script("document.getElementById('video').muted = true; document.getElementById('video').play()")
        WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.getElementById('video').currentTime") > 0.5)
        check("it plays: currentTime advances", driver.execute_script("return document.getElementById('video').currentTime") > 0.5)
        clock = driver.find_element(By.ID, "clock").text
        check("the wall-clock time of the frame is shown", clock.startswith("29/11/2026 14:02:0"), clock)
        driver.save_screenshot(os.path.join(out, "8-playing.png"))
        driver.find_elements(By.CSS_SELECTOR, "#clips a[data-clip]")[1].click()  # seek to the second clip
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "clock").text.startswith("29/11/2026 14:02:1"))
        check("seeking to the second clip shows its time", driver.find_element(By.ID, "clock").text.startswith("29/11/2026 14:02:1"),
              driver.find_element(By.ID, "clock").text)
        driver.execute_script("const v = document.getElementById('video'); v.currentTime = 2.5;")
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "clock").text.startswith("29/11/2026 14:02:12"))
        check("seeking inside a clip (byte ranges) shows the right second", "14:02:12" in driver.find_element(By.ID, "clock").text,
              driver.find_element(By.ID, "clock").text)

        # Evidence: one MP4 and its manifest, with the sha256 of what was downloaded on the page.
        driver.get(url + f"/requests/{request_id}")
        driver.find_element(By.CSS_SELECTOR, ".actions button[type=submit]").click()
        WebDriverWait(driver, 60).until(lambda d: "/evidence/" in d.current_url)
        rows = driver.find_elements(By.CSS_SELECTOR, "table.evidence tbody tr")
        shown = {r.find_element(By.TAG_NAME, "a").text: r.find_element(By.CSS_SELECTOR, "code.sha256").text for r in rows}
        mp4 = [n for n in shown if n.endswith(".mp4")]
        check("the evidence page lists one MP4 and its manifest", len(mp4) == 1 and any(n.endswith(".manifest.json") for n in shown), str(shown))
        driver.save_screenshot(os.path.join(out, "9-evidence.png"))
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in driver.get_cookies())
        downloaded = {}
        for name in shown:
            req = urllib.request.Request(driver.current_url + "/" + name, headers={"Cookie": cookie})
            with urllib.request.urlopen(req, timeout=30) as r:
                downloaded[name] = r.read()
        if mp4:
            got = hashlib.sha256(downloaded[mp4[0]]).hexdigest()
            check("the downloaded MP4's sha256 is the one the page shows", got == shown[mp4[0]], f"{got} vs {shown[mp4[0]]}")
            path = os.path.join(work, "evidence.mp4")
            open(path, "wb").write(downloaded[mp4[0]])
            probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=width", "-of", "json", path],
                                   capture_output=True, text=True, timeout=60)
            info = json.loads(probe.stdout or "{}")
            duration = float(info.get("format", {}).get("duration", 0))
            check("it is one playable MP4 of both clips", probe.returncode == 0 and duration >= 7.5 and info["streams"][0]["width"] == 320,
                  probe.stdout + probe.stderr)
        manifest_name = next((n for n in shown if n.endswith(".manifest.json")), None)
        manifest = json.loads(downloaded[manifest_name]) if manifest_name else {}
        sources = manifest.get("segments", [])
        check("the manifest names both source clips with their sha256, the gaps and who took it",
              len(sources) == 2 and all(s["verified"] for s in sources) and manifest.get("exported_by") == "nguyenvana"
              and manifest.get("request") == request_id and len(manifest.get("gaps", [])) >= 1, json.dumps(manifest)[:400])

        driver.find_element(By.CSS_SELECTOR, "nav form button").click()
        wait.until(lambda d: d.current_url.endswith("/sign-in"))

        # The officer in charge reads the audit log: every step above is there.
        sign_in("truongcongan", "mat-khau-truong-1")
        driver.get(url + "/audit")
        actions = [r.find_elements(By.TAG_NAME, "td")[3].text for r in driver.find_elements(By.CSS_SELECTOR, "table.audit tbody tr")]
        wanted = ["Đăng nhập", "Đăng nhập bị từ chối", "Đăng nhập bị chặn tạm thời", "Yêu cầu trích xuất", "Xem phim", "Tạo gói chứng cứ",
                  "Tải về", "Đăng xuất"]
        check("the audit log lists each step", all(a in actions for a in wanted), str(actions))
        driver.save_screenshot(os.path.join(out, "10-audit.png"))
        driver.find_element(By.CSS_SELECTOR, "nav form button").click()
        wait.until(lambda d: d.current_url.endswith("/sign-in"))
        driver.get(url + "/boxes")
        check("after signing out the list is closed", driver.current_url.endswith("/sign-in"), driver.current_url)
        # The 401/429 answers above are logged as network errors by design; anything else is not.
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"
                  and not (e.get("source") == "network" and ("status of 401" in e["message"] or "status of 429" in e["message"]))]
        check("the browser reported no other errors (CSP, missing files, script)", not errors, str(errors)[:500])
    finally:
        if driver:
            driver.quit()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    failed = [n for n, ok in CHECKS if not ok]
    print(f"screenshots: {out}")
    print(f"desk browser test: {len(CHECKS) - len(failed)} of {len(CHECKS)} checks passed" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
