"""Linear baselines at full scale: TF-IDF + logistic regression on uspto-10k subclasses, multi-label, every
training document, the 7-value C grid, through the project's own code (`load_task`, `TfidfClassifier.fit`).

    python bench/linear_scale.py [--reference] [--min-label-count 50] [--single-label] [--out PATH]

Prints one table row per fit (seconds, chosen C, validation F1 micro) and writes JSON to
bench/results/linear_scale-<cpu>.json with the CPU's model name. The task is the patents study's `subclasses`
task (params/patents.yaml: label_level subclass, multi_label, min_label_count 50) without its caps: every training,
validation and test document, split by the project's loader at split_seed 0.

--reference also fits the former multi-label solver on the same task in the same run: scikit-learn's
OneVsRestClassifier around LogisticRegression(saga, tol 1e-3, warm_start) with every label and C from a cold start
on one core, as `approaches/linear.py` had it before (kept here, not in the package: `reference_fit`). It runs the
same `TfidfClassifier.fit` with only the linear fit swapped. Past `--reference-budget` seconds (default 1200) the
reference stops before the next C and the output says which C values it fitted. `--single-label` adds the
single-label rows (uspto-10k sections, every document): the code path there did not change; with --reference the
former function fits them too, for the side-by-side.

Not part of the test suite. Timings on a shared machine are noisy: the JSON records the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from unittest import mock

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

C_GRID = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]


# ---------------------------------------------------------------------------------------------------------------
# the former solver, as approaches/linear.py had it (commit 0eb8688): kept only as the reference


def reference_estimator(kind, C, multi_label, y_train, seed=0, class_weight="none", sparse=False):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    if kind != "logreg":
        raise ValueError("the reference covers linear_model 'logreg' only")
    weight = "balanced" if class_weight == "balanced" else None
    solver = dict(solver="saga", tol=1e-3, random_state=seed) if sparse else dict(solver="lbfgs")
    base = LogisticRegression(C=C, max_iter=2000, warm_start=True, class_weight=weight, **solver)
    return OneVsRestClassifier(base) if multi_label else base


def reference_fit(X_train, y_train, X_val, y_val, *, n_labels, multi_label, kind, c_values, tune_threshold=True,
                  seed=0, threshold_rule=None, class_weight="none", budget_s=None, fitted=None):
    """The former `fit_linear_on_validation`: one fit per C (ascending), one-vs-rest cloning its estimator for
    every label and C (so multi-label starts cold everywhere), saga on sparse features from 1,000 examples, one
    core. `budget_s`: stop before the next C once this many seconds have passed (the C values fitted go to
    `fitted`)."""
    from scipy.sparse import issparse
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import f1_score, log_loss

    from llmclf.approaches.decisions import choose_threshold, predict_labels
    from llmclf.approaches.linear import LinearSelection, predict_proba_linear

    if threshold_rule is None:
        threshold_rule = "validation" if tune_threshold else 0.5
    sparse = issparse(X_train) and X_train.shape[0] >= 1000
    warm = kind == "logreg" and not multi_label
    best, scores, model = None, [], None
    start = time.perf_counter()
    for C in sorted(c_values):
        if budget_s is not None and scores and time.perf_counter() - start > budget_s:
            break
        if warm and model is not None:
            model = copy.deepcopy(model)
            model.set_params(C=C)
        else:
            model = reference_estimator(kind, C, multi_label, y_train, seed, class_weight, sparse=sparse)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Label not present in all training examples")
            warnings.filterwarnings("ignore", category=ConvergenceWarning)
            model.fit(X_train, y_train)
        proba = predict_proba_linear(model, X_val, n_labels, multi_label)
        threshold = choose_threshold(threshold_rule, y_val, proba) if multi_label else 0.5
        f1 = f1_score(y_val, predict_labels(proba, multi_label, threshold), average="micro", zero_division=0,
                      **({} if multi_label else {"labels": list(range(n_labels))}))
        if multi_label:
            clipped = np.clip(proba, 1e-7, 1 - 1e-7)
            loss = float(-np.mean(y_val * np.log(clipped) + (1 - y_val) * np.log(1 - clipped)))
        else:
            loss = float(log_loss(y_val, np.clip(proba, 1e-7, 1), labels=list(range(n_labels))))
        scores.append({"C": float(C), "f1_micro": float(f1), "log_loss": loss, "threshold": threshold})
        if fitted is not None:
            fitted.append(float(C))
        if best is None or (f1, -loss) > (best[0], -best[1]):
            best = (f1, loss, C, threshold, model)
    return LinearSelection(model=best[4], C=float(best[2]), threshold=best[3], scores=scores,
                           c_values=[float(c) for c in c_values])


# ---------------------------------------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def slug(s: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in s).strip("-").lower() or "cpu"


def build_task(args, multi_label: bool):
    """The task as a study would load it: a BaselineConfig's data parameters through `load_task`."""
    from llmclf.config import BaselineConfig
    from llmclf.data.tasks import load_task

    data = dict(dataset="uspto-10k", label_level="subclass" if multi_label else "section", multi_label=multi_label,
                min_label_count=args.min_label_count if multi_label else 1, max_train=None, max_eval=None,
                max_val=None, max_test=None, split_seed=0, data_dir=args.data_dir or "")
    cfg = BaselineConfig(baseline="tfidf", c_values=list(C_GRID), **data)
    return cfg, load_task(cfg.dataset, **cfg.task_kwargs())


