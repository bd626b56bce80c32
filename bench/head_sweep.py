"""The default study's embedding-head settings, chosen on the validation split (never test): a few learning rates
and batch sizes at the study's sizes (bbc-news, 256 training / 100 validation examples, 64 tokens, one epoch),
each scored by validation accuracy and log-loss. Not part of the test suite.

    python bench/head_sweep.py [--configs 0.002:8 0.001:4 ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", nargs="+", default=["0.002:8", "0.002:4", "0.001:4", "0.004:8"],
                        help="learning_rate:batch_size pairs")
    parser.add_argument("--max-train", type=int, default=256)
    parser.add_argument("--max-val", type=int, default=100)
    args = parser.parse_args(argv)
    import numpy as np

    import llmclf
    from llmclf.approaches.embedding_head import EmbeddingHeadClassifier
    from llmclf.config import EmbeddingHeadConfig
    from llmclf.models.registry import resolve_model

    path = str(resolve_model("smollm2-135m"))
    rows = []
    for spec in args.configs:
        lr, bs = spec.split(":")
        cfg = EmbeddingHeadConfig(model=path, dataset="bbc-news", max_train=args.max_train, max_val=args.max_val,
                                  max_test=200, max_length=64, epochs=1.0, learning_rate=float(lr),
                                  batch_size=int(bs))
        task = llmclf.load_task(cfg.dataset, **cfg.task_kwargs())
        start = time.perf_counter()
        clf = EmbeddingHeadClassifier(cfg, path).fit(task)
        seconds = time.perf_counter() - start
        proba = clf.predict_proba(task.validation.texts)
        y = np.asarray(task.validation.y)
        acc = float((proba.argmax(1) == y).mean())
        logloss = float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1)).mean())
        rows.append((lr, bs, acc, logloss, seconds))
        print(f"lr {lr} batch {bs}: validation accuracy {acc:.3f}, log-loss {logloss:.3f} ({seconds:.0f} s to fit)",
              flush=True)
    print("\n| learning rate | batch | validation accuracy | validation log-loss | fit s |")
    print("|---|---|---|---|---|")
    for lr, bs, acc, ll, s in rows:
        print(f"| {lr} | {bs} | {acc:.3f} | {ll:.3f} | {s:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
