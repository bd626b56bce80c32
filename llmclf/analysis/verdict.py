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
from .runs import HELD_OUT_PREDICTIONS_FILE, RunPredictions, read_run_predictions, train_labels

FLOOR = "floor"
ALPHA = 0.05
CI_METRICS = ("f1_micro", "f1_macro", "accuracy")
COST_COLUMNS = {"train_seconds": ("training time", "min", "s"), "infer_ex_per_s": ("inference throughput", "max", "ex/s"),
                "trainable_params": ("trainable parameters", "min", ""), "peak_memory_mb": ("peak memory", "min", "MB")}
# the families of tests, each Holm-adjusted on its own: the study's declared contrasts (primary, F1 micro), every
# configuration against the best chosen on validation (secondary), every configuration against the best floor
CONTRASTS, BEST_VS_REST, VS_FLOOR = "declared contrasts (primary)", "best vs rest (secondary)", "vs floor"
COMPARISON_COLUMNS = ["task", "family", *st.COLUMNS, "n_for_80%_power"]
BEATS, WORSE_THAN_FLOOR, NOT_SHOWN = "beats the floor", "worse than the floor", "not shown better than the floor"


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
    selected_on: str = "validation"  # how the best configuration and floor were chosen
    held_out: dict = field(default_factory=dict)  # configuration -> RunPredictions of `llmclf confirm` (seeds)

    @property
    def best(self) -> str | None:
        """The best configuration as chosen on validation F1 micro (the table's first configuration row)."""
        confs = self.table[self.table.kind != FLOOR] if len(self.table) else self.table
        return None if confs.empty else confs.iloc[0]["configuration"]

    @property
    def best_floor(self) -> str | None:
        floors = self.table[self.table.kind == FLOOR] if len(self.table) else self.table
        return None if floors.empty else floors.iloc[0]["configuration"]

    def indistinguishable(self) -> list[str]:
        c = self.comparisons
        rows = c[(c.family == BEST_VS_REST) & (c.metric == "f1_micro") & (c.test == st.BOOTSTRAP)
                 & (c.configuration_a == self.best) & c.decision.str.startswith("indistinguishable")]
        return list(rows.configuration_b)


@dataclass
class StudyAnalysis:
    tasks: dict                     # task -> TaskAnalysis
    without_predictions: list       # tasks whose runs recorded no per-example predictions
    n_resamples: int

    @property
    def comparisons(self) -> pd.DataFrame:
        frames = [t.comparisons for t in self.tasks.values() if len(t.comparisons)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COMPARISON_COLUMNS)


def analyze(records: pd.DataFrame, n_resamples: int = 2000, seed: int = 0, contrasts=None) -> StudyAnalysis:
    """`contrasts`: the study's declared pairs of configuration labels (default: the study file's `contrasts:`,
    as `llmclf report` keeps it in the records' study_runs)."""
    if contrasts is None:
        contrasts = (getattr(records, "attrs", {}).get("study_runs") or {}).get("contrasts") or []
    done = records[records.status == "done"] if len(records) else records
    tasks, missing = {}, []
    for task, g in (done.groupby("task", sort=False) if len(done) else []):
        t = analyze_task(task, g, n_resamples, seed, contrasts)
        if t is None:
            missing.append(task)
        else:
            tasks[task] = t
    return StudyAnalysis(tasks, missing, n_resamples)


