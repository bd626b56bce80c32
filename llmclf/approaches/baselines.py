"""The baselines of notebooks/30_baselines.ipynb, one per run, chosen by `BaselineConfig.baseline`.

- `encoder` (encoder.py): a BERT-style encoder fine-tuned end to end, the paper's BERT baselines.
- `frozen` (frozen.py): a linear model on a frozen model's pooled embeddings, cached on disk.
- `tfidf` (tfidf.py): a linear model on TF-IDF word 1-2 grams.
"""

from __future__ import annotations

from ..config import BaselineConfig


def make_baseline(cfg: BaselineConfig, model_path: str | None = None):
    """The classifier `cfg.baseline` names; `model_path` (from `resolve_model(cfg.model)`) for encoder and frozen."""
    if cfg.baseline == "tfidf":
        from .tfidf import TfidfClassifier

        return TfidfClassifier(cfg, model_path if cfg.tfidf_input == "truncated" else None)
    if model_path is None:
        raise ValueError(f"baseline {cfg.baseline!r} needs a model_path: llmclf.resolve_model(cfg.model)")
    if cfg.baseline == "encoder":
        from .encoder import EncoderClassifier

        return EncoderClassifier(cfg, model_path)
    if cfg.baseline == "frozen":
        from .frozen import FrozenEmbeddingClassifier

        return FrozenEmbeddingClassifier(cfg, model_path)
    raise ValueError(f"unknown baseline {cfg.baseline!r}; known: encoder, frozen, tfidf")
