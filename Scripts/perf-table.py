#!/usr/bin/env python3
"""Renders Benchmarks/results.json as the results table of Docs/performance.md (between the markers)."""
import json, re, sys, pathlib

root = pathlib.Path(__file__).resolve().parent.parent
results = json.loads((root / "Benchmarks/results.json").read_text())
lines = [
    f"Measured {results['date']} on {results['cores']} cores, {results['memory_gib']:.0f} GiB, scale {results['scale']:g}.",
    "",
    "| # | workload | ratio | of crypto limit | goal | met | figures | peak RSS (goal) |",
    "|---|---|---:|---:|---|---|---|---:|",
]
for row in results["rows"]:
    figures = ", ".join(f"{k} = {v:,.4g}" for k, v in sorted(row["figures"].items()))
    ratio = "not built yet" if row["status"] == "not built yet" else (f"{row['ratio']:.2f}" if row.get("ratio") is not None else "—")
    met = "—" if row.get("met") is None else ("yes" if row["met"] else "**no**")
    rss = f"{row['peak_rss_mib']:.0f} MiB" if row["peak_rss_mib"] else "—"
    if row.get("memory_goal_mib"):
        rss += f" (< {row['memory_goal_mib']:.0f})"
    limit = f"{row['limit_fraction']:.2f}" if row.get("limit_fraction") is not None else "—"
    if row.get("limit_goal"):
        limit += f" (≥ {row['limit_goal']:g})"
    note = f" {row['note']}" if row.get("note") and "Loro" in row["note"] else ""
    lines.append(f"| {row['id']} | {row['workload']} | {ratio} | {limit} | {row['goal']} | {met} | {figures}{note} | {rss} |")
def load_row(load):
    rq, sy = load["request_latency_ms"], load["sync_latency_ms"]
    met = "yes" if load["errors"] == 0 and rq["p99"] < 100 else "**no**"
    where = ("two relay processes over one PostgreSQL database" if load.get("storage") == "postgres"
             else "one relay over SQLite files")
    return (f"| B7 | {where}, {load['clients']} concurrent clients in {load['vaults']} vaults for {load['seconds']:.0f} s "
            f"(`make load`) | — | — | 0 errors, p99 < 100 ms | {met} | errors = {load['errors']}, "
            f"ingested/s = {load['ingested_per_second']:,.0f}, served/s = {load['served_per_second']:,.0f}, "
            f"requests/s = {load['requests_per_second']:,.0f}, request p50 = {rq['p50']} ms, request p99 = {rq['p99']} ms, "
            f"sync p50 = {sy['p50']} ms, sync p99 = {sy['p99']} ms | — |")
load_rows = [load_row(json.loads(f.read_text())) for f in
             [root / "Benchmarks/load-results.json", root / "Benchmarks/load-results-postgres.json"] if f.exists()]
if load_rows:
    at = next((i for i, l in enumerate(lines) if l.startswith("| B7 |")), len(lines))
    lines = [l for l in lines if not l.startswith("| B7 |")]
    lines[at:at] = load_rows
doc = root / "Docs/performance.md"
text = doc.read_text()
table = "\n".join(lines)
new = re.sub(r"<!-- results -->.*<!-- /results -->", f"<!-- results -->\n{table}\n<!-- /results -->", text, flags=re.S)
doc.write_text(new)
print(table)
