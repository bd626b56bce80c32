"""Plots a person reads in a run's notebook: the loss curve and the confusion matrix."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns


def loss_curve(loss_curve: list[dict], ax=None):
    ax = ax or plt.subplots(figsize=(6, 3))[1]
    if not loss_curve:
        ax.set_title("no training loss was logged")
        return ax
    steps = [p["step"] for p in loss_curve]
    ax.plot(steps, [p["loss"] for p in loss_curve], marker=".")
    ax.set(xlabel="optimizer step", ylabel="training loss", title="Training loss")
    return ax


def confusion_heatmap(y_true: np.ndarray, proba: np.ndarray, labels: list[str], ax=None):
    """Row-normalized confusion matrix (single-label), or per-label F1 bars (multi-label)."""
    from sklearn.metrics import confusion_matrix

    ax = ax or plt.subplots(figsize=(1.0 + 0.6 * len(labels), 0.8 + 0.5 * len(labels)))[1]
    cm = confusion_matrix(y_true, proba.argmax(axis=1), labels=list(range(len(labels))), normalize="true")
    sns.heatmap(cm, annot=len(labels) <= 12, fmt=".2f", cmap="Blues", vmin=0, vmax=1,
                xticklabels=labels, yticklabels=labels, ax=ax)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (rows sum to 1)")
    return ax


def per_label_f1(f1_per_label: dict, ax=None):
    ax = ax or plt.subplots(figsize=(6, 0.3 * len(f1_per_label) + 1))[1]
    sns.barplot(x=list(f1_per_label.values()), y=list(f1_per_label.keys()), ax=ax, color="tab:blue")
    ax.set(xlabel="F1", xlim=(0, 1), title="F1 per label")
    return ax
