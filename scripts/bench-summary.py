#!/usr/bin/env python3
"""Exports criterion's results to a committed markdown table and JSON.

    scripts/bench-summary.py TARGET_DIR OUT_DIR [GROUP ...]

Reads TARGET_DIR/criterion/<group>/<benchmark>/new/{benchmark,estimates}.json (what
`cargo bench -p spnn-bench --bench crypto` and `--bench net` leave behind) and writes
OUT_DIR/criterion.md and OUT_DIR/criterion.json: per benchmark the median and mean time, the
95 % confidence interval of the median, and the throughput where the benchmark declares one.
With GROUP arguments, only those groups. The performance chapter includes the markdown file,
so every number in it comes from a run.
"""

import json
import sys
from pathlib import Path


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_rate(per_second, what):
    if what == "Bytes":
        return f"{per_second / 2**30:.3g} GiB/s"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_second >= scale:
            return f"{per_second / scale:.3g} {unit}/s"
    return f"{per_second:.3g} /s"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    root = Path(sys.argv[1]) / "criterion"
    out = Path(sys.argv[2])
    groups = set(sys.argv[3:])
    rows = []
    for est_path in sorted(root.glob("**/new/estimates.json")):
        bench = json.loads((est_path.parent / "benchmark.json").read_text())
        if groups and bench["group_id"] not in groups:
            continue
        est = json.loads(est_path.read_text())
        median = est["median"]["point_estimate"]
        row = {
            "group": bench["group_id"],
            "benchmark": bench["title"].split("/", 1)[1] if "/" in bench["title"] else bench["title"],
            "median_ns": median,
            "median_low_ns": est["median"]["confidence_interval"]["lower_bound"],
            "median_high_ns": est["median"]["confidence_interval"]["upper_bound"],
            "mean_ns": est["mean"]["point_estimate"],
            "throughput": None,
        }
        tp = bench.get("throughput")
        if tp:
            (what, amount), = tp.items()
            row["throughput"] = {"kind": what, "per_iteration": amount,
                                 "per_second": amount / (median * 1e-9)}
        rows.append(row)
    if not rows:
        sys.exit(f"no criterion results under {root}: run the benchmarks first")
    out.mkdir(parents=True, exist_ok=True)
    (out / "criterion.json").write_text(json.dumps(rows, indent=1) + "\n")
    md = []
    for group in dict.fromkeys(r["group"] for r in rows):
        md += [f"**{group}**", "",
               "| benchmark | median | 95 % interval of the median | mean | throughput |",
               "|---|---|---|---|---|"]
        for r in (r for r in rows if r["group"] == group):
            tp = r["throughput"]
            rate = fmt_rate(tp["per_second"], tp["kind"]) if tp else "—"
            md.append(f"| {r['benchmark']} | {fmt_time(r['median_ns'])} | "
                      f"{fmt_time(r['median_low_ns'])} – {fmt_time(r['median_high_ns'])} | "
                      f"{fmt_time(r['mean_ns'])} | {rate} |")
        md.append("")
    (out / "criterion.md").write_text("\n".join(md))
    print(f"{len(rows)} benchmarks -> {out / 'criterion.md'}, {out / 'criterion.json'}")


if __name__ == "__main__":
    main()
