"""Small tables a person reads in a notebook. pandas escapes HTML in cell text, so data-set text is safe to show."""

from __future__ import annotations

import pandas as pd


def show_examples(task, n: int = 5, split: str = "train", width: int = 300) -> pd.DataFrame:
    data = getattr(task, split)
    rows = []
    for i in range(min(n, len(data))):
        text = data.texts[i]
        rows.append({"id": data.ids[i], "labels": ", ".join(data.label_names(task.labels)[i]),
                     "text": text if len(text) <= width else text[:width] + " ..."})
    return pd.DataFrame(rows)


def metrics_table(result) -> pd.DataFrame:
    m, c = result.metrics, result.costs
    rows = {
        **({"accuracy": m["accuracy"]} if "accuracy" in m else {"subset accuracy": m["subset_accuracy"]}),
        "F1 micro": m["f1_micro"], "F1 macro": m["f1_macro"],
        "F1 weighted": m["f1_weighted"],
        **({"P@1": m["precision_at_1"],
            "threshold": (m["threshold"] if not isinstance(m["threshold"], list)
                          else f"per label, {min(m['threshold']):.2f}-{max(m['threshold']):.2f}")}
           if "precision_at_1" in m else {}),
        "train seconds": c["timings"]["train_seconds"],
        "train examples / s": c["throughput"]["train_examples_per_second"],
        "inference examples / s": c["throughput"]["inference_examples_per_second"],
        "peak RSS (MB)": c["memory"]["peak_rss_mb"],
        "trainable parameters": c["parameters"]["trainable"],
    }
    return pd.DataFrame({"value": rows})
