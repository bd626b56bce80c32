"""Would int8 inference keep a trained embedding head's answers? (issue 15: an `inference_dtype: int8` option only
if, on the default study's trained head, F1 stays within 0.005 of float and predictions agree on >= 99% of test
texts.)

    python bench/int8.py runs/default/10_embedding_head-<id> [--out bench/results/int8-<cpu>.json]

Loads the run's kept model (llmclf.load_run), folds LoRA into the base (peft's merge_and_unload), and predicts the
run's test texts (its predictions.parquet) in float and with PyTorch's dynamic int8 quantization of the Linear
layers (int8 weights, activations quantized per batch on the fly; fbgemm / x86 kernels on a CPU) in three variants:
per-tensor weights, per-channel weights, and per-channel with the first and last decoder layers and the
classification head kept in float. Each variant: test F1 micro against float, agreement of the predicted labels,
the largest probability change, and throughput (median of 3, after a warm-up). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")


def timed(clf, texts, repeats: int):
    clf.predict_proba(texts[:8])  # warm-up
    times, proba = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        proba = clf.predict_proba(texts)
        times.append(time.perf_counter() - t)
    return proba, statistics.median(times), times


def quantized(clf, scheme: str):
    """A copy of `clf` whose merged base runs its Linear layers in dynamic int8 (`scheme`: per_tensor,
    per_channel, per_channel_keep_ends)."""
    import torch
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    q = copy.deepcopy(clf)
    model = q.net.model
    q.net.model = model = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    qconfig = default_dynamic_qconfig if scheme == "per_tensor" else per_channel_dynamic_qconfig
    n_layers = model.config.num_hidden_layers
    keep = {"score"}
    if scheme == "per_channel_keep_ends":
        keep |= {f"layers.{0}.", f"layers.{n_layers - 1}."}
    spec = {name: qconfig for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and not any(k in name for k in keep)}
    q.net.model = inner = quantize_dynamic(model, spec, dtype=torch.qint8)
    q.net.backbone, q.net.score = getattr(inner, inner.base_model_prefix), inner.score  # what forward calls
    return q, len(spec)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", help="a finished embedding-head run folder (it kept its model)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import numpy as np
    import pandas as pd
    import torch
    from sklearn.metrics import f1_score

    import llmclf
    from bench import cpu_name, slug  # noqa: E402

    from llmclf.config import EmbeddingHeadConfig

    run = Path(args.run)
    record = json.loads((run / "record.json").read_text())
    cfg = EmbeddingHeadConfig.from_dict({k: v for k, v in record["params"].items()
                                         if k in EmbeddingHeadConfig.field_names()})
    task = llmclf.load_task(cfg.dataset, **cfg.task_kwargs())  # the run's own split, rebuilt from its params
    stored = pd.read_parquet(run / "predictions.parquet")
    if list(stored["id"].astype(str)) != [str(i) for i in task.test.ids]:
        raise SystemExit(f"{run}: the rebuilt test split differs from the run's predictions.parquet")
    texts, y = list(task.test.texts), np.asarray(task.test.y)
    clf = llmclf.load_run(run).classifier
    base, base_s, base_all = timed(clf, texts, args.repeats)
    recorded = stored[[f"p:{lab}" for lab in task.labels]].to_numpy()
    print(f"float32 reload vs the run's recorded test probabilities: max |Δp| {np.abs(base - recorded).max():.2e}")
    f1 = lambda p: f1_score(y, p.argmax(1), average="micro")  # noqa: E731
    rows = [{"variant": "float32 (LoRA unmerged, as the run predicts)", "f1_micro": f1(base),
             "agreement": 1.0, "max_abs_proba_change": 0.0, "examples_per_second": len(texts) / base_s,
             "seconds_all": base_all, "quantized_linears": 0}]
    print(f"{cpu_name()}; {record['run_id']} ({record.get('label')}), {len(texts)} test texts, "
          f"{torch.get_num_threads()} threads; recorded F1 micro {record['metrics']['f1_micro']:.3f}")
    for scheme in ("per_tensor", "per_channel", "per_channel_keep_ends"):
        q, n = quantized(clf, scheme)
        proba, s, all_s = timed(q, texts, args.repeats)
        n_int8 = sum(type(m).__module__.startswith("torch.ao.nn.quantized.dynamic") for m in q.net.backbone.modules())
        assert n_int8, f"{scheme}: the backbone was not quantized"
        rows.append({"variant": f"int8 dynamic, {scheme}", "f1_micro": f1(proba),
                     "agreement": float((proba.argmax(1) == base.argmax(1)).mean()),
                     "max_abs_proba_change": float(np.abs(proba - base).max()),
                     "examples_per_second": len(texts) / s, "seconds_all": all_s, "quantized_linears": n})
        del q
    print("| variant | F1 micro | Δ F1 vs float | agreement | max |Δp| | ex/s | speed vs float |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['f1_micro']:.3f} | {r['f1_micro'] - rows[0]['f1_micro']:+.3f} | "
              f"{r['agreement']:.3f} | {r['max_abs_proba_change']:.3f} | {r['examples_per_second']:.2f} | "
              f"{r['examples_per_second'] / rows[0]['examples_per_second']:.2f}x |")
    ok = [r["variant"] for r in rows[1:] if abs(r["f1_micro"] - rows[0]["f1_micro"]) <= 0.005
          and r["agreement"] >= 0.99]
    print("meets the bar (|ΔF1| <= 0.005 and agreement >= 99%):", ", ".join(ok) if ok else "none")
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"int8-{slug(cpu_name())}.json"
    out.write_text(json.dumps({"cpu": cpu_name(), "run": record["run_id"], "max_length": record["params"].get(
        "max_length"), "texts": len(texts), "threads": torch.get_num_threads(), "rows": rows, "meets_bar": ok,
        "load_average": os.getloadavg()}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