class _Bootstrap:
    """One set of test resamples per task, shared by every interval and difference (the same indices as
    statistics.compare_configurations draws for the same seed); each configuration's distribution computed once.

    The seeds are resampled too (with replacement, a stream of their own per configuration): an interval includes
    the spread between seeds, not only the models these seeds happened to give (with 2-3 seeds a rough estimate). A configuration with one
    seed has nothing to redraw; its interval then describes that one trained model (the table's `seeds` says so)."""

    def __init__(self, y, multi_label, n_labels, n_resamples, seed, confidence=0.95):
        self.y, self.multi, self.n_labels, self.confidence = y, multi_label, n_labels, confidence
        self.seed = seed
        self.indices = st.bootstrap_indices(len(y), n_resamples, seed)
        self.memo = {}

    def dist(self, name, preds, metric, seeds: bool = True):
        """(R,) resampled mean-over-seeds scores; `seeds=False` holds the seeds fixed (the examples' part alone)."""
        if (name, metric, seeds) not in self.memo:
            rng = st.configuration_seed_rng(self.seed, name) if seeds else None
            self.memo[name, metric, seeds] = st._seed_mean_distribution(self.y, preds, metric, self.multi,
                                                                        self.n_labels, self.indices, rng)
        return self.memo[name, metric, seeds]

    def ci(self, name, preds, metric):
        low, high = st._percentile_interval(self.dist(name, preds, metric), self.confidence)
        return {"estimate": st._mean_score(self.y, preds, metric, self.multi, self.n_labels), "low": low, "high": high}

    def difference(self, a, preds_a, b, preds_b, metric):
        diff = (st._mean_score(self.y, preds_a, metric, self.multi, self.n_labels)
                - st._mean_score(self.y, preds_b, metric, self.multi, self.n_labels))
        dist = self.dist(a, preds_a, metric) - self.dist(b, preds_b, metric)
        fixed = self.dist(a, preds_a, metric, False) - self.dist(b, preds_b, metric, False)
        sd, sd_examples = float(np.std(dist, ddof=1)), float(np.std(fixed, ddof=1))
        return {**st._difference_row(diff, dist, self.confidence), "sd": sd, "sd_examples": sd_examples,
                "sd_seeds": float(np.sqrt(max(sd ** 2 - sd_examples ** 2, 0.0)))}


def validation_scores(runs: dict, multi_label: bool, n_labels: int) -> dict:
    """configuration -> mean over seeds of its validation F1 micro (NaN when no seed recorded validation)."""
    out = {}
    for name, seeds in runs.items():
        scores = [st.score(r.val_y, r.val_predicted(), "f1_micro", multi_label, n_labels) for r in seeds
                  if r.val_proba is not None and r.val_truth is not None]
        out[name] = float(np.mean(scores)) if scores else float("nan")
    return out


def rank(scores: dict) -> list:
    """Names by score, highest first; ties (and NaNs, last) broken by name, so the order never depends on the
    order the runs were read in."""
    return sorted(scores, key=lambda k: (np.isnan(scores[k]), -np.nan_to_num(scores[k], nan=0.0), str(k)))


