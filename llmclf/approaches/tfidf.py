"""The TF-IDF baseline: word 1-2 grams with sublinear term frequency, then a linear model with C chosen on
validation (llmclf.baselines). No pretrained model: the floor every fine-tuned approach has to clear.

The vocabulary keeps terms seen in at least two training documents (from 100 documents up) and at most
`MAX_FEATURES` of them: n-grams seen once are most of a bigram vocabulary (uspto-10k sections: 240k of them, 61k
kept) and cannot generalize, and the linear model's cost grows with them. The vectorizer is fitted once, on the
training split; the C grid is fitted on its output (approaches.linear: saga with warm starts on sparse features).
"""

from __future__ import annotations

import time

import numpy as np

from ..config import BaselineConfig
from .linear import count_linear_parameters, fit_linear_on_validation, predict_proba_linear

MAX_FEATURES = 200_000
MIN_DF_FROM = 100  # training documents from which n-grams seen in one document only are dropped


class TfidfClassifier:
    """fit(task) then predict_proba(texts) -> (n, n_labels) probabilities, as in scikit-learn."""

    epochs = 1.0  # for throughput: fit sees each training text once (vectorizing), whatever the C grid

    def __init__(self, cfg: BaselineConfig):
        self.cfg = cfg
        self.threshold = 0.5
        self.log_history: list[dict] = []
        self.prediction_stats: dict = {}

    def fit(self, task) -> "TfidfClassifier":
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.labels, self.multi_label = task.labels, task.multi_label
        start = time.perf_counter()
        min_df = 2 if len(task.train) >= MIN_DF_FROM else 1
        self.vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), dtype=np.float32, min_df=min_df,
                                          max_features=MAX_FEATURES)
        X_train = self.vectorizer.fit_transform(task.train.texts)
        X_val = self.vectorizer.transform(task.validation.texts)
        vectorize_seconds = time.perf_counter() - start
        self.selection = fit_linear_on_validation(
            X_train, task.train.y, X_val, task.validation.y, n_labels=task.n_labels, multi_label=task.multi_label,
            kind=self.cfg.linear_model, c_values=self.cfg.c_values,
            tune_threshold=self.cfg.threshold == "validation", seed=self.cfg.seed)
        self.model = self.selection.model
        if task.multi_label:
            self.threshold = self.selection.threshold
        # A linear model on sparse features: every weight trains, and there is nothing else.
        self.trainable_params = self.total_params = count_linear_parameters(self.model)
        self.prediction_stats = {
            "linear_model": {"kind": self.cfg.linear_model, "n_features": int(X_train.shape[1]),
                             "min_df": min_df, "max_features": MAX_FEATURES,
                             **self.selection.record()},
            "feature_seconds": {"train_and_validation": vectorize_seconds},
        }
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return predict_proba_linear(self.model, self.vectorizer.transform(texts), len(self.labels), self.multi_label)
