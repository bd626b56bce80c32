"""The deciding report's tables as a person reads them, and the tidy files written beside the report.

Everything here that becomes HTML goes through DataFrame.to_html(escape=True) or html.escape: configuration names,
labels and texts come from studies and data sets.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from . import calibration as cal
from .metrics import INVALID_LABEL
from .verdict import BEATS, FLOOR, WORSE_THAN_FLOOR, StudyAnalysis, TaskAnalysis

RESULT_COLUMNS = ["task", "label", "family", "seed", "run_id", "status", "f1_micro", "f1_macro", "f1_weighted",
                  "accuracy", "precision_at_1", "threshold", "load_seconds", "train_seconds", "validation_seconds",
                  "predict_seconds", "train_ex_per_s", "infer_ex_per_s", "trainable_params", "total_params",
                  "peak_rss_mb", "peak_gpu_mb", "resolved_dtype", "device", "max_length", "text_tokens",
                  "truncated_share", "tokens_read", "long_text", "max_chunks", "tfidf_input", "features_cached", "model", "git_commit", "git_dirty",
                  "teacher_run_id", "wall_seconds"]


def to_html(frame: pd.DataFrame, **kw) -> str:
    """Every cell escaped; NaN as '-'."""
    return frame.to_html(index=False, escape=True, na_rep="-", border=0, classes="llmclf", **kw)


def _ci(row, m):
    if pd.isna(row.get(m)):
        return "-"
    return f"{row[m]:.3f} [{row[f'{m} low']:.3f}, {row[f'{m} high']:.3f}]"


def _num(v, fmt):
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) or pd.isna(v) else format(v, fmt)


def results_table(t: TaskAnalysis) -> pd.DataFrame:
    """One row per configuration and floor, in the order of validation F1 micro (the first configuration is the
    best, the first floor the best floor): F1 and accuracy with 95% bootstrap intervals, the seeds' spread, the
    comparison with the floor, the input budget and the costs."""
    rows = []
    for _, r in t.table.iterrows():
        floor = r.kind == FLOOR
        budget = ("full text" if r.get("tfidf_input") == "full" else
                  f"{_num(r.get('text_tokens'), '.0f')} of {_num(r.get('max_length'), '.0f')} tokens"
                  if not pd.isna(r.get("max_length")) else "-")
        if r.get("long_text") == "chunks":
            budget = f"up to {_num(r.get('max_chunks'), '.0f')} windows of " + budget
        row = {"configuration": r.configuration + (" (floor)" if floor else ""), "family": r.family,
               "seeds": int(r.seeds) if not floor else "-",
               "validation F1 micro": _num(r.get("validation f1_micro"), ".3f"),
               "F1 micro [95% CI]": _ci(r, "f1_micro"), "F1 macro [95% CI]": _ci(r, "f1_macro"),
               "accuracy [95% CI]": _ci(r, "accuracy"), "F1 micro sd over seeds": _num(r.get("f1_micro seed sd"), ".3f")}
        if t.multi_label:
            row["P@1"], row["samples F1"] = _num(r.get("P@1"), ".3f"), _num(r.get("samples F1"), ".3f")
        row["vs floor"] = ("-" if floor or not isinstance(r.get("vs floor"), str) else
                           "predicts the floor's labels for every text" if r.get("floor's labels") is True else
                           "yes, beats it" if r.get("vs floor") == BEATS else
                           "NO: worse than the floor" if r.get("vs floor") == WORSE_THAN_FLOOR else
                           "NO: not shown better than the floor")
        if not floor and r.get("constant") is True and r.get("floor's labels") is not True:
            row["vs floor"] += " (one answer for every text)"
        row.update({"input budget": budget, "texts cut": _num(r.get("truncated_share"), ".0%"),
                    "text tokens read": _num(r.get("tokens_read"), ",.0f"),
                    "train s": _num(r.get("train_seconds"), ".1f"), "load s": _num(r.get("load_seconds"), ".1f"),
                    "validation s": _num(r.get("validation_seconds"), ".1f"),
                    "infer ex/s": _num(r.get("infer_ex_per_s"), ".1f"),
                    "trainable params": _num(r.get("trainable_params"), ",.0f"),
                    "peak memory MB": _num(r.get("peak_memory_mb"), ",.0f"), "dtype": r.get("dtype") or "-",
                    "device": r.get("device") or "-"})
        rows.append(row)
    return pd.DataFrame(rows)


def comparisons_table(t: TaskAnalysis) -> pd.DataFrame:
    """Every paired comparison, family by family (p (Holm) adjusts within its family)."""
    c = t.comparisons.copy()
    for col in ("difference", "ci_low", "ci_high"):
        c[col] = c[col].map(lambda v: f"{v:+.3f}")
    for col in ("p_value", "p_holm"):
        c[col] = c[col].map(lambda v: f"{v:.4f}")
    c["n_for_80%_power"] = c["n_for_80%_power"].map(lambda v: "-" if v is None or pd.isna(v) else f"{int(v):,}")
    return c.drop(columns=["task"]).rename(columns={"configuration_a": "A", "configuration_b": "B",
                                                    "difference": "A − B", "ci_low": "CI low", "ci_high": "CI high",
                                                    "p_value": "p", "p_holm": "p (Holm)",
                                                    "n_for_80%_power": "test size for 80% power"})


NOT_PROBABILISTIC = "not probabilistic: every output is 0 or 1"


def calibration_table(t: TaskAnalysis) -> pd.DataFrame:
    """Per configuration (mean over seeds): ECE (15 bins), Brier and log loss on test, and ECE after temperature
    (single-label) or per-label Platt (multi-label) scaling fitted on validation, where validation was recorded.

    A configuration whose test outputs are all 0 or 1 (constrained decoding, generated answers) states no
    confidence: it is marked not probabilistic and shows only its Brier score (twice its error rate). A scaling
    that makes the test ECE worse (it was fitted on validation, and need not carry over) is flagged."""
    rows = []
    for name, seeds in t.runs.items():
        if not any(cal.is_probabilistic(run.proba) for run in seeds):
            rows.append({"configuration": name, "ECE": float("nan"),
                         "Brier": float(np.mean([cal.brier(run.y, run.proba, t.multi_label) for run in seeds])),
                         "log loss": float("nan"), "ECE after scaling": float("nan"),
                         "scaling (fitted on validation)": NOT_PROBABILISTIC, "scaling on test": "-"})
            continue
        per = []
        for run in seeds:
            if run.val_proba is not None:
                s = cal.calibration_summary(run.y, run.proba, run.val_y, run.val_proba, t.multi_label)
            else:
                s = {f"{k}_before": f(run.y, run.proba, t.multi_label) for k, f in
                     (("ece", cal.ece), ("brier", cal.brier), ("log_loss", cal.log_loss))}
            per.append(s)
        mean = lambda k: float(np.mean([p[k] for p in per])) if all(k in p for p in per) else float("nan")  # noqa
        before, after = mean("ece_before"), mean("ece_after")
        rows.append({"configuration": name, "ECE": before, "Brier": mean("brier_before"),
                     "log loss": mean("log_loss_before"), "ECE after scaling": after,
                     "scaling (fitted on validation)": per[0].get("method", "no validation predictions"),
                     "scaling on test": "-" if np.isnan(after) else
                     "⚠ WORSE: ECE up after scaling" if after > before else "ECE down"})
    return pd.DataFrame(rows)


def per_label_f1(t: TaskAnalysis, configurations) -> pd.DataFrame:
    """Per-label F1 (mean over seeds) of the given configurations, with each label's test support."""
    from sklearn.metrics import f1_score

    truth = t.runs[configurations[0]][0].truth
    out = pd.DataFrame({"label": t.labels, "support": truth.sum(axis=0).astype(int)})
    for name in configurations:
        scores = []
        for run in t.runs[name]:
            pred = run.predicted()  # an invalid output: a miss of its true label, no false positive
            pred = pred if t.multi_label else np.eye(len(t.labels) + 1, dtype=int)[pred][:, :len(t.labels)]
            scores.append(f1_score(truth, pred, average=None, zero_division=0))
        out[name] = np.mean(scores, axis=0)
    return out