def analyze_task(task: str, g: pd.DataFrame, n_resamples: int, seed: int, contrasts=()) -> TaskAnalysis | None:
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
    held_out = _held_out(g, runs, first.labels)
    if "data_checksum" in g and g.data_checksum.dropna().nunique() > 1:
        notes.append(f"the runs of this task saw {g.data_checksum.dropna().nunique()} different data sets (their "
                     "data_checksum differs: the data or the split code changed between runs); compare only runs "
                     "made on the same data, or run the study again")
    multi, labels, n_labels = first.multi_label, first.labels, len(first.labels)
    y = first.y
    preds = {k: [run.predicted() for run in v] for k, v in runs.items()}
    floor_preds, floor_val = _floors(g, multi, n_labels, len(ids), runs, notes)
    floor_labels = {k: [st.predictions(p, multi, t)] for k, (p, t) in floor_preds.items()}

    # Selection on validation only: the best configuration and the best floor are the highest validation F1 micro
    # (ties by name); a test metric never chooses anything.
    val = validation_scores(runs, multi, n_labels)
    selected_on = "validation"
    if all(np.isnan(v) for v in val.values()):
        selected_on = "test (no validation predictions recorded)"
        val = {k: st._mean_score(y, p, "f1_micro", multi, n_labels) for k, p in preds.items()}
        notes.append("no configuration recorded validation predictions (older runs): the best is chosen on test "
                     "F1 micro, which favours it")
    elif any(np.isnan(v) for v in val.values()):
        notes.append("configurations without validation predictions (older runs) rank after the others: "
                     + ", ".join(k for k, v in val.items() if np.isnan(v)))
    order = rank(val)
    floor_order = rank(floor_val) if floor_val else sorted(floor_labels)
    best_floor = floor_order[0] if floor_order else None

    boot = _Bootstrap(y, multi, n_labels, n_resamples, seed)
    kw = dict(multi_label=multi, n_labels=n_labels, seed=seed, resample_seeds=True)
    frames = []
    # primary: the study's declared contrasts, F1 micro, paired bootstrap, Holm over the contrasts run on this task
    pairs = [(a, b) for a, b in contrasts if a in preds and b in preds]
    skipped = [(a, b) for a, b in contrasts if (a, b) not in pairs]
    if skipped:
        notes.append("declared contrasts not run on this task (a configuration is missing): "
                     + "; ".join(f"{a} vs {b}" for a, b in skipped))
    if pairs:
        r = st.resamples_for_holm(len(pairs), n_resamples, ALPHA)
        cboot = boot if r == n_resamples else _Bootstrap(y, multi, n_labels, r, seed)
        rows = []
        for a, b in pairs:
            d = cboot.difference(a, preds[a], b, preds[b], "f1_micro")
            rows.append({"configuration_a": a, "configuration_b": b, "metric": "f1_micro",
                         "difference": d["difference"], "ci_low": d["low"], "ci_high": d["high"],
                         "p_value": d["p_value"], "test": st.BOOTSTRAP, "sd_examples": d["sd_examples"],
                         "sd_seeds": d["sd_seeds"]})
        c = pd.DataFrame(rows)
        c["p_holm"] = st.holm(c.p_value.to_numpy(dtype=float))
        c["decision"] = [_contrast_decision(row) for row in c.itertuples()]
        c["n_for_80%_power"] = [
            st.n_for_power(row.difference, row.sd_examples, len(y), ALPHA / len(pairs), seed_sd=row.sd_seeds)
            if row.p_holm >= ALPHA else None for row in c.itertuples()]
        frames.append(c.drop(columns=["sd_examples", "sd_seeds"]).assign(family=CONTRASTS))
    # secondary: every configuration against the best chosen on validation, Holm over this family
    if len(preds) > 1:
        per = 2 + (0 if multi else 1)
        r = st.resamples_for_holm(per * (len(preds) - 1), n_resamples, ALPHA)
        c = st.compare_configurations(y, preds, metrics=("f1_micro", "f1_macro"), n_resamples=r, order=order, **kw)
        c["decision"] = [_best_decision(row) for row in c.itertuples()]
        frames.append(c.assign(family=BEST_VS_REST))
    # every configuration against the best floor (chosen on validation), Holm over this family
    if best_floor is not None:
        r = st.resamples_for_holm(len(preds), n_resamples, ALPHA)
        fboot = boot if r == n_resamples else _Bootstrap(y, multi, n_labels, r, seed)
        rows = []
        for name, p in preds.items():
            d = fboot.difference(name, p, best_floor, floor_labels[best_floor], "f1_micro")
            rows.append({"configuration_a": name, "configuration_b": best_floor, "metric": "f1_micro",
                         "difference": d["difference"], "ci_low": d["low"], "ci_high": d["high"],
                         "p_value": d["p_value"], "test": st.BOOTSTRAP + " vs floor"})
        c = pd.DataFrame(rows)
        c["p_holm"] = st.holm(c.p_value.to_numpy(dtype=float))
        c["decision"] = [BEATS if row.p_holm < ALPHA and row.difference > 0 else
                         WORSE_THAN_FLOOR if row.p_holm < ALPHA and row.difference < 0 else NOT_SHOWN
                         for row in c.itertuples()]
        frames.append(c.assign(family=VS_FLOOR))
    comparisons = (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COMPARISON_COLUMNS))
    comparisons["task"] = task
    comparisons = comparisons.reindex(columns=COMPARISON_COLUMNS)
    table = _table(g, y, preds, floor_labels, runs, comparisons, multi, n_labels, boot, order, floor_order, val,
                   floor_val)
    return TaskAnalysis(task, multi, labels, ids, y, first.texts, runs, floor_preds, table, comparisons, notes,
                        selected_on, held_out)


