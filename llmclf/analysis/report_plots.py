"""The deciding report's plots: F1 with its bootstrap interval, reliability diagrams, F1 against threshold and the
cost / quality Pareto plot with its frontier. Legends sit outside the axes, where they hide no point."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import calibration as cal
from .verdict import FLOOR, TaskAnalysis

PARETO_COSTS = (("train_seconds", "training time (s, log)", "min"),
                ("infer_ex_per_s", "inference throughput (examples / s, log)", "max"),
                ("trainable_params", "trainable parameters (log)", "min"))


def f1_intervals(t: TaskAnalysis, metric: str = "f1_micro"):
    """Every configuration and floor: the table's estimate and 95% bootstrap interval (the same numbers)."""
    tab = t.table.iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(tab) + 1.2))
    y = np.arange(len(tab))
    colors = ["tab:gray" if k == FLOOR else "black" for k in tab.kind]
    for yi, (_, r), color in zip(y, tab.iterrows(), colors):
        ax.errorbar(r[metric], yi, xerr=[[r[metric] - r[f"{metric} low"]], [r[f"{metric} high"] - r[metric]]],
                    fmt="D", color=color, capsize=3)
    ax.set_yticks(y, [c + (" (floor)" if k == FLOOR else "") for c, k in zip(tab.configuration, tab.kind)])
    ax.set(xlabel=f"{metric.replace('_', ' ')} (test), 95% bootstrap interval over test examples, seeds averaged",
           title=t.task)
    return fig


def reliability_diagrams(t: TaskAnalysis, configurations, n_bins: int = 15):
    """One diagram per configuration, the seeds' test predictions pooled: confidence against hit rate."""
    fig, axes = plt.subplots(1, len(configurations), figsize=(3.2 * len(configurations), 3.4), squeeze=False)
    for ax, name in zip(axes[0], configurations):
        runs = t.runs[name]
        y = np.concatenate([r.y for r in runs])
        proba = np.concatenate([r.proba for r in runs])
        bins = cal.reliability(y, proba, t.multi_label, n_bins)
        ok = bins["count"] > 0
        ax.plot([0, 1], [0, 1], color="gray", linestyle=":")
        ax.bar(bins.bin_low[ok], bins.accuracy[ok], width=1 / n_bins, align="edge", alpha=0.6, edgecolor="black")
        said = (f"ECE {cal.ece(y, proba, t.multi_label, n_bins):.3f}" if cal.is_probabilistic(proba)
                else "0/1 outputs: not probabilistic")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence" if not t.multi_label else "p(label)",
               ylabel="hit rate", title=f"{name}\n{said}")
        ax.title.set_fontsize(9)
    fig.tight_layout()
    return fig


def f1_against_threshold(curve: pd.DataFrame, chosen, title: str):
    """Multi-label: test micro-F1 against the decision threshold, the validation-chosen threshold marked."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(curve.threshold, curve.f1_micro, marker=".")
    for c in np.atleast_1d(chosen if chosen is not None else []):
        if np.ndim(chosen) == 0:
            ax.axvline(float(c), color="tab:red", linestyle="--", label=f"chosen on validation ({float(c):.2f})")
    if np.ndim(chosen) == 1:
        ax.set_title("(per-label thresholds: not one line)")
    ax.set(xlabel="decision threshold", ylabel="F1 micro (test)", title=title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    return fig


def pareto(t: TaskAnalysis):
    """F1 micro (with its interval) against each cost; the frontier (no other point both better and cheaper) drawn;
    one legend outside the axes."""
    tab = t.table[t.table.kind != FLOOR]
    fig, axes = plt.subplots(1, len(PARETO_COSTS), figsize=(4.2 * len(PARETO_COSTS), 3.6), sharey=True)
    markers = dict(zip(tab.configuration, "osD^vP*Xh<>p" * 3))
    for ax, (col, xlabel, how) in zip(axes, PARETO_COSTS):
        d = tab.assign(x=pd.to_numeric(tab[col], errors="coerce")).dropna(subset=["x"])
        d = d[d.x > 0]
        for _, r in d.iterrows():
            ax.errorbar(r.x, r.f1_micro, yerr=[[r.f1_micro - r["f1_micro low"]], [r["f1_micro high"] - r.f1_micro]],
                        fmt=markers[r.configuration], capsize=2, label=r.configuration)
        front = _frontier(d.x.to_numpy(), d.f1_micro.to_numpy(), how)
        if len(front):
            fx, fy = d.x.to_numpy()[front], d.f1_micro.to_numpy()[front]
            ax.step(fx, fy, where="post" if how == "min" else "pre", color="tab:red", alpha=0.5, label="_frontier")
        ax.set(xscale="log", xlabel=xlabel)
        if d.empty:
            ax.set_title("not recorded")
    axes[0].set_ylabel("F1 micro (test, 95% CI)")
    handles, labels = axes[0].get_legend_handles_labels()
    seen = {}
    for ax in axes:
        for h, l in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(l, h)
    fig.legend(list(seen.values()), list(seen), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               title="configuration (red: frontier)")
    fig.suptitle(t.task)
    fig.tight_layout()
    return fig


def _frontier(x, y, how):
    """Indices of the points no other point beats on both F1 (higher) and cost (lower x for min, higher for max),
    sorted by x."""
    order = np.argsort(x if how == "min" else -x, kind="stable")
    front, best = [], -np.inf
    for i in order:
        if y[i] > best:
            front.append(i)
            best = y[i]
    return np.array(sorted(front, key=lambda i: x[i]), dtype=int)
