"""Do two executions of one study agree run by run? (issue 13: `--workers 2` against the sequential run.)

    python bench/compare_runs.py runs/default runs-parallel/default

For every run id in both folders: status, F1 micro and macro, the largest difference of the test probabilities
(predictions.parquet), whether the predicted labels agree, the host and devices recorded, and the wall time of each
run; then both studies' spans (first start to last end, from the records). Exit status 1 when a run is missing or
its F1 differs. Not part of the test suite.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd


def records(folder: Path) -> dict[str, dict]:
    out = {}
    for path in sorted(folder.glob("*/record.json")):
        out[path.parent.name] = json.loads(path.read_text())
    return out


def span_minutes(recs: dict[str, dict]) -> float | None:
    starts, ends = [], []
    for r in recs.values():
        if r.get("started_at") and r.get("finished_at"):
            starts.append(datetime.fromisoformat(r["started_at"]))
            ends.append(datetime.fromisoformat(r["finished_at"]))
    return (max(ends) - min(starts)).total_seconds() / 60 if starts else None


def main(argv=None) -> int:
    a_dir, b_dir = (Path(p) for p in (argv or sys.argv[1:]))
    a, b = records(a_dir), records(b_dir)
    bad = 0
    print(f"| run | status | F1 micro A | F1 micro B | F1 macro equal | max |Δp| | labels agree | host B | "
          f"wall A s | wall B s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run_id in sorted(set(a) | set(b)):
        ra, rb = a.get(run_id), b.get(run_id)
        if ra is None or rb is None:
            print(f"| {run_id} | missing in {'A' if ra is None else 'B'} |")
            bad += 1
            continue
        ma, mb = ra.get("metrics") or {}, rb.get("metrics") or {}
        dp, agree = "", ""
        pa, pb = a_dir / run_id / "predictions.parquet", b_dir / run_id / "predictions.parquet"
        if pa.is_file() and pb.is_file():
            fa, fb = pd.read_parquet(pa), pd.read_parquet(pb)
            cols = [c for c in fa.columns if c.startswith("p:")]
            diff = np.abs(fa[cols].to_numpy() - fb[cols].to_numpy())
            dp = f"{diff.max():.1e}"
            agree = f"{(fa[cols].to_numpy().argmax(1) == fb[cols].to_numpy().argmax(1)).mean():.3f}"
        same = ma.get("f1_micro") == mb.get("f1_micro") and ma.get("f1_macro") == mb.get("f1_macro")
        bad += not same
        on = rb.get("ran_on") or {}
        host = f"{on.get('host')} pid {on.get('pid')}" + (f" worker {on['worker']}" if on.get("worker") else "")
        print(f"| {run_id} | {ra.get('status')}/{rb.get('status')} | {ma.get('f1_micro')} | {mb.get('f1_micro')} | "
              f"{same} | {dp} | {agree} | {host} | {ra.get('wall_seconds', 0):.0f} | {rb.get('wall_seconds', 0):.0f} |")
    print(f"\nA: {len(a)} records, span {span_minutes(a)} min; B: {len(b)} records, span {span_minutes(b)} min; "
          f"{bad} run(s) missing or with a different F1")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