def _held_out(g: pd.DataFrame, runs: dict, labels: list) -> dict:
    """configuration -> its seeds' held-out predictions (`llmclf confirm`), aligned on one order of ids; only the
    runs that also count in `runs`, and only configurations whose every seed was confirmed."""
    counted = {r.run_id for seeds in runs.values() for r in seeds}
    found: dict = {}
    for r in g.itertuples():
        if r.run_id not in counted or not isinstance(r.run_dir, str):
            continue
        held, record = Path(r.run_dir) / HELD_OUT_PREDICTIONS_FILE, Path(r.run_dir) / "record.json"
        if not held.exists() or held.stat().st_mtime < record.stat().st_mtime:
            continue  # not confirmed, or confirmed before this record was written: another model's predictions
        run = read_run_predictions(r.run_dir, HELD_OUT_PREDICTIONS_FILE)
        if run is not None and run.labels == labels:
            found.setdefault(r.label, []).append(run)
    if not found:
        return {}
    ids = next(iter(found.values()))[0].ids
    out = {}
    for name, seeds in found.items():
        aligned = [s.aligned(ids) for s in seeds]
        if len(aligned) == len(runs.get(name, [])) and all(a is not None for a in aligned):
            out[name] = aligned
    return out


def _contrast_decision(row) -> str:
    if row.p_holm < ALPHA:
        return "better than" if row.difference > 0 else "worse than"
    return "not distinguishable from"


def _best_decision(row) -> str:
    if row.p_holm < ALPHA:
        return "worse than the best" if row.difference > 0 else "better than the best on this metric"
    return f"indistinguishable from the best (Holm-adjusted p ≥ {ALPHA:g})"


def _floors(g, multi, n_labels, n_test, runs, notes) -> tuple[dict, dict]:
    """(floor name -> (test proba, threshold), floor name -> validation F1 micro: what chooses the best floor)."""
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
        return {}, {}
    y_val = next((r.val_y for seeds in runs.values() for r in seeds if r.val_truth is not None), None)
    if multi and y_val is None:
        notes.append("no validation predictions recorded: the label-prior floor has no threshold and is left out")
        return {"most frequent label set": (floors_mod.most_frequent_label_set(y_train, n_test), 0.5)}, {}
    test = floors_mod.floors(y_train, y_val, n_test, multi, n_labels)
    if y_val is None:
        return test, {}
    val = floors_mod.floors(y_train, y_val, len(y_val), multi, n_labels)
    return test, {k: st.score(y_val, st.predictions(p, multi, t), "f1_micro", multi, n_labels)
                  for k, (p, t) in val.items()}


