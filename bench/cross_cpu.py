"""Same run ids on two CPUs: the committed default report (Intel Xeon with AMX, bf16 mixed) against runs/scale on
this machine. `python bench/cross_cpu.py` after `llmclf run params/scale.yaml`; F1 micro (accuracy, single-label),
the paired bootstrap interval of the difference over the 200 test examples, labels agreeing, largest probability
difference. Not part of the test suite."""
import json, glob, numpy as np, pandas as pd
x = pd.read_parquet("reports/default/predictions.parquet")
rows = []
rng = np.random.default_rng(0)
for f in sorted(glob.glob("runs/scale/*/record.json")):
    r = json.load(open(f)); rid = r["run_id"]
    if r.get("status") != "done" or rid not in set(x.run_id): continue
    a = x[x.run_id == rid].set_index("id")
    b = pd.read_parquet(f.replace("record.json", "predictions.parquet")).set_index("id")
    labels = [c[2:] for c in b.columns if c.startswith("p:")]
    b_pred = np.array(labels)[b[[f"p:{l}" for l in labels]].to_numpy().argmax(1)]
    b_true = np.array(labels)[b[[f"y:{l}" for l in labels]].to_numpy().argmax(1)]
    b = pd.DataFrame({"true": b_true, "pred": b_pred}, index=b.index).loc[a.index]
    ca = (a.predicted == a.true).to_numpy(float); cb = (b.pred == b.true).to_numpy(float)
    diffs = [(cb[i] - ca[i]).mean() for i in (rng.integers(0, len(ca), len(ca)) for _ in range(2000))]
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    pa = a[[f"p:{l}" for l in labels]].to_numpy()
    pb = pd.read_parquet(f.replace("record.json", "predictions.parquet")).set_index("id").loc[a.index][[f"p:{l}" for l in labels]].to_numpy()
    rows.append(dict(run_id=rid, configuration=r["label"], seed=r["params"]["seed"], f1_xeon=ca.mean(), f1_zen4=cb.mean(),
                     diff=f"{cb.mean()-ca.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]", zero_in_ci=lo <= 0 <= hi,
                     labels_agree=(a.predicted.to_numpy() == b.pred.to_numpy()).mean(), max_abs_dp=np.abs(pa - pb).max()))
d = pd.DataFrame(rows)
print("| " + " | ".join(d.columns) + " |"); print("|" + "---|" * len(d.columns))
for _, r in d.iterrows(): print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")