def confusion_summed(t: TaskAnalysis, configuration) -> pd.DataFrame:
    """Single-label: the confusion matrix (rows true, columns predicted) summed over the configuration's seeds,
    labelled; a column of invalid outputs when the configuration had any."""
    from sklearn.metrics import confusion_matrix

    n = len(t.labels)
    cm = sum(confusion_matrix(t.y, run.predicted(), labels=list(range(n + 1))) for run in t.runs[configuration])
    keep = n + 1 if cm[:, n].any() else n
    return pd.DataFrame(cm[:n, :keep], index=t.labels, columns=[*t.labels, INVALID_LABEL][:keep])


def f1_by_threshold(t: TaskAnalysis, configuration, grid=None) -> pd.DataFrame:
    """Multi-label: micro-F1 on test at every threshold of the grid (mean over seeds)."""
    from sklearn.metrics import f1_score

    grid = np.round(np.arange(0.05, 0.951, 0.05), 2) if grid is None else grid
    f1 = [np.mean([f1_score(r.truth, (r.proba >= g).astype(int), average="micro", zero_division=0)
                   for r in t.runs[configuration]]) for g in grid]
    return pd.DataFrame({"threshold": grid, "f1_micro": f1})


def disagreements(t: TaskAnalysis, a, b, n: int = 8, width: int = 200) -> pd.DataFrame:
    """Up to `n` test examples on which the first seeds of `a` and `b` predict differently: the start of the text,
    the truth and both predictions (plain text: escape when rendering)."""
    if t.texts is None:
        return pd.DataFrame()
    ra, rb = t.runs[a][0], t.runs[b][0]
    pa, pb = ra.predicted(), rb.predicted()
    differ = np.flatnonzero(np.any(pa != pb, axis=1) if t.multi_label else pa != pb)[:n]
    return pd.DataFrame({"id": t.ids[differ],
                         "text": [s if len(s) <= width else s[:width] + " …" for s in t.texts[differ]],
                         "truth": [_names(t, ra.truth[i], True) for i in differ],
                         a: [_names(t, pa[i], t.multi_label) for i in differ],
                         b: [_names(t, pb[i], t.multi_label) for i in differ]})


