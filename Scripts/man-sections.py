#!/usr/bin/env python3
"""Completes the generated man page with the EXIT STATUS and ENVIRONMENT sections.

swift-argument-parser's generate-manual writes a generic exit-status line; amanat's statuses and environment
variables are one table each in Sources/amanat/HelpTopics.swift, printed by `amanat help exit-status` and
`amanat help environment`. This script asks the built binary for them, so the page and the help never differ.

Usage: man-sections.py PAGE AMANAT_BINARY
"""
import os
import re
import subprocess
import sys

page, binary = sys.argv[1], sys.argv[2]


def entries(topic):
    """(label, text) pairs of a help topic printed at a width wide enough for one line per entry."""
    env = dict(os.environ, COLUMNS="10000")
    out = subprocess.run([binary, "help", topic], env=env, capture_output=True, text=True, check=True).stdout
    pairs = []
    for line in out.splitlines():
        m = re.match(r"^  (\S+)\s{2,}(.*)$", line)
        if m:
            pairs.append((m.group(1), m.group(2)))
        elif line.startswith("  ") and line.strip() and pairs:
            pairs[-1] = (pairs[-1][0], pairs[-1][1] + " " + line.strip())
    if not pairs:
        sys.exit(f"man-sections.py: `amanat help {topic}` printed no entries")
    return pairs


def escape(text):
    text = text.replace("\\", "\\e")
    return ("\\&" + text) if text.startswith((".", "'")) else text


statuses = entries("exit-status")
variables = entries("environment")
section = [".Sh \"EXIT STATUS\"", ".Bl -tag -width 4n"]
for code, text in statuses:
    section += [f".It {code}", escape(text)]
section += [".El", ".Sh ENVIRONMENT", ".Bl -tag -width Ds"]
for name, text in variables:
    section += [f".It Ev {name}", escape(text)]
section += [".El"]

with open(page, encoding="utf-8") as f:
    lines = f.read().split("\n")
start = next((i for i, l in enumerate(lines) if l.startswith('.Sh "EXIT STATUS"') or l.startswith(".Sh EXIT")), None)
if start is None:
    start = len(lines)
end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(".Sh ")), len(lines))
lines[start:end] = section
with open(page, "w", encoding="utf-8") as f:
    f.write("\n".join(lines).rstrip("\n") + "\n")
print(f"{page}: EXIT STATUS ({len(statuses)}) and ENVIRONMENT ({len(variables)}) written")
