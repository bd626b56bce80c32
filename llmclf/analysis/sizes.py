"""Two axes of a study: model size, and how much of each text is read.

The model-size axis: one approach's test F1 and costs at each model size a study ran it with.

A study puts models side by side by running the same configuration with another `model` (params/scale.yaml).
Configurations of a task belong to one size line when they are of one approach family and their runs' parameters
are equal but for the model (and the seed, the run folder and the learning rate a grid chose). Each point is the
configuration's own estimate and 95% interval (analysis.verdict: bootstrap over test examples and seeds), with
its parameters, training time, inference throughput and peak memory: what a bigger model buys and costs. Whether
two sizes differ is for the study's declared contrasts (a test); the lines here describe.

The reading axis (params/long.yaml): the same, for configurations equal but for how much of a text they read
(`max_length`, `long_text`, `max_chunks`, `chunk_stride`, `chunk_pooling` and the batch sizes that go with them),
against the text tokens a run read on average (its record's input budget).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .verdict import FLOOR, StudyAnalysis, md

SIZE_COLUMNS = ["task", "line", "family", "configuration", "model", "total_params", "tokens_read", "long_text",
                "seeds", "f1_micro", "f1_micro low", "f1_micro high", "train_seconds", "infer_ex_per_s",
                "peak_memory_mb"]
ALWAYS_FREE = {"seed", "run_dir", "learning_rate"}  # may differ within any line
SIZE_FREE = {"model"}  # what may differ along one size line
READING_FREE = {"max_length", "long_text", "max_chunks", "chunk_stride", "chunk_pooling", "batch_size",
                "eval_batch_size", "grad_accum"}


def _settings(run_dir, free: set) -> tuple[str, str] | None:
    """A run's parameters but those in `free` (and seed, folder, learning rate), and its `free` parameters, as two
    keys; None when unreadable."""
    try:
        params = json.loads((Path(run_dir) / "record.json").read_text()).get("params") or {}
    except (OSError, ValueError, TypeError):
        return None
    skip = free | ALWAYS_FREE
    fixed = json.dumps({k: v for k, v in params.items() if k not in skip}, sort_keys=True, default=str)
    return fixed, json.dumps({k: v for k, v in params.items() if k in free}, sort_keys=True, default=str)


def table_family(t, name: str) -> str:
    return str(t.table.set_index("configuration").loc[name, "family"])


def model_sizes(analysis: StudyAnalysis, records: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, size line, configuration); empty when no configuration ran with two models."""
    return _lines(analysis, records, SIZE_FREE, "model", "total_params")


