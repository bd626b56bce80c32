"""Learning curves: how each configuration's test F1 grows with the training set, and whether the ranking changes.

A study makes one by running the same configurations on tasks that differ only in `max_train` (study `tasks:`
with one key per size; `data.tasks` caps are nested, so a larger training set contains the smaller ones, and the
test set is the same). Tasks belong to one curve when they share their test examples and labels; each point is the
task's own estimate and 95% interval (analysis.verdict: bootstrap over test examples and seeds).

The reading names the leader (highest test F1 point estimate) at each size and where it changes; where it does,
the paired difference of the two at the sizes on either side, with its interval (unadjusted: a description of the
curve, not one of the study's declared tests).
"""

from __future__ import annotations

import pandas as pd

from . import statistics as st
from .verdict import FLOOR, StudyAnalysis, md

CURVE_COLUMNS = ["curve", "configuration", "n_train", "task", "seeds", "f1_micro", "f1_micro low", "f1_micro high"]


def learning_curves(analysis: StudyAnalysis) -> pd.DataFrame:
    """One row per (curve, configuration, training size); empty when no two tasks differ only in training size."""
    groups: dict = {}
    for name, t in analysis.tasks.items():
        key = (tuple(map(str, t.ids)), tuple(t.labels), t.multi_label)
        groups.setdefault(key, []).append(name)
    rows = []
    for number, tasks in enumerate(g for g in groups.values() if len(g) > 1):
        sizes = {task: _n_train(analysis.tasks[task]) for task in tasks}
        known = [n for n in sizes.values() if n is not None]
        if len(set(known)) < 2 or len(set(known)) != len(known):
            continue  # one size, or two tasks of one size on the same test rows (other inputs): not one curve
        for task in tasks:
            t = analysis.tasks[task]
            for _, r in t.table[t.table.kind != FLOOR].iterrows():
                rows.append({"curve": number, "configuration": r.configuration, "n_train": sizes[task],
                             "task": task, "seeds": int(r.seeds), "f1_micro": r.f1_micro,
                             "f1_micro low": r["f1_micro low"], "f1_micro high": r["f1_micro high"]})
    out = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    return out.sort_values(["curve", "configuration", "n_train"], kind="stable").reset_index(drop=True)


def _n_train(t) -> int | None:
    n = pd.to_numeric(t.table.get("n_train", pd.Series(dtype=float)), errors="coerce").dropna()
    return int(n.median()) if len(n) else None


def curve_lines(curves: pd.DataFrame, analysis: StudyAnalysis, n_resamples: int = 2000) -> list[str]:
    """The learning curve in words: the ranking at each training size, and where the leader changes."""
    lines = []
    for _, c in curves.groupby("curve", sort=True):
        sizes = sorted(c.n_train.dropna().unique())
        leaders = {}
        for n in sizes:
            at = c[c.n_train == n].sort_values("f1_micro", ascending=False, kind="stable")
            leaders[n] = at.iloc[0].configuration
            lines.append(f"n = {int(n):,} training examples: "
                         + " > ".join(f"{md(r.configuration)} {r.f1_micro:.3f}" for r in at.itertuples()) + ".")
        changes = [(a, b) for a, b in zip(sizes, sizes[1:]) if leaders[a] != leaders[b]]
        if not changes:
            lines.append(f"The ranking's leader (the highest test F1 micro point estimate, not a test) does not "
                         f"change over n = {int(sizes[0]):,} to {int(sizes[-1]):,}: {md(leaders[sizes[0]])} at "
                         "every size; the intervals in the plot say how far apart the others are.")
        for a, b in changes:
            old, new = leaders[a], leaders[b]
            said = []
            for n in (a, b):
                task = c[(c.n_train == n)].task.iloc[0]
                d = _difference(analysis.tasks[task], new, old, n_resamples)
                if d is not None:
                    said.append(f"at n = {int(n):,}, {md(new)} − {md(old)} = {d['difference']:+.3f} "
                                f"[{d['low']:+.3f}, {d['high']:+.3f}]"
                                + (" (the interval contains 0)" if d["low"] <= 0 <= d["high"] else ""))
            lines.append(f"The leader changes between n = {int(a):,} and n = {int(b):,}: from {md(old)} to "
                         f"{md(new)}" + (" (" + "; ".join(said) + ", paired bootstrap over test examples and "
                                         "seeds, unadjusted)" if said else "") + ".")
    return lines


def _difference(t, a: str, b: str, n_resamples: int) -> dict | None:
    if a not in t.runs or b not in t.runs:
        return None
    n_labels = len(t.labels)
    preds_a = [r.predicted() for r in t.runs[a]]
    preds_b = [r.predicted() for r in t.runs[b]]
    return st.paired_bootstrap_difference(t.y, preds_a, preds_b, "f1_micro", t.multi_label, n_labels,
                                          n_resamples=n_resamples, resample_seeds=True)


def plot_learning_curves(curves: pd.DataFrame):
    """F1 micro against training size (log scale), one line per configuration, 95% intervals as bands."""
    import matplotlib.pyplot as plt

    figs = []
    for number, c in curves.groupby("curve", sort=True):
        fig, ax = plt.subplots(figsize=(8, 4.2))
        for name, g in c.groupby("configuration", sort=False):
            g = g.sort_values("n_train")
            line, = ax.plot(g.n_train, g.f1_micro, marker="o", label=name)
            ax.fill_between(g.n_train, g["f1_micro low"], g["f1_micro high"], color=line.get_color(), alpha=0.15)
        sizes = sorted(c.n_train.unique())
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [f"{int(n):,}" for n in sizes])
        ax.set(xlabel="training examples", ylabel="test F1 micro (95% interval over test examples and seeds)",
               title="learning curve")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
        fig.tight_layout()
        figs.append(fig)
    return figs


__all__ = ["learning_curves", "curve_lines", "plot_learning_curves"]
