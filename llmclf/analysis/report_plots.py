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


def reliability_diagrams(t: TaskAnalysis, configurations, n_bins: int = 15, columns: int = 3):
    """One diagram per configuration, the seeds' test predictions pooled: confidence against hit rate; a grid of
    `columns` diagrams a row, each large enough to read."""
    configurations = list(configurations) or [None]
    rows = -(-len(configurations) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.0 * columns, 3.9 * rows), squeeze=False)
    for ax in axes.flat[len(configurations):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, configurations):
        if name is None:
            ax.set_visible(False)
            continue
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
               ylabel="hit rate", title=f"{_wrap(name)}\n{said}")
        ax.title.set_fontsize(10)
    fig.tight_layout()
    return fig


def confusion_grid(t: TaskAnalysis, configurations, columns: int = 3):
    """Single-label: the confusion matrix of each configuration, summed over its seeds (invalid answers in a column
    of their own), in a grid."""
    import seaborn as sns

    from .tables import confusion_summed

    configurations = list(configurations) or [None]
    rows = -(-len(configurations) // columns)
    side = 1.2 + 0.45 * len(t.labels)
    fig, axes = plt.subplots(rows, columns, figsize=(side * columns + 1, side * rows), squeeze=False)
    for ax in axes.flat[len(configurations):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, configurations):
        if name is None:
            ax.set_visible(False)
            continue
        cm = confusion_summed(t, name)
        sns.heatmap(cm, annot=len(t.labels) <= 12, fmt="d", cmap="Blues", cbar=False, ax=ax)
        ax.set(xlabel="predicted", ylabel="true", title=f"{_wrap(name)}\n({len(t.runs[name])} seed(s) summed)")
        ax.title.set_fontsize(10)
    fig.tight_layout()
    return fig


def contrast_matrix(t: TaskAnalysis):
    """The declared contrasts as a matrix: row minus column, F1 micro, with the 95% interval; a bold cell is
    decided (Holm-adjusted p < 0.05), a plain one is not distinguishable. None when the study declared none."""
    import seaborn as sns

    from .verdict import CONTRASTS

    c = t.comparisons[t.comparisons.family == CONTRASTS]
    if c.empty:
        return None
    arms = list(dict.fromkeys([*c.configuration_a, *c.configuration_b]))
    diff = pd.DataFrame(np.nan, index=arms, columns=arms)
    text = pd.DataFrame("", index=arms, columns=arms)
    decided = pd.DataFrame(False, index=arms, columns=arms)
    for r in c.itertuples():
        for a, b, sign in ((r.configuration_a, r.configuration_b, 1), (r.configuration_b, r.configuration_a, -1)):
            lo, hi = sorted((sign * r.ci_low, sign * r.ci_high))
            diff.loc[a, b] = sign * r.difference
            text.loc[a, b] = f"{sign * r.difference:+.3f}\n[{lo:+.3f}, {hi:+.3f}]\np_holm {r.p_holm:.2g}"
            decided.loc[a, b] = r.p_holm < 0.05
    n = len(arms)
    fig, ax = plt.subplots(figsize=(2.3 * n + 2.5, 1.3 * n + 1.5))
    limit = float(np.nanmax(np.abs(diff.to_numpy()))) or 0.01
    sns.heatmap(diff.astype(float), annot=text.to_numpy(), fmt="", cmap="RdBu", center=0, vmin=-limit,
                vmax=limit, cbar_kws={"label": "F1 micro, row − column"}, linewidths=0.5, linecolor="white",
                ax=ax, annot_kws={"fontsize": 8})
    for tx in ax.texts:
        row, col = _cell_of(tx, n)
        if row is not None and decided.iloc[row, col]:
            tx.set_fontweight("bold")
    ax.set_xticklabels([_wrap(a, 22) for a in arms], rotation=0, fontsize=8)
    ax.set_yticklabels([_wrap(a, 22) for a in arms], rotation=0, fontsize=8)
    ax.set(title=f"{t.task}: declared contrasts (bold: Holm-adjusted p < 0.05; blank: not declared)",
           xlabel="", ylabel="")
    fig.tight_layout()
    return fig


def _cell_of(text, n):
    x, y = text.get_position()
    row, col = int(np.floor(y)), int(np.floor(x))
    return (row, col) if 0 <= row < n and 0 <= col < n else (None, None)


def _wrap(name: str, width: int = 34) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(str(name), width)) or str(name)


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
    """F1 micro (with its interval) against each cost, one panel a cost; the frontier (no other point both better
    and cheaper) drawn as a red line through its points. A configuration keeps one colour and marker in every
    panel, so the one legend outside the axes names it wherever it appears."""
    tab = t.table[t.table.kind != FLOOR]
    fig, axes = plt.subplots(1, len(PARETO_COSTS), figsize=(4.6 * len(PARETO_COSTS), 4.0), sharey=True)
    colors = plt.get_cmap("tab10" if len(tab) <= 10 else "tab20")
    style = {name: (colors(i % colors.N), "osD^vP*Xh<>p"[i % 12]) for i, name in enumerate(tab.configuration)}
    handles = {}
    for ax, (col, xlabel, how) in zip(axes, PARETO_COSTS):
        d = tab.assign(x=pd.to_numeric(tab[col], errors="coerce")).dropna(subset=["x"])
        d = d[d.x > 0]
        front = _frontier(d.x.to_numpy(), d.f1_micro.to_numpy(), how)
        if len(front):
            fx, fy = d.x.to_numpy()[front], d.f1_micro.to_numpy()[front]
            line, = ax.plot(fx, fy, color="tab:red", linewidth=2.2, alpha=0.9, zorder=1)
            handles.setdefault("Pareto frontier (no point both better and cheaper)", line)
        for _, r in d.iterrows():
            color, marker = style[r.configuration]
            h = ax.errorbar(r.x, r.f1_micro, yerr=[[r.f1_micro - r["f1_micro low"]], [r["f1_micro high"] - r.f1_micro]],
                            fmt=marker, color=color, markersize=8, capsize=3, zorder=2)
            handles.setdefault(r.configuration, h)
        ax.set(xscale="log", xlabel=xlabel)
        ax.grid(alpha=0.3)
        if d.empty:
            ax.set_title("not recorded")
    axes[0].set_ylabel("F1 micro (test, 95% CI)")
    fig.legend(list(handles.values()), [_wrap(k, 48) for k in handles], loc="center left", bbox_to_anchor=(1.0, 0.5),
               fontsize=8, title="configuration")
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
