#!/usr/bin/env python3
"""A CRDT peer measured beside Amanat (make bench, row B2): Loro applies the same stream of changes.

The stream matches B2's: RECORDS records created with a title and a body, then EDITS title edits spread
over them in turn, made on one peer (one Loro commit per 1000 changes, as Amanat writes 1000 per
transaction). The measured step is what B2 measures for Amanat: a fresh peer importing the whole
stream. Loro does this with no encryption, no signatures and no storage (memory only).

Prints one JSON object: {"loro_version", "changes", "import_s", "changes_per_s", "state_ok"}.
"""
import json
import sys
import time

try:
    import loro
    from loro import ExportMode, LoroDoc, LoroMap, VersionVector
except ImportError:
    print(json.dumps({"skipped": "the loro package is not installed (pip install loro)"}))
    sys.exit(0)

records = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
edits = int(sys.argv[2]) if len(sys.argv) > 2 else 80_000
body = "x" * 256

source = LoroDoc()
root = source.get_map("records")
maps = []
pending = 0
for i in range(records):
    record = root.insert_container(f"r{i:08d}", LoroMap())
    record.insert("title", f"record {i}")
    record.insert("body", body)
    maps.append(record)
    pending += 1
    if pending == 1000:
        source.commit()
        pending = 0
for j in range(edits):
    maps[j % records].insert("title", f"edit {j}")
    pending += 1
    if pending == 1000:
        source.commit()
        pending = 0
source.commit()
stream = source.export(ExportMode.Updates(VersionVector()))

target = LoroDoc()
start = time.perf_counter()
target.import_(stream)
seconds = time.perf_counter() - start

# The import really applied the stream: the last edit of some record is what the target shows.
probe = (edits - 1) % records
state = target.get_deep_value()["records"]
state_ok = len(state) == records and state[f"r{probe:08d}"]["title"] == f"edit {edits - 1}"
changes = records + edits
try:
    from importlib.metadata import version
    loro_version = version("loro")
except Exception:
    loro_version = "unknown"
print(json.dumps({
    "loro_version": loro_version,
    "changes": changes,
    "stream_bytes": len(stream),
    "import_s": seconds,
    "changes_per_s": changes / seconds,
    "state_ok": state_ok,
}))