def _table(g, y, preds, floor_labels, runs, comparisons, multi, n_labels, boot, order, floor_order, val, floor_val):
    """Configurations in the order of their validation F1 micro (the first is the best), then the floors (the
    first the best floor, also by validation)."""
    rows = []
    vs_floor = comparisons[comparisons.family == VS_FLOOR].set_index("configuration_a")
    floor_pred = next(iter(floor_labels[floor_order[0]])) if floor_order else None
    for name in [*order, *floor_order]:
        is_floor = name in floor_labels
        p = floor_labels[name] if is_floor else preds[name]
        row = {"configuration": name, "kind": FLOOR if is_floor else "configuration",
               "seeds": len(p) if not is_floor else 0,
               "validation f1_micro": (floor_val if is_floor else val).get(name, float("nan"))}
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
                row["P@1"] = float(np.mean([_p_at_1(y, r.proba, r.invalid) for r in runs[name]]))
            for col in ("load_seconds", "train_seconds", "validation_seconds", "infer_ex_per_s", "trainable_params",
                        "total_params", "n_train", "epochs", "lr_grid_size", "c_grid_size", "max_length", "text_tokens",
                        "truncated_share", "tokens_read", "max_chunks"):
                row[col] = pd.to_numeric(c[col], errors="coerce").median() if col in c else float("nan")
            memory = pd.to_numeric(c.peak_gpu_mb, errors="coerce")
            row["peak_memory_mb"] = memory.max() if memory.notna().any() else pd.to_numeric(c.peak_rss_mb).max()
            row["dtype"] = ", ".join(sorted({str(v) for v in c.resolved_dtype.dropna()}))
            row["model"] = ", ".join(sorted({str(v) for v in c.model.dropna()})) if "model" in c else ""
            row["long_text"] = ", ".join(sorted({str(v) for v in c.long_text.dropna()})) if "long_text" in c else ""
            row["device"] = ", ".join(sorted({str(v) for v in c.device.dropna()}))
            row["tfidf_input"] = c.tfidf_input.iloc[0]
            rates = sorted({float(v) for v in pd.to_numeric(c.get("learning_rate", pd.Series(dtype=float)),
                                                             errors="coerce").dropna()})
            row["learning_rate"] = ", ".join(f"{v:g}" for v in rates)
            row["constant"] = all(_constant(q) for q in p)
            row["floor's labels"] = floor_pred is not None and all(np.array_equal(q, floor_pred) for q in p)
            if name in vs_floor.index:
                row["vs floor"] = vs_floor.loc[name, "decision"]
                row["beats floor"] = row["vs floor"] == BEATS
        else:
            row["family"] = FLOOR
        rows.append(row)
    return pd.DataFrame(rows)


def _constant(pred) -> bool:
    """One prediction (label, or label set) for every test text."""
    pred = np.asarray(pred)
    return len(pred) > 0 and bool(np.all(pred == pred[0]))


def _samples_f1(y, pred):
    from sklearn.metrics import f1_score

    return f1_score(y, pred, average="samples", zero_division=0)


def _p_at_1(y, proba, invalid=None):
    """Precision@1; an invalid output has no top label (a miss), as in analysis.metrics."""
    hit = y[np.arange(len(y)), np.asarray(proba).argmax(axis=1)] == 1
    return float(np.mean(hit if invalid is None else hit & ~np.asarray(invalid, dtype=bool)))


# ---- the verdict in words --------------------------------------------------------------------------------------

def _ci(row, m="f1_micro"):
    return f"{row[m]:.3f} [{row[f'{m} low']:.3f}, {row[f'{m} high']:.3f}]"


def _diff(row) -> str:
    return f"difference {row.difference:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]"


def contrast_lines(t: TaskAnalysis) -> list[str]:
    """One sentence per declared contrast: "A is better than / worse than / not distinguishable from B (difference
    [95% CI], p_holm = ...)", and for a difference not shown, the test-set size that would show it."""
    c = t.comparisons[t.comparisons.family == CONTRASTS]
    if c.empty:
        return []
    k = len(c)
    lines = [f"Declared contrasts (the primary family: F1 micro, A − B, paired bootstrap over test examples and "
             f"seeds, 95% interval; p Holm-adjusted over the {k} contrast{'s' * (k > 1)} of this task):"]
    for _, row in c.iterrows():
        sentence = (f"{md(row.configuration_a)} is {row.decision} {md(row.configuration_b)} ({_diff(row)}, "
                    f"p_holm = {row.p_holm:.3g})")
        n_needed = row["n_for_80%_power"]
        if row.decision == "not distinguishable from":
            if n_needed is not None and not pd.isna(n_needed):
                sentence += (f"; about {int(n_needed):,} test examples (this test set: {len(t.y):,}) would detect a "
                             f"difference of {abs(row.difference):.3f} with 80% power at the two-sided level "
                             f"{ALPHA:g}/{k}, with these seeds (the examples' part of the paired-bootstrap SD "
                             f"scaled by √n, the seeds' part as it is)")
            elif row.difference == 0:
                sentence += "; no difference observed, so no test-set size would show one"
            else:
                sentence += ("; no test-set size alone would detect a difference of this size with these seeds "
                             "(their spread is too large): only more seeds could narrow it")
        lines.append(sentence + ".")
    return lines


