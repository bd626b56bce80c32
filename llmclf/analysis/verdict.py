"""The report's decision, per task: intervals over test examples, paired comparisons against the best and the
floors, and a verdict in words, all generated from the per-example predictions (analysis.statistics).

`analyze(records)` reads every done run's predictions once; the notebook and the tidy files read what it returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import floors as floors_mod
from . import statistics as st
from .runs import RunPredictions, read_run_predictions, train_labels

FLOOR = "floor"
CI_METRICS = ("f1_micro", "f1_macro", "accuracy")
COST_COLUMNS = {"train_seconds": ("training time", "min", "s"), "infer_ex_per_s": ("inference throughput", "max", "ex/s"),
                "trainable_params": ("trainable parameters", "min", ""), "peak_memory_mb": ("peak memory", "min", "MB")}


@dataclass
class TaskAnalysis:
    task: str
    multi_label: bool
    labels: list[str]
    ids: np.ndarray
    y: np.ndarray
    texts: np.ndarray | None
    runs: dict                      # configuration -> list of RunPredictions (seeds), aligned on `ids`
    floor_preds: dict               # floor name -> (proba, threshold)
    table: pd.DataFrame             # one row per configuration and floor: intervals, costs, flags
    comparisons: pd.DataFrame
    notes: list = field(default_factory=list)

    @property
    def best(self) -> str | None:
        confs = self.table[self.table.kind != FLOOR]
        return None if confs.empty else confs.iloc[0]["configuration"]

    def indistinguishable(self) -> list[str]:
        c = self.comparisons
        rows = c[(c.metric == "f1_micro") & (c.test == st.BOOTSTRAP) & (c.configuration_a == self.best)
                 & c.decision.str.startswith("indistinguishable")]
        return list(rows.configuration_b)


@dataclass
class StudyAnalysis:
    tasks: dict                     # task -> TaskAnalysis
    without_predictions: list       # tasks whose runs recorded no per-example predictions
    n_resamples: int

    @property
    def comparisons(self) -> pd.DataFrame:
        frames = [t.comparisons for t in self.tasks.values() if len(t.comparisons)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["task", *st.COLUMNS])


def analyze(records: pd.DataFrame, n_resamples: int = 2000, seed: int = 0) -> StudyAnalysis:
    done = records[records.status == "done"] if len(records) else records
    tasks, missing = {}, []
    for task, g in (done.groupby("task", sort=False) if len(done) else []):
        t = analyze_task(task, g, n_resamples, seed)
        if t is None:
            missing.append(task)
        else:
            tasks[task] = t
    return StudyAnalysis(tasks, missing, n_resamples)


class _Bootstrap:
    """One set of test resamples per task, shared by every interval and difference (the same indices as
    statistics.compare_configurations draws for the same seed); each configuration's distribution computed once."""

    def __init__(self, y, multi_label, n_labels, n_resamples, seed, confidence=0.95):
        self.y, self.multi, self.n_labels, self.confidence = y, multi_label, n_labels, confidence
        self.indices = st.bootstrap_indices(len(y), n_resamples, seed)
        self.memo = {}

    def dist(self, name, preds, metric):
        if (name, metric) not in self.memo:
            self.memo[name, metric] = st._seed_mean_distribution(self.y, preds, metric, self.multi, self.n_labels,
                                                                 self.indices)
        return self.memo[name, metric]

    def ci(self, name, preds, metric):
        low, high = st._percentile_interval(self.dist(name, preds, metric), self.confidence)
        return {"estimate": st._mean_score(self.y, preds, metric, self.multi, self.n_labels), "low": low, "high": high}

    def difference(self, a, preds_a, b, preds_b, metric):
        diff = (st._mean_score(self.y, preds_a, metric, self.multi, self.n_labels)
                - st._mean_score(self.y, preds_b, metric, self.multi, self.n_labels))
        return st._difference_row(diff, self.dist(a, preds_a, metric) - self.dist(b, preds_b, metric),
                                  self.confidence)