def timed_fit(cfg, task, reference: bool, budget_s: float | None = None) -> dict:
    """TfidfClassifier.fit on `task` (the package's linear fit, or the reference's): seconds, CPU seconds of this
    process (every thread), chosen C, validation F1 micro."""
    from llmclf.approaches import linear, tfidf
    from llmclf.approaches.baselines import make_baseline

    clf = make_baseline(cfg)
    fitted: list[float] = []
    patch = (mock.patch.object(tfidf, "fit_linear_on_validation",
                               lambda *a, **kw: reference_fit(*a, budget_s=budget_s, fitted=fitted, **kw))
             if reference else contextlib.nullcontext())
    load0 = os.getloadavg()[0]
    with patch, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="the chosen C")
        cpu0, start = time.process_time(), time.perf_counter()
        clf.fit(task)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    sel = clf.selection
    chosen = next(s for s in sel.scores if s["C"] == sel.C)
    stats = clf.prediction_stats
    if task.multi_label:
        solver = ("before: one-vs-rest saga, every label x C cold, one core" if reference else
                  f"after: newton-cg, a warm C path per label, {min(linear.label_jobs(), task.n_labels)} label jobs")
    else:  # the single-label path did not change: the former function against the package's
        solver = f"{'before' if reference else 'after'}: multinomial saga, warm C path (unchanged)"
    row = {"solver": solver,
           "seconds": seconds, "cpu_seconds": cpu,
           "vectorize_seconds": stats["feature_seconds"]["train_and_validation"],
           "C": sel.C, "validation_f1_micro": chosen["f1_micro"], "validation_log_loss": chosen["log_loss"],
           "threshold": chosen["threshold"] if not isinstance(chosen["threshold"], np.ndarray) else
           chosen["threshold"].tolist(), "n_features": stats["linear_model"]["n_features"],
           "scores": [{k: (float(v) if k != "threshold" else np.asarray(v).tolist()) for k, v in s.items()}
                      for s in sel.scores],
           "load_average_before": load0, "load_average_after": os.getloadavg()[0]}
    if reference:
        row["c_values_fitted"] = fitted
        row["capped"] = len(fitted) < len(C_GRID)
    return row


