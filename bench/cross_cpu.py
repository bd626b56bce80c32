"""Same run ids on two CPUs: the committed default report (Intel Xeon with AMX, bf16 mixed) against runs/scale on
this machine. `python bench/cross_cpu.py` after `llmclf run params/scale.yaml`; F1 micro (accuracy, single-label),
the paired bootstrap interval of the difference over the 200 test examples, labels agreeing, largest probability
difference. Not part of the test suite."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

REPORT = Path("reports/default/predictions.parquet")  # the other CPU's runs, as the report keeps them
RUNS = Path("runs/scale")  # this CPU's


def compare(a: pd.DataFrame, b: pd.DataFrame, rng) -> dict:
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
    return dict(f1_xeon=ca.mean(), f1_zen4=cb.mean(), diff=f"{cb.mean() - ca.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]",
                zero_in_ci=bool(lo <= 0 <= hi), labels_agree=(a["predicted"].to_numpy() == pred_b).mean(),
                max_abs_dp=np.abs(pa - pb).max())


def main() -> None:
    report = pd.read_parquet(REPORT)
    rng = np.random.default_rng(0)
    rows = []
    for path in sorted(RUNS.glob("*/record.json")):
        record = json.loads(path.read_text())
        a = report[report.run_id == record["run_id"]]
        if record.get("status") != "done" or a.empty:
            continue
        b = pd.read_parquet(path.parent / "predictions.parquet")
        rows.append(dict(run_id=record["run_id"], configuration=record["label"], seed=record["params"]["seed"],
                         **compare(a, b, rng)))
    d = pd.DataFrame(rows)
    print("| " + " | ".join(d.columns) + " |")
    print("|" + "---|" * len(d.columns))
    for _, r in d.iterrows():
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