def analyze_task(task: str, g: pd.DataFrame, n_resamples: int, seed: int) -> TaskAnalysis | None:
    loaded = {r.run_id: read_run_predictions(r.run_dir) for r in g.itertuples() if isinstance(r.run_dir, str)}
    loaded = {k: v for k, v in loaded.items() if v is not None}
    if not loaded:
        return None
    first = next(iter(loaded.values()))
    ids, notes = first.ids, []
    runs: dict[str, list[RunPredictions]] = {}
    for r in g.itertuples():
        run = loaded.get(r.run_id)
        aligned = run.aligned(ids) if run is not None and run.labels == first.labels else None
        if aligned is None:
            notes.append(f"run {r.run_id} ({r.label}) has no predictions on this task's test examples: left out")
            continue
        runs.setdefault(r.label, []).append(aligned)
    multi, labels, n_labels = first.multi_label, first.labels, len(first.labels)
    y = first.y
    preds = {k: [run.predicted() for run in v] for k, v in runs.items()}
    floor_preds = _floors(g, multi, n_labels, len(ids), runs, notes)
    floor_labels = {k: [st.predictions(p, multi, t)] for k, (p, t) in floor_preds.items()}
    kw = dict(multi_label=multi, n_labels=n_labels, n_resamples=n_resamples, seed=seed)
    comparisons = (st.compare_configurations(y, preds, metrics=("f1_micro", "f1_macro"), **kw) if len(preds) > 1
                   else pd.DataFrame(columns=st.COLUMNS))
    boot = _Bootstrap(y, multi, n_labels, n_resamples, seed)
    best_floor = max(floor_labels, key=lambda k: st.score(y, floor_labels[k][0], "f1_micro", multi, n_labels),
                     default=None)
    floor_rows = []
    if best_floor is not None:
        for name, p in preds.items():
            d = boot.difference(name, p, best_floor, floor_labels[best_floor], "f1_micro")
            floor_rows.append({"configuration_a": name, "configuration_b": best_floor, "metric": "f1_micro",
                               "difference": d["difference"], "ci_low": d["low"], "ci_high": d["high"],
                               "p_value": d["p_value"], "test": st.BOOTSTRAP + " vs floor",
                               "decision": "beats the floor" if d["low"] > 0 else
                               "NOT shown to beat the floor: learned the label prior, not the task"})
    comparisons = pd.concat([comparisons.drop(columns=["p_holm"], errors="ignore"), pd.DataFrame(floor_rows)],
                            ignore_index=True)
    comparisons["p_holm"] = st.holm(comparisons["p_value"].to_numpy(dtype=float)) if len(comparisons) else []
    comparisons.insert(0, "task", task)
    comparisons = comparisons[["task", *st.COLUMNS]]
    table = _table(g, y, preds, floor_labels, runs, comparisons, best_floor, multi, n_labels, boot)
    return TaskAnalysis(task, multi, labels, ids, y, first.texts, runs, floor_preds, table, comparisons, notes)


def _floors(g, multi, n_labels, n_test, runs, notes) -> dict:
    y_train = None
    for run_dir in g.run_dir:
        try:
            task = json.loads((Path(run_dir) / "record.json").read_text()).get("task") or {}
        except (OSError, ValueError, TypeError):
            continue
        y_train = train_labels(task, n_labels, multi)
        if y_train is not None:
            break
    if y_train is None:
        notes.append("the records predate training-label counts: no floors for this task")
        return {}
    y_val = next((r.val_truth for seeds in runs.values() for r in seeds if r.val_truth is not None), None)
    if multi and y_val is None:
        notes.append("no validation predictions recorded: the label-prior floor has no threshold and is left out")
        return {"most frequent label set": (floors_mod.most_frequent_label_set(y_train, n_test), 0.5)}
    return floors_mod.floors(y_train, y_val, n_test, multi, n_labels)


def _table(g, y, preds, floor_labels, runs, comparisons, best_floor, multi, n_labels, boot):
    rows = []
    vs_floor = comparisons[comparisons.test == st.BOOTSTRAP + " vs floor"].set_index("configuration_a")
    for name, p in {**preds, **floor_labels}.items():
        is_floor = name in floor_labels
        row = {"configuration": name, "kind": FLOOR if is_floor else "configuration",
               "seeds": len(p) if not is_floor else 0}
        for m in CI_METRICS:
            ci = boot.ci(name, p, m)
            row[m], row[f"{m} low"], row[f"{m} high"] = ci["estimate"], ci["low"], ci["high"]
        row["f1_micro seed sd"] = float(np.std([st.score(y, q, "f1_micro", multi, n_labels) for q in p], ddof=1)) \
            if len(p) > 1 else float("nan")
        if multi:
            row["samples F1"] = float(np.mean([_samples_f1(y, q) for q in p]))
        if not is_floor:
            c = g[g.label == name]
            row["family"] = c.family.iloc[0]
            if multi:
                row["P@1"] = float(np.mean([_p_at_1(y, r.proba) for r in runs[name]]))
            for col in ("load_seconds", "train_seconds", "validation_seconds", "infer_ex_per_s", "trainable_params",
                        "max_length", "text_tokens", "truncated_share"):
                row[col] = pd.to_numeric(c[col], errors="coerce").median() if col in c else float("nan")
            memory = pd.to_numeric(c.peak_gpu_mb, errors="coerce")
            row["peak_memory_mb"] = memory.max() if memory.notna().any() else pd.to_numeric(c.peak_rss_mb).max()
            row["dtype"] = ", ".join(sorted({str(v) for v in c.resolved_dtype.dropna()}))
            row["device"] = ", ".join(sorted({str(v) for v in c.device.dropna()}))
            row["tfidf_input"] = c.tfidf_input.iloc[0]
            if best_floor is not None and name in vs_floor.index:
                row["beats floor"] = bool(vs_floor.loc[name, "ci_low"] > 0)
        else:
            row["family"] = FLOOR
        rows.append(row)
    table = pd.DataFrame(rows)
    order = table.assign(_floor=table.kind == FLOOR).sort_values(["_floor", "f1_micro"], ascending=[True, False])
    return order.drop(columns="_floor").reset_index(drop=True)