def verdict_lines(t: TaskAnalysis) -> list[str]:
    """The task's verdict as Markdown lines; configuration names are escaped by the caller's renderer."""
    table, best = t.table.set_index("configuration"), t.best
    if best is None:
        return ["No configuration finished."]
    b = table.loc[best]
    confs = table[table.kind != FLOOR]
    chosen = ("chosen on validation" + (f": F1 micro {b['validation f1_micro']:.3f}"
                                        if not pd.isna(b.get("validation f1_micro")) else "")
              if t.selected_on == "validation" else f"chosen on {t.selected_on}")
    if b.get("constant") and b.get("floor's labels"):
        lines = [f"**Best: {md(best)}** ({chosen}) predicts the floor's labels for every text: no score to report."]
    else:
        seeds = int(b.get("seeds") or 1)
        lines = [f"**Best: {md(best)}** ({chosen}), test F1 micro {_ci(b)} (95% bootstrap interval over test "
                 + ("examples and its " + f"{seeds} seeds" if seeds > 1 else "examples; one seed") + ")."]
    lines.extend(contrast_lines(t))
    tied = t.indistinguishable()
    c = t.comparisons
    rest = c[(c.family == BEST_VS_REST) & (c.metric == "f1_micro") & (c.test == st.BOOTSTRAP)]
    better = list(rest.configuration_b[rest.decision.str.startswith("better")])
    if tied:
        lines.append("Not distinguishable from it (best vs rest, the secondary family: paired F1-micro difference, "
                     f"Holm-adjusted p ≥ {ALPHA:g}): "
                     + ", ".join(f"{md(k)} ({table.loc[k, 'f1_micro']:.3f})" for k in tied) + ".")
    if better:
        lines.append("Better than it on test F1 micro (Holm-adjusted): " + ", ".join(md(k) for k in better)
                     + " — the best was chosen on validation, and test disagrees.")
    if not tied and not better and len(confs) > 1:
        lines.append(f"Every other configuration is worse than it (paired bootstrap, Holm-adjusted p < {ALPHA:g}).")
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
    lines.extend(_input_lines(t, table, best))
    lines.extend(_floor_lines(t, confs))
    lines.extend(budget_lines(t))
    lines.extend(f"Note: {md(n)}" for n in t.notes)
    return lines


def _floor_lines(t: TaskAnalysis, confs: pd.DataFrame) -> list[str]:
    """Worse than the floor apart from not shown better than it; a configuration that predicts the floor's labels
    for every text said to, not scored; nothing is said to have learned anything."""
    if "vs floor" not in confs or t.best_floor is None:
        return []
    floor = md(t.best_floor)
    copies = [k for k in confs.index if confs.loc[k].get("floor's labels") is True]
    constant = [k for k in confs.index if confs.loc[k].get("constant") is True and k not in copies]
    worse = [k for k in confs.index if confs.loc[k, "vs floor"] == WORSE_THAN_FLOOR and k not in copies]
    not_shown = [k for k in confs.index if confs.loc[k, "vs floor"] == NOT_SHOWN and k not in copies]
    lines = []
    if copies:
        lines.append(f"⚠ {', '.join(md(k) for k in copies)} predict{'s' * (len(copies) == 1)} the floor's labels "
                     f"for every text (the floor: {floor}, which reads no text).")
    if constant:
        lines.append(f"⚠ {', '.join(md(k) for k in constant)} predict{'s' * (len(constant) == 1)} one answer for "
                     "every text.")
    if worse:
        lines.append(f"⚠ **Worse than the floor** ({floor}, a predictor that reads no text; Holm-adjusted p < "
                     f"{ALPHA:g}): " + ", ".join(md(k) for k in worse) + ".")
    if not_shown:
        lines.append(f"⚠ **Not shown better than the floor** ({floor}, a predictor that reads no text; Holm-adjusted "
                     f"p ≥ {ALPHA:g}): " + ", ".join(md(k) for k in not_shown) + ".")
    if not lines:
        lines.append(f"Every configuration beats the best floor ({floor}; Holm-adjusted p < {ALPHA:g}).")
    return lines


