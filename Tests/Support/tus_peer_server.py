#!/usr/bin/env python3
"""A tus 1.0.0 server that is not ours (tuspyserver, from PyPI) on loopback, for interop tests:
the box must upload to any tus server with the creation extension.

usage: tus_peer_server.py PORT FILES_DIR
"""
import sys

import uvicorn
from fastapi import FastAPI
from tuspyserver import create_tus_router

port, files_dir = int(sys.argv[1]), sys.argv[2]
app = FastAPI()
app.include_router(create_tus_router(prefix="files", files_dir=files_dir))
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