def reading_lengths(analysis: StudyAnalysis, records: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, line, configuration) of configurations equal but for how much of a text they read;
    empty when no two configurations differ only so."""
    return _lines(analysis, records, READING_FREE, "tokens_read", "tokens_read")


def _lines(analysis, records, free: set, differs: str, order: str) -> pd.DataFrame:
    done = records[records.status == "done"] if "status" in records else records
    rows = []
    for task, t in analysis.tasks.items():
        runs = done[done.task == task]
        keys, varied = {}, {}
        for name in t.table[t.table.kind != FLOOR].configuration:
            dirs = runs[runs.label == name].run_dir
            settings = {_settings(d, free) for d in dirs}
            if len(dirs) and len(settings) == 1 and None not in settings:  # one approach family a line
                fixed, varied[name] = settings.pop()
                keys.setdefault((table_family(t, name), fixed), []).append(name)
        table = t.table.set_index("configuration")
        for line, names in enumerate(names for names in keys.values() if len(names) > 1):
            values = [table.loc[n, differs] for n in names]
            if len({varied[n] for n in names}) != len(names) or any(pd.isna(v) or "," in str(v) or v == ""
                                                                   for v in values):
                continue  # each configuration its own setting of the free parameters, and a known position
            for name in names:
                r = table.loc[name]
                rows.append({"task": task, "line": line, "family": r.family, "configuration": name,
                             "model": r.model, "total_params": r.total_params, "tokens_read": r.tokens_read,
                             "long_text": r.long_text, "seeds": int(r.seeds),
                             "f1_micro": r.f1_micro, "f1_micro low": r["f1_micro low"],
                             "f1_micro high": r["f1_micro high"], "train_seconds": r.train_seconds,
                             "infer_ex_per_s": r.infer_ex_per_s, "peak_memory_mb": r.peak_memory_mb})
    out = pd.DataFrame(rows, columns=SIZE_COLUMNS)
    return out.sort_values(["task", "line", order, "configuration"], kind="stable").reset_index(drop=True)


def size_lines(sizes: pd.DataFrame) -> list[str]:
    """Each size line in words: F1 with its interval, and the costs, from the smallest model to the largest."""
    lines = []
    for (task, _), g in sizes.groupby(["task", "line"], sort=False):
        points = "; ".join(
            f"{md(r.model)} ({r.total_params / 1e6:,.0f}M parameters) {r.f1_micro:.3f} [{r['f1_micro low']:.3f}, "
            f"{r['f1_micro high']:.3f}], training {r.train_seconds:,.0f} s, inference {r.infer_ex_per_s:.1f} ex/s, "
            f"peak memory {r.peak_memory_mb:,.0f} MB" for _, r in g.iterrows())
        lines.append(f"{md(g.family.iloc[0])} on {md(task)}: {points}.")
    if lines:
        lines.append("Points with their 95% intervals over test examples and seeds; overlapping intervals are no "
                     "test: whether two sizes differ is the declared contrasts' sentence in the verdict.")
    return lines


def plot_model_sizes(sizes: pd.DataFrame):
    """Per task: test F1 micro (95% intervals) against total parameters, one line per approach; beside it the
    training time and the inference throughput against the same axis."""
    import matplotlib.pyplot as plt

    from matplotlib.ticker import NullLocator

    figs = []
    for task, c in sizes.groupby("task", sort=False):
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        lines = list(c.groupby("line", sort=True))
        for k, (_, g) in enumerate(lines):
            label = str(g.family.iloc[0])
            # a small sideways offset per line, so that intervals at one size do not hide each other
            x = g.total_params / 1e6 * (1 + 0.03 * (k - (len(lines) - 1) / 2))
            err = [g.f1_micro - g["f1_micro low"], g["f1_micro high"] - g.f1_micro]
            line = axes[0].errorbar(x, g.f1_micro, yerr=err, marker="o", capsize=4, label=label)
            color = line[0].get_color()
            axes[1].plot(x, g.train_seconds, marker="o", color=color, label=label)
            axes[2].plot(x, g.infer_ex_per_s, marker="o", color=color, label=label)
        ticks = c.groupby("model").total_params.median().sort_values() / 1e6
        for ax, ylabel in zip(axes, ("test F1 micro (95% interval)", "training seconds (median over seeds)",
                                     "inference examples / s")):
            ax.set_xscale("log")
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticks(list(ticks), [f"{m}\n{v:,.0f}M" for m, v in ticks.items()], fontsize=8)
            ax.set_xlim(ticks.min() / 1.4, ticks.max() * 1.4)
            ax.set(xlabel="model (parameters, log scale)", ylabel=ylabel)
        fig.suptitle(f"Model size: {task}", fontsize=10)
        axes[2].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
        fig.tight_layout()
        figs.append(fig)
    return figs


def reading_lines(reading: pd.DataFrame) -> list[str]:
    """Each reading line in words: F1 with its interval and the costs, from the least read to the most."""
    lines = []
    for (task, _), g in reading.groupby(["task", "line"], sort=False):
        points = "; ".join(
            f"{md(r.configuration)} (reads {r.tokens_read:,.0f} text tokens on average) {r.f1_micro:.3f} "
            f"[{r['f1_micro low']:.3f}, {r['f1_micro high']:.3f}], training {r.train_seconds:,.0f} s, inference "
            f"{r.infer_ex_per_s:.1f} ex/s" for _, r in g.iterrows())
        lines.append(f"{md(g.family.iloc[0])} on {md(task)}: {points}.")
    if lines:
        lines.append("Points with their 95% intervals over test examples and seeds; whether two readings differ is "
                     "the declared contrasts' sentence in the verdict.")
    return lines


def plot_reading_lengths(reading: pd.DataFrame):
    """Per task: test F1 micro (95% intervals) and training time against the text tokens read, one line per
    approach; windowed readings (long_text: chunks) marked with squares."""
    import matplotlib.pyplot as plt

    figs = []
    for task, c in reading.groupby("task", sort=False):
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        for _, g in c.groupby("line", sort=True):
            label = str(g.family.iloc[0])
            err = [g.f1_micro - g["f1_micro low"], g["f1_micro high"] - g.f1_micro]
            line = axes[0].errorbar(g.tokens_read, g.f1_micro, yerr=err, marker="o", capsize=4, label=label)
            color = line[0].get_color()
            axes[1].plot(g.tokens_read, g.train_seconds, marker="o", color=color, label=label)
            chunked = g[g.long_text == "chunks"]
            for ax, y in ((axes[0], chunked.f1_micro), (axes[1], chunked.train_seconds)):
                ax.scatter(chunked.tokens_read, y, marker="s", s=70, facecolors="none", edgecolors=color)
        axes[0].set(xlabel="text tokens read (mean over test texts)", ylabel="test F1 micro (95% interval)")
        axes[1].set(xlabel="text tokens read (mean over test texts)", ylabel="training seconds (median over seeds)")
        fig.suptitle(f"How much of each text is read: {task} (squares: windows pooled)", fontsize=10)
        axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
        fig.tight_layout()
        figs.append(fig)
    return figs


__all__ = ["model_sizes", "size_lines", "plot_model_sizes", "reading_lengths", "reading_lines",
           "plot_reading_lengths"]
