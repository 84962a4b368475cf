#!/usr/bin/env python3
"""Renders Benchmarks/results.json as the results table of Docs/performance.md (between the markers)."""
import json, re, sys, pathlib

root = pathlib.Path(__file__).resolve().parent.parent
results = json.loads((root / "Benchmarks/results.json").read_text())
lines = [
    f"Measured {results['date']} on {results['cores']} cores, {results['memory_gib']:.0f} GiB, scale {results['scale']:g}.",
    "",
    "| # | workload | ratio | goal | met | figures | peak RSS |",
    "|---|---|---:|---|---|---|---:|",
]
for row in results["rows"]:
    figures = ", ".join(f"{k} = {v:,.4g}" for k, v in sorted(row["figures"].items()))
    ratio = "not built yet" if row["status"] == "not built yet" else (f"{row['ratio']:.2f}" if row.get("ratio") is not None else "—")
    met = "—" if row.get("met") is None else ("yes" if row["met"] else "**no**")
    rss = f"{row['peak_rss_mib']:.0f} MiB" if row["peak_rss_mib"] else "—"
    lines.append(f"| {row['id']} | {row['workload']} | {ratio} | {row['goal']} | {met} | {figures} | {rss} |")
doc = root / "Docs/performance.md"
text = doc.read_text()
table = "\n".join(lines)
new = re.sub(r"<!-- results -->.*<!-- /results -->", f"<!-- results -->\n{table}\n<!-- /results -->", text, flags=re.S)
doc.write_text(new)
print(table)
