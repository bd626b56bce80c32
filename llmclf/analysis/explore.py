"""Data exploration for notebooks/00_data: sizes, label distribution, labels per document, text lengths in tokens,
label co-occurrence and examples. Plots are for a person deciding on caps, max_length and min_label_count."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def label_counts(task) -> pd.DataFrame:
    """Long format: split, label, documents."""
    rows = []
    for split, data in task.splits.items():
        counts = data.label_indicator(task.n_labels).sum(axis=0)
        rows += [{"split": split, "label": label, "documents": int(c)} for label, c in zip(task.labels, counts)]
    return pd.DataFrame(rows)


def plot_label_distribution(task, log: bool | None = None, top: int = 60):
    """Bar plot of documents per label in train (most frequent first); log scale for long tails by default."""
    counts = label_counts(task)
    train = counts[counts.split == "train"].sort_values("documents", ascending=False).head(top)
    log = bool(train.documents.max() > 20 * max(train.documents.min(), 1)) if log is None else log
    fig, ax = plt.subplots(figsize=(max(6, 0.25 * len(train)), 3.5))
    sns.barplot(data=train, x="label", y="documents", color="tab:blue", ax=ax)
    ax.set(yscale="log" if log else "linear", title=f"Training documents per label ({len(train)} of "
           f"{task.n_labels} labels{', log scale' if log else ''})", xlabel="")
    ax.tick_params(axis="x", rotation=90)
    return ax


def labels_per_document(task) -> pd.DataFrame:
    rows = []
    for split, data in task.splits.items():
        per_doc = data.label_indicator(task.n_labels).sum(axis=1)
        values, counts = np.unique(per_doc, return_counts=True)
        rows += [{"split": split, "labels": int(v), "documents": int(c)} for v, c in zip(values, counts)]
    return pd.DataFrame(rows).pivot(index="labels", columns="split", values="documents").fillna(0).astype(int)


def token_lengths(texts: list[str], tokenizer, batch: int = 256) -> np.ndarray:
    lengths = []
    for start in range(0, len(texts), batch):
        enc = tokenizer(texts[start:start + batch], add_special_tokens=True)
        lengths += [len(ids) for ids in enc["input_ids"]]
    return np.array(lengths)


def truncation_table(lengths: np.ndarray, candidates: list[int]) -> pd.DataFrame:
    """For each candidate max_length: the share of texts it truncates and the share of tokens it drops."""
    total = lengths.sum()
    rows = [{"max_length": m, "texts truncated": float(np.mean(lengths > m)),
             "tokens dropped": float(np.clip(lengths - m, 0, None).sum() / total)} for m in candidates]
    return pd.DataFrame(rows).set_index("max_length")


def plot_token_lengths(lengths: np.ndarray, candidates: list[int]):
    fig, ax = plt.subplots(figsize=(7, 3))
    sns.histplot(lengths, bins=50, ax=ax)
    for m in candidates:
        ax.axvline(m, color="tab:red", linestyle="--", linewidth=1)
        ax.text(m, ax.get_ylim()[1] * 0.9, f" {m}", color="tab:red", fontsize=8)
    ax.set(xlabel="tokens per text", ylabel="texts", title="Text length in tokens (dashed: candidate max_length)")
    return ax


def cooccurrence(task, top: int = 15) -> pd.DataFrame:
    """Documents carrying both labels, for the `top` most frequent labels (train split)."""
    y = task.train.label_indicator(task.n_labels).astype(np.int64)
    order = np.argsort(-y.sum(axis=0))[:top]
    sub = y[:, order]
    names = [task.labels[j] for j in order]
    return pd.DataFrame(sub.T @ sub, index=names, columns=names)


def plot_cooccurrence(task, top: int = 15):
    matrix = cooccurrence(task, top)
    fig, ax = plt.subplots(figsize=(0.45 * len(matrix) + 2, 0.4 * len(matrix) + 1.5))
    sns.heatmap(np.log10(matrix.replace(0, np.nan)), cmap="viridis", ax=ax,
                cbar_kws={"label": "log10 documents"}, annot=matrix if len(matrix) <= 10 else False, fmt="d")
    ax.set(title=f"Co-occurrence of the {len(matrix)} most frequent labels (train; diagonal: label counts)")
    return ax


def examples_per_label(task, n: int = 2, width: int = 240, split: str = "train") -> pd.DataFrame:
    """A few texts per label (pandas escapes them when shown as HTML)."""
    data = getattr(task, split)
    y = data.label_indicator(task.n_labels)
    rows = []
    for j, label in enumerate(task.labels):
        for i in np.flatnonzero(y[:, j])[:n]:
            text = data.texts[i]
            rows.append({"label": label, "description": (task.label_descriptions or {}).get(label, ""),
                         "id": data.ids[i], "text": text if len(text) <= width else text[:width] + " ..."})
    return pd.DataFrame(rows)


def split_sizes(task) -> pd.DataFrame:
    return pd.DataFrame({"documents": {s: len(d) for s, d in task.splits.items()}})