def _samples_f1(y, pred):
    from sklearn.metrics import f1_score

    return f1_score(y, pred, average="samples", zero_division=0)


def _p_at_1(y, proba):
    return float(np.mean(y[np.arange(len(y)), np.asarray(proba).argmax(axis=1)] == 1))


# ---- the verdict in words --------------------------------------------------------------------------------------

def _ci(row, m="f1_micro"):
    return f"{row[m]:.3f} [{row[f'{m} low']:.3f}, {row[f'{m} high']:.3f}]"


def verdict_lines(t: TaskAnalysis) -> list[str]:
    """The task's verdict as Markdown lines; configuration names are escaped by the caller's renderer."""
    table, best = t.table.set_index("configuration"), t.best
    if best is None:
        return ["No configuration finished."]
    b = table.loc[best]
    lines = [f"**Best: {md(best)}**, F1 micro {_ci(b)} (95% bootstrap interval over test examples, seeds averaged)."]
    tied = t.indistinguishable()
    if tied:
        lines.append("Indistinguishable from it (95% CI of the paired F1-micro difference contains 0): "
                     + ", ".join(f"{md(k)} ({table.loc[k, 'f1_micro']:.3f})" for k in tied) + ".")
    elif len(table[table.kind != FLOOR]) > 1:
        lines.append("Every other configuration is worse than it (paired bootstrap, 95%).")
    pool = [best, *tied]
    if len(pool) > 1:
        for col, (what, how, unit) in COST_COLUMNS.items():
            vals = pd.to_numeric(table.loc[pool, col], errors="coerce").dropna()
            if col == "train_seconds":
                vals = vals[vals > 0] if (vals > 0).any() else vals
            if vals.empty:
                continue
            pick = vals.idxmin() if how == "min" else vals.idxmax()
            ratio = _ratio(table.loc[best, col], vals[pick], how)
            lines.append(f"Among them, best {what}: {md(pick)} ({_fmt(vals[pick])}{' ' + unit if unit else ''}"
                         + (f"; {ratio} the best's" if ratio and pick != best else "") + ").")
    confs = table[table.kind != FLOOR]
    if "beats floor" in confs:
        failed = list(confs.index[confs["beats floor"] == False])  # noqa: E712 - NaN means no floor
        floor_name = t.comparisons.loc[t.comparisons.test.str.endswith("vs floor"), "configuration_b"]
        if failed:
            lines.append(f"⚠ **Did not beat the floor** ({md(floor_name.iloc[0])}): "
                         + ", ".join(md(k) for k in failed)
                         + " — not shown better than a predictor that reads no text: **learned the label prior**.")
        else:
            lines.append(f"Every configuration beats the best floor ({md(floor_name.iloc[0])}).")
    lines.extend(f"Note: {md(n)}" for n in t.notes)
    return lines


def _ratio(best_value, value, how):
    try:
        best_value, value = float(best_value), float(value)
    except (TypeError, ValueError):
        return ""
    if not (best_value > 0 and value > 0) or np.isnan(best_value) or np.isnan(value):
        return ""
    r = best_value / value if how == "min" else value / best_value
    return f"{r:.1f}× {'lower' if how == 'min' else 'higher'} than" if r > 1 else ""


def _fmt(v):
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"


def md(text) -> str:
    """Text from a study (configuration names, labels) made safe for Markdown rendered as HTML."""
    import html

    return html.escape(str(text)).replace("*", "&#42;").replace("_", "&#95;").replace("`", "&#96;") \
        .replace("[", "&#91;").replace("]", "&#93;")


def study_table(analysis: StudyAnalysis) -> pd.DataFrame:
    """Task by approach family: the family's best F1 micro with its interval; ★ the task's best, ≈ not shown to
    differ from it."""
    cells = {}
    for task, t in analysis.tasks.items():
        confs, tied = t.table[t.table.kind != FLOOR], set(t.indistinguishable())
        for family, f in confs.groupby("family", sort=False):
            row = f.iloc[0]
            mark = " ★" if row.configuration == t.best else " ≈" if row.configuration in tied else ""
            cells.setdefault(task, {})[family] = _ci(row) + mark
    return pd.DataFrame(cells).T.fillna("-")
