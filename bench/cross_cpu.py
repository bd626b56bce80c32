"""Same run ids on two CPUs: a report's predictions from one machine (by default the committed default report: Intel
Xeon with AMX, bf16 mixed) against the runs of a study on this machine (by default runs/scale). `python
bench/cross_cpu.py [--report PARQUET] [--runs DIR] [--names A B]`; F1 micro (accuracy, single-label), the paired
bootstrap interval of the difference over the test examples, labels agreeing, largest probability difference. A
report committed at another commit: `git show REV:reports/default/predictions.parquet > /tmp/a.parquet`. Not part
of the test suite."""

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

REPORT = Path("reports/default/predictions.parquet")  # the other CPU's runs, as the report keeps them
RUNS = Path("runs/scale")  # this CPU's


def compare(a: pd.DataFrame, b: pd.DataFrame, rng, names=("xeon", "zen4")) -> dict:
    """`a`: the report's rows of one run (id, true, predicted, p:*); `b`: that run's predictions.parquet here."""
    labels = [c[2:] for c in b.columns if c.startswith("p:")]
    p_cols = [f"p:{label}" for label in labels]
    b = b.set_index("id").loc[a["id"]]
    pa, pb = a[p_cols].to_numpy(), b[p_cols].to_numpy()
    true = a["true"].to_numpy()
    pred_b = np.asarray(labels)[pb.argmax(1)]
    ca, cb = (a["predicted"].to_numpy() == true).astype(float), (pred_b == true).astype(float)
    resamples = rng.integers(0, len(ca), (2000, len(ca)))
    lo, hi = np.percentile((cb[resamples] - ca[resamples]).mean(1), [2.5, 97.5])
    return {f"f1_{names[0]}": ca.mean(), f"f1_{names[1]}": cb.mean(), "diff": f"{cb.mean() - ca.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]",
            "zero_in_ci": bool(lo <= 0 <= hi), "labels_agree": (a["predicted"].to_numpy() == pred_b).mean(),
            "max_abs_dp": np.abs(pa - pb).max()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=REPORT, help="the other machine's report predictions")
    parser.add_argument("--runs", type=Path, default=RUNS, help="this machine's runs of the study")
    parser.add_argument("--names", nargs=2, default=["xeon", "zen4"], help="column names of the two machines")
    args = parser.parse_args()
    report = pd.read_parquet(args.report)
    rng = np.random.default_rng(0)
    rows = []
    for path in sorted(args.runs.glob("*/record.json")):
        record = json.loads(path.read_text())
        a = report[report.run_id == record["run_id"]]
        if record.get("status") != "done" or a.empty:
            continue
        b = pd.read_parquet(path.parent / "predictions.parquet")
        rows.append(dict(run_id=record["run_id"], configuration=record["label"], seed=record["params"]["seed"],
                         **compare(a, b, rng, args.names)))
    d = pd.DataFrame(rows)
    print("| " + " | ".join(d.columns) + " |")
    print("|" + "---|" * len(d.columns))
    for _, r in d.iterrows():
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