def budget_lines(t: TaskAnalysis) -> list[str]:
    """What each trained configuration had: seeds, the learning rates (or, for the linear models, the C values)
    tried on validation, training examples and epochs, tokens read, model size. A verdict holds for this budget,
    not for larger models, longer training or whole documents."""
    confs = t.table[(t.table.kind != FLOOR)].set_index("configuration")
    parts = []
    for name, row in confs.iterrows():
        trainable = pd.to_numeric(row.get("trainable_params"), errors="coerce")
        if not trainable > 0:  # nothing trained (zero-shot)
            continue
        lr_grid = pd.to_numeric(row.get("lr_grid_size"), errors="coerce")
        c_grid = pd.to_numeric(row.get("c_grid_size"), errors="coerce")
        if c_grid > 0:
            tuned = f"C chosen on validation from {int(c_grid)} values"
        elif lr_grid > 1:
            tuned = f"learning rate {row.get('learning_rate') or '?'} chosen on validation from {int(lr_grid)} values"
        else:
            tuned = f"learning rate {row.get('learning_rate') or '?'} (fixed, not tuned)"
        total = pd.to_numeric(row.get("total_params"), errors="coerce")
        size = (f"{total / 1e6:.0f}M parameters ({trainable / 1e6:.2g}M trained)" if total >= 1e6
                else f"{int(trainable):,} trained parameters")
        tokens = pd.to_numeric(row.get("max_length"), errors="coerce")
        n = pd.to_numeric(row.get("n_train"), errors="coerce")
        epochs = pd.to_numeric(row.get("epochs"), errors="coerce")
        parts.append(f"{md(name)}: {int(row['seeds'])} seed{'s' * (row['seeds'] > 1)}, {tuned}, "
                     + (f"{int(n):,} training examples" if n > 0 else "")
                     + (f" × {epochs:g} epoch{'s' * (epochs != 1)}" if epochs > 0 else "") + ", "
                     + (f"{int(tokens)} tokens a text, " if tokens > 0 else "") + size)
    if not parts:
        return []
    return ["Budget (the verdict is about these budgets; larger models, longer training and longer inputs were not "
            "tested here; a learning rate chosen by a configuration's first seed on validation flatters that seed's "
            "validation score, as C chosen on validation does the linear models'): " + "; ".join(parts) + "."]


def _input_lines(t: TaskAnalysis, table: pd.DataFrame, best: str) -> list[str]:
    """Where the best configuration reads the full text (TF-IDF) and the LLMs a few tokens, say so beside the
    equal-input result."""
    row = table.loc[best]
    if row.get("tfidf_input") != "full":
        return []
    confs = table[table.kind != FLOOR]
    llm = confs[confs.family.isin(["embedding head", "instruction tuning", "zero-shot"])]
    budget = pd.to_numeric(llm.get("text_tokens", pd.Series(dtype=float)), errors="coerce").dropna()
    if budget.empty:
        budget = pd.to_numeric(llm.get("max_length", pd.Series(dtype=float)), errors="coerce").dropna()
    reads = f"at most {budget.max():.0f} tokens of it" if len(budget) else "a truncated text"
    line = (f"Input: {md(best)} reads the full text; the LLMs read {reads}. ")
    equal = confs[(confs.family == row.family) & (confs.tfidf_input == "truncated")]
    if len(equal):
        e = equal.index[0]
        line += f"On equal input, {md(e)}: test F1 micro {_ci(equal.loc[e])}."
    else:
        line += "No equal-input run of it in this study."
    return [line]


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
