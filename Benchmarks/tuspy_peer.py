#!/usr/bin/env python3
"""The peer in the uplink benchmark: tuspy (PyPI), configured as a user would for a bad link
(2 MiB chunks, a retry every second, 1000 retries, and a bounded outer retry around creation,
which tuspy itself does not retry). Uploads each file in order with the same metadata junction
sends.

usage: tuspy_peer.py TUS_URL TOKEN FILES_JSON
"""
import json
import os
import sys
import time

from tusclient import client

url, token, files = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
c = client.TusClient(url, headers={"Authorization": f"Bearer {token}"})
for f in files:
    uploader = c.uploader(f["path"], chunk_size=2 << 20, retries=1000, retry_delay=1, metadata={
        "device": "bench-box", "camera": "cam1", "start": f["start"], "end": f["end"], "sha256": f["sha256"],
        "filename": os.path.basename(f["path"])})
    for attempt in range(1000):
        try:
            if uploader.url:
                uploader.offset = uploader.get_offset()
            uploader.upload()
            break
        except Exception as e:  # noqa: BLE001 - the link drops; try again
            print(f"{f['path']}: {e!r}; retrying", flush=True)
            time.sleep(1)
    print(f"uploaded {f['path']}", flush=True)
