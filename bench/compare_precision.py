"""Does a study give the same F1 in bfloat16 mixed precision as in float32? (issue 24; not part of the tests)

    python bench/compare_precision.py runs/default runs/default-float32 [--out bench/results/precision-<cpu>.md]

Pairs the done runs of two executions of one study that differ only in precision, by configuration label (less a
"(dtype=...)" suffix) and seed, and checks from each record that their compute dtypes differ. For every pair:
F1 micro in A and in B, the paired bootstrap difference A - B with its 95% interval (2,000 resamples of the same
test examples: `analysis.statistics.paired_bootstrap_difference`), whether 0 lies in it, and whether A's F1 lies
in B's own 95% bootstrap interval; predicted labels agreeing; the wall time of each. Runs in one folder only are
listed. Exit status 1 when a pair's interval excludes 0 (the precisions give different F1).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from llmclf.analysis.runs import read_run_predictions
from llmclf.analysis.statistics import bootstrap_ci, paired_bootstrap_difference


def done_runs(folder: Path) -> dict[tuple[str, int], tuple[Path, dict]]:
    out = {}
    for path in sorted(folder.glob("*/record.json")):
        record = json.loads(path.read_text())
        if record.get("status") != "done" or record.get("notebook") == "00_data":
            continue
        label = re.sub(r"\s*\(dtype=[a-z0-9]+\)$", "", record.get("label") or path.parent.name)
        seed = (record.get("params") or {}).get("seed", 0)
        out[(label, seed)] = (path.parent, record)
    return out


def compute_dtype(record: dict) -> str:
    extra = {**(record.get("extra") or {}), **record}  # the record keeps fit_stats at its top level
    return str(extra.get("compute_dtype") or extra.get("resolved_dtype") or "-")


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        line = next(l for l in out.splitlines() if l.startswith("Model name"))
        flags = next((l for l in out.splitlines() if l.startswith("Flags")), "")
        native = [f for f in ("amx_bf16", "avx512_bf16") if f in flags.split()]
        return f"{line.split(':', 1)[1].strip()} ({', '.join(native) or 'no native bf16: AVX2'})"
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return "unknown CPU"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="runs/<study> of one precision")
    parser.add_argument("b", type=Path, help="runs/<study> of the other")
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    args = parser.parse_args(argv)
    a, b = done_runs(args.a), done_runs(args.b)
    lines = [f"CPU: {cpu_name()}", f"A: {args.a}   B: {args.b}", "",
             "| configuration | seed | dtype A | dtype B | F1 micro A | F1 micro B | A - B [95% paired CI] | 0 in CI | "
             "A in B's 95% CI | labels agree | wall A s | wall B s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    bad = 0
    for key in sorted(set(a) | set(b)):
        label, seed = key
        if ((a.get(key) or b.get(key))[1].get("params") or {}).get("baseline") == "tfidf":
            continue  # no dtype: the same computation in both
        if key not in a or key not in b:  # e.g. a reduced bf16 run (--only): listed, not a failure
            lines.append(f"| {label} | {seed} | run in {'B' if key not in a else 'A'} only |")
            continue
        (dir_a, rec_a), (dir_b, rec_b) = a[key], b[key]
        if (rec_a.get("params") or {}).get("baseline") == "tfidf":
            continue  # no dtype: the same computation in both
        pa, pb = read_run_predictions(dir_a), read_run_predictions(dir_b)
        ids = pa.ids
        pb = pb.aligned(ids)
        if pb is None:
            lines.append(f"| {label} | {seed} | test ids differ |")
            bad += 1
            continue
        n_labels, multi = len(pa.labels), pa.multi_label
        y = pa.y
        pred_a, pred_b = pa.predicted(), pb.predicted()
        diff = paired_bootstrap_difference(y, [pred_a], [pred_b], "f1_micro", multi, n_labels)
        ci_b = bootstrap_ci(y, [pred_b], "f1_micro", multi, n_labels)
        f1_a, f1_b = rec_a["metrics"]["f1_micro"], rec_b["metrics"]["f1_micro"]
        zero_in = diff["low"] <= 0 <= diff["high"]
        bad += not zero_in
        agree = float((pred_a == pred_b).reshape(len(pred_a), -1).all(axis=1).mean())
        lines.append(
            f"| {label} | {seed} | {compute_dtype(rec_a)} | {compute_dtype(rec_b)} | {f1_a:.3f} | {f1_b:.3f} | "
            f"{diff['difference']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}] | "
            f"{'yes' if zero_in else 'NO'} | {'yes' if ci_b['low'] <= f1_a <= ci_b['high'] else 'no'} | "
            f"{agree:.3f} | {rec_a.get('wall_seconds', 0):.0f} | {rec_b.get('wall_seconds', 0):.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
