#!/usr/bin/env python3
"""No ICU in the box (issue 25, item 1): fails when a target linked into `junction` imports full
Foundation (FoundationEssentials only: full Foundation brings ICU's ~39 MB of data into the static
binary), when the junction that `swift build` made needs libFoundation or ICU, or when a release
binary in .build-cross/out/ carries ICU's data. Also when a box target depends on what was taken
out for size (items 2 and the BoringSSL copy): async-http-client, swift-crypto. `make test` runs
it after the build.

usage: lean-check.py BIN_PATH   (the folder `swift build --show-bin-path` names)
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = sys.argv[1]
problems = []

# The local targets `junction` is made of: JunctionCLI and what it depends on, transitively.
desc = json.loads(subprocess.run(["swift", "package", "describe", "--type", "json"], cwd=ROOT, check=True,
                                 capture_output=True, text=True).stdout)
targets = {t["name"]: t for t in desc["targets"]}
box, todo = set(), ["JunctionCLI"]
while todo:
    name = todo.pop()
    if name in box or name not in targets:
        continue
    box.add(name)
    todo += targets[name].get("target_dependencies", [])

# What the box no longer carries: the reason is in the README's Benchmarks (size by part).
REMOVED = {"AsyncHTTPClient": "Uplink/HTTP1Client.swift", "Crypto": "SystemCrypto", "_CryptoExtras": "SystemCrypto"}
for name in sorted(box):
    for product in targets[name].get("product_dependencies", []):
        if product in REMOVED:
            problems.append(f"box target {name} depends on {product}: use {REMOVED[product]} (a second TLS stack or BoringSSL in junction)")

FULL = re.compile(r"^\s*(@\w+\s+)*import\s+(Foundation|FoundationInternationalization|FoundationNetworking|FoundationXML)\s*$")
for name in sorted(box):
    folder = os.path.join(ROOT, targets[name]["path"])
    for dirpath, _, files in os.walk(folder):
        for f in sorted(files):
            if not f.endswith(".swift"):
                continue
            path = os.path.join(dirpath, f)
            # `#if canImport(FoundationEssentials) … #else import Foundation #endif` is the one
            # place full Foundation may be named: the #else is for platforms without Essentials.
            stack = []
            for n, line in enumerate(open(path, encoding="utf-8"), 1):
                s = line.strip()
                if s.startswith("#if"):
                    stack.append(["essentials" if "canImport(FoundationEssentials)" in s else "other", False])
                elif s.startswith("#else") and stack:
                    stack[-1][1] = True
                elif s.startswith("#endif") and stack:
                    stack.pop()
                elif FULL.match(line) and not (stack and stack[-1][0] == "essentials" and stack[-1][1]):
                    problems.append(f"{os.path.relpath(path, ROOT)}:{n}: {s} in box target {name}: use FoundationEssentials")

junction = os.path.join(BIN, "junction")
needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", subprocess.run(["readelf", "-d", junction], check=True,
                                                                                capture_output=True, text=True).stdout)
for lib in needed:
    if re.match(r"lib(Foundation|FoundationInternationalization|_FoundationICU|FoundationNetworking|icu\w*)\.so", lib):
        problems.append(f"{junction} needs {lib}: something in the box links full Foundation or ICU")

sizes = []
out = os.path.join(ROOT, ".build-cross", "out")
for f in sorted(os.listdir(out)) if os.path.isdir(out) else []:
    path = os.path.join(out, f)
    with open(path, "rb") as b:
        data = b.read()
    sizes.append(f"{f} {len(data) / 1e6:.1f} MB")
    if b"icudt" in data:
        problems.append(f"{path} carries ICU's data (icudt): rebuild it (make release-amd64 / release-arm64) once the check above passes")

print(f"lean-check: {len(box)} box targets ({', '.join(sorted(box))}); junction needs {', '.join(l for l in needed if 'Foundation' in l) or 'no Foundation'}"
      + (f"; release binaries: {', '.join(sizes)}" if sizes else ""))
for p in problems:
    print("lean-check: " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