def _names(t, value, indicator):
    if indicator:
        return ", ".join(l for l, v in zip(t.labels, value) if v) or "(none)"
    return _label(t, value)


def _label(t, index):
    """A single-label prediction's name; the pseudo-class L is an invalid output."""
    return t.labels[int(index)] if int(index) < len(t.labels) else INVALID_LABEL


# ---- tidy files beside the report ------------------------------------------------------------------------------

def write_tidy(records: pd.DataFrame, analysis: StudyAnalysis, folder: str | Path) -> dict:
    """results.csv (one row a run), predictions.parquet (every run's test predictions, long by example, wide by
    label) and comparisons.csv (every paired comparison); returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cols = [c for c in RESULT_COLUMNS if c in records.columns]
    results = records[cols].rename(columns={"label": "configuration"})
    results["threshold"] = results["threshold"].map(lambda v: v if v is None or np.ndim(v) == 0 else
                                                    "|".join(f"{x:g}" for x in v))
    paths = {"results": folder / "results.csv", "predictions": folder / "predictions.parquet",
             "comparisons": folder / "comparisons.csv"}
    results.to_csv(paths["results"], index=False)
    analysis.comparisons.to_csv(paths["comparisons"], index=False)
    predictions_frame(records, analysis).to_parquet(paths["predictions"], index=False, compression="zstd")
    return paths


def predictions_frame(records: pd.DataFrame, analysis: StudyAnalysis) -> pd.DataFrame:
    seeds = records.set_index("run_id")["seed"].to_dict() if len(records) else {}
    frames = []
    for task, t in analysis.tasks.items():
        for name, runs in t.runs.items():
            for run in runs:
                pred = run.predicted()
                f = pd.DataFrame(run.proba.astype(np.float32), columns=[f"p:{l}" for l in t.labels])
                f.insert(0, "run_id", run.run_id)
                f.insert(1, "task", task)
                f.insert(2, "configuration", name)
                f.insert(3, "seed", seeds.get(run.run_id))
                f.insert(4, "id", run.ids)
                f.insert(5, "true", ["|".join(l for l, v in zip(t.labels, row) if v) for row in run.truth])
                f.insert(6, "predicted", ["|".join(l for l, v in zip(t.labels, row) if v) for row in pred]
                         if t.multi_label else [_label(t, i) for i in pred])
                frames.append(f)
    if not frames:
        return pd.DataFrame(columns=["run_id", "task", "configuration", "seed", "id", "true", "predicted"])
    return pd.concat(frames, ignore_index=True)


def escape(text) -> str:
    return html.escape(str(text))
