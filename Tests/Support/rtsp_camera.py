#!/usr/bin/python3
"""A synthetic RTSP camera for tests, the demo and benchmarks (loopback only).

FFmpeg cannot serve RTSP to a player, so GStreamer's RTSP server does it (see DESIGN.md, test
rig): ffmpeg loops a clip into MPEG-TS over UDP on 127.0.0.1, and the server re-serves it as
H.264 (and AAC with --audio) over RTSP to any number of clients.

  /usr/bin/python3 rtsp_camera.py --clip clip.mp4 --port 8554 [--path /cam] [--user u --password p]

Prints "READY rtsp://127.0.0.1:PORT/PATH" once a client can play it: the script plays it once
itself first (GStreamer's shared media, built for a client that arrives while the feeder is still
starting, sometimes never prerolls; that client then waits forever). Stops on SIGTERM/SIGINT.
"""
import argparse
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def die_with_parent():
    """Runs in the feeder before exec: the kernel kills it when this server dies, however it dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", required=True)
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--path", default="/cam")
    ap.add_argument("--codec", choices=["h264", "h265"], default="h264")
    ap.add_argument("--audio", action="store_true", help="also serve the clip's AAC audio")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--digest", action="store_true", help="ask for Digest sign-in (MD5) instead of Basic")
    args = ap.parse_args()

    Gst.init(None)
    udp = free_udp_port()
    feeder = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", args.clip,
         "-c", "copy", "-f", "mpegts", f"udp://127.0.0.1:{udp}?pkt_size=1316"],
        stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)

    parse, pay = ("h264parse", "rtph264pay") if args.codec == "h264" else ("h265parse", "rtph265pay")
    launch = (f"( udpsrc address=127.0.0.1 port={udp} caps=video/mpegts ! tsdemux name=d ignore-pcr=true "
              f"d. ! queue ! {parse} config-interval=-1 ! {pay} name=pay0 pt=96 ")
    if args.audio:
        launch += "d. ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97 "
    launch += ")"

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        if args.digest:
            auth.add_digest(args.user, args.password or "", token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        else:
            basic = GstRtspServer.RTSPAuth.make_basic(args.user, args.password or "")
            auth.add_basic(basic, token)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_role_from_structure(Gst.Structure.new_from_string(
            "user,media.factory.access=(boolean)true,media.factory.construct=(boolean)true"))
        factory.set_permissions(perms)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        feeder.terminate()
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")

    loop = GLib.MainLoop()

    def stop(*_):
        loop.quit()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    GLib.timeout_add(200, lambda: True)  # wake the loop so Python signal handlers run
    url = f"rtsp://127.0.0.1:{args.port}{args.path}"
    userinfo = f"{args.user}:{args.password or ''}@" if args.user else ""

    def self_check():
        """Plays the stream with ffprobe (up to 4 tries), off the main loop's thread; READY only
        once that works."""
        for attempt in range(1, 5):
            try:
                probe = subprocess.run(
                    ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-timeout", "4000000",
                     "-show_entries", "stream=codec_name", "-of", "csv=p=0",
                     url.replace("rtsp://", "rtsp://" + userinfo)],
                    stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
                if probe.returncode == 0 and probe.stdout.strip():
                    GLib.idle_add(lambda: print(f"READY {url}", flush=True))
                    return
            except subprocess.TimeoutExpired:
                pass
            print(f"camera: self-check {attempt} did not play; trying again", file=sys.stderr, flush=True)
            time.sleep(0.5)
        print(f"camera: {url} does not play after 4 tries", file=sys.stderr, flush=True)
        GLib.idle_add(loop.quit)

    threading.Thread(target=self_check, daemon=True).start()
    try:
        loop.run()
    finally:
        feeder.terminate()
        try:
            feeder.wait(timeout=3)
        except subprocess.TimeoutExpired:
            feeder.kill()


if __name__ == "__main__":
    main()