def print_row(name: str, row: dict) -> None:
    capped = (f"  [capped at C in {row['c_values_fitted']}: the budget ran out]" if row.get("capped") else "")
    print(f"| {name:46s} | {row['seconds']:8.1f} | {row['cpu_seconds']:8.1f} | {row['C']:8g} | "
          f"{row['validation_f1_micro']:.4f} | {row['solver']}{capped}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", action="store_true", help="also fit the former one-vs-rest saga solver")
    parser.add_argument("--reference-budget", type=float, default=1200.0,
                        help="seconds after which the reference fits no further C (default 1200)")
    parser.add_argument("--min-label-count", type=int, default=50,
                        help="labels with fewer documents are dropped (the study's subclasses task: 50)")
    parser.add_argument("--single-label", action="store_true", help="add the single-label rows (sections)")
    parser.add_argument("--data-dir", default=None, help="folder holding uspto-10k (default: the shared data)")
    parser.add_argument("--out", default=None, help="JSON path (default: bench/results/linear_scale-<cpu>.json)")
    args = parser.parse_args(argv)

    from llmclf.approaches import linear

    started = time.time()
    cfg, task = build_task(args, multi_label=True)
    print(f"{task}: {task.n_labels} labels, {len(task.train)} training documents (no cap); C grid {C_GRID}; "
          f"{linear.label_jobs()} label jobs; CPU {cpu_name()} ({len(os.sched_getaffinity(0))} cores); "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    if args.reference and task.n_labels > 128 and task.train.y.dtype == np.int8:
        print(f"note: {task.n_labels} labels in an int8 indicator: scikit-learn {__import__('sklearn').__version__}'s "
              "LabelBinarizer (inside OneVsRestClassifier.fit) permutes the columns past 128 labels, so the "
              "reference trains labels on other labels' columns and its F1 is no baseline", flush=True)
    print(f"| {'fit':46s} | {'seconds':>8s} | {'cpu s':>8s} | {'C':>8s} | F1 val | solver", flush=True)
    rows = []
    name = f"uspto-10k subclass multi-label ({task.n_labels} labels)"
    if args.reference:
        ref = timed_fit(cfg, task, reference=True, budget_s=args.reference_budget)
        rows.append({"row": name, "version": "before", **ref})
        print_row(name + ", before", ref)
    new = timed_fit(cfg, task, reference=False)
    rows.append({"row": name, "version": "after", **new})
    print_row(name + ", after", new)
    comparison = None
    if args.reference:
        before = {s["C"]: s["f1_micro"] for s in ref["scores"]}
        after = {s["C"]: s["f1_micro"] for s in new["scores"]}
        comparison = {"speedup": ref["seconds"] / new["seconds"],
                      "f1_difference_at_chosen_C": new["validation_f1_micro"] - ref["validation_f1_micro"],
                      "same_C": ref["C"] == new["C"],
                      "f1_difference_by_C": {str(c): after[c] - before[c] for c in before}}
        if ref.get("capped"):
            comparison["note"] = (f"reference capped at C in {ref['c_values_fitted']}: its chosen C and F1 are the "
                                  f"best of those only")
        print(f"after / before: {comparison['speedup']:.1f}x faster; "
              f"validation F1 micro {new['validation_f1_micro']:.4f}"
              f" against {ref['validation_f1_micro']:.4f} ({comparison['f1_difference_at_chosen_C']:+.4f}); "
              f"C {new['C']:g} against {ref['C']:g}", flush=True)

    single = None
    if args.single_label:
        cfg1, task1 = build_task(args, multi_label=False)
        name1 = f"uspto-10k section single-label ({task1.n_labels} labels)"
        single = []
        if args.reference:
            r = timed_fit(cfg1, task1, reference=True)
            single.append({"row": name1, "version": "before", **r})
            print_row(name1 + ", before", r)
        n1 = timed_fit(cfg1, task1, reference=False)
        single.append({"row": name1, "version": "after", **n1})
        print_row(name1 + ", after", n1)
        rows += single

    import sklearn

    result = {"cpu": cpu_name(), "cores": len(os.sched_getaffinity(0)), "label_jobs": linear.label_jobs(),
              "sklearn": sklearn.__version__, "python": platform.python_version(),
              "task": {"name": task.name, "n_labels": task.n_labels, "sizes": task.source.get("sizes"),
                       "min_label_count": args.min_label_count, "split_seed": 0, "c_values": C_GRID},
              "rows": rows, "comparison": comparison, "wall_seconds": time.time() - started,
              "load_average_end": os.getloadavg()}
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"linear_scale-{slug(cpu_name())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
