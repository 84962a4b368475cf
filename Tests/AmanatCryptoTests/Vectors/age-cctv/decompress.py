#!/usr/bin/env python3
"""Inflate the CCTV age vectors whose header says `compressed: zlib`, in place.

Run once from this folder (python3 decompress.py). Each such file keeps its header lines, minus the
`compressed: zlib` line, followed by the blank line and the inflated age file. Files without that
header line are left untouched, so running the script twice is harmless.
"""
import os
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

for name in sorted(os.listdir(HERE)):
    path = os.path.join(HERE, name)
    if not os.path.isfile(path) or name in ("LICENSE", "README.md", "decompress.py"):
        continue
    with open(path, "rb") as f:
        data = f.read()
    head, sep, body = data.partition(b"\n\n")
    if not sep:
        continue
    lines = head.split(b"\n")
    if b"compressed: zlib" not in lines:
        continue
    lines = [line for line in lines if line != b"compressed: zlib"]
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n\n" + zlib.decompress(body))
    print("inflated", name)
