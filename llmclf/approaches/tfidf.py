"""The TF-IDF baseline: word 1-2 grams with sublinear term frequency, then a linear model with C chosen on
validation (llmclf.baselines). No pretrained model: the floor every fine-tuned approach has to clear.

The vocabulary keeps terms seen in at least two training documents (from 100 documents up) and at most
`MAX_FEATURES` of them: n-grams seen once are most of a bigram vocabulary (uspto-10k sections: 240k of them, 61k
kept) and cannot generalize, and the linear model's cost grows with them. The vectorizer is fitted once, on the
training split; the C grid is fitted on its output (approaches.linear: saga with warm starts on sparse features;
multi-label: newton-cg, a warm-started C path per label, the labels in parallel).
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

    def __init__(self, cfg: BaselineConfig, tokenizer_path: str | None = None):
        self.cfg = cfg
        self.tokenizer_path = tokenizer_path  # with tfidf_input 'truncated': whose first max_length tokens to read
        self._tokenizer = None
        self.threshold = 0.5
        self.log_history: list[dict] = []
        self.prediction_stats: dict = {}

    def fit(self, task) -> "TfidfClassifier":
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.labels, self.multi_label = task.labels, task.multi_label
        from ..progress import Progress

        start = time.perf_counter()
        min_df = 2 if len(task.train) >= MIN_DF_FROM else 1
        self.vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), dtype=np.float32, min_df=min_df,
                                          max_features=MAX_FEATURES)
        # one scikit-learn call each: the phase shows, the steps are the two splits
        with Progress("tfidf vectorize", total=2, run_dir=self.cfg.run_dir or None, bar=False) as p:
            X_train = self.vectorizer.fit_transform(self.input_texts(task.train.texts))
            p.update()
            X_val = self.vectorizer.transform(self.input_texts(task.validation.texts))
            p.update()
        vectorize_seconds = time.perf_counter() - start
        self.selection = fit_linear_on_validation(
            X_train, task.train.y, X_val, task.validation.y, n_labels=task.n_labels, multi_label=task.multi_label,
            kind=self.cfg.linear_model, c_values=self.cfg.c_values, threshold_rule=self.cfg.threshold,
            class_weight=self.cfg.class_weight, seed=self.cfg.seed)
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
        return predict_proba_linear(self.model, self.vectorizer.transform(self.input_texts(texts)), len(self.labels),
                                    self.multi_label)


    def save(self, folder: str) -> None:
        """The vectorizer (vocabulary and idf) and the linear model as safetensors + JSON (no pickle), with
        `llmclf_model.json` (labels, threshold(s))."""
        from .persistence import save_sklearn, write_metadata

        save_sklearn({"vectorizer": self.vectorizer, "model": self.model}, folder, "tfidf")
        if self.truncated:  # equal inputs: the tokenizer that cuts each text travels with the model
            self.tokenizer().save_pretrained(folder)
        write_metadata(folder, self, "tfidf", base_model=None, base_path=None, needs_base=False,
                       trainable_params=self.trainable_params)

    @classmethod
    def load(cls, folder: str, model_path: str | None = None) -> "TfidfClassifier":
        from ..config import BaselineConfig
        from .persistence import config_from, load_sklearn, read_metadata, restore_common

        meta = read_metadata(folder)
        cfg = config_from(meta, BaselineConfig, baseline="tfidf")
        clf = restore_common(cls(cfg, tokenizer_path=folder if cfg.tfidf_input == "truncated" else None), meta)
        parts = load_sklearn(folder, "tfidf")
        clf.vectorizer, clf.model = parts["vectorizer"], parts["model"]
        clf.trainable_params = clf.total_params = meta.get("trainable_params")
        return clf

    # ---- equal inputs (tfidf_input: truncated): the text the model-based approaches read, nothing more

    @property
    def truncated(self) -> bool:
        return self.cfg.tfidf_input == "truncated"

    def tokenizer(self):
        if self._tokenizer is None:
            if self.tokenizer_path is None:
                raise ValueError("tfidf_input='truncated' needs the tokenizer of `model`: "
                                 "make_baseline(cfg, resolve_model(cfg.model))")
            from ..models.loading import load_tokenizer

            self._tokenizer = load_tokenizer(self.tokenizer_path, self.cfg.trust_remote_code)
        return self._tokenizer

    def input_texts(self, texts: list[str]) -> list[str]:
        """The texts as given (full), or each cut to the tokenizer's first `max_length` tokens and decoded."""
        if not self.truncated:
            return list(texts)
        tok = self.tokenizer()
        ids = tok(list(texts), add_special_tokens=False, truncation=True, max_length=self.cfg.max_length)["input_ids"]
        return tok.batch_decode(ids, skip_special_tokens=True)

    def input_budget(self, texts: list[str]) -> dict:
        """Full text: no budget. Truncated: max_length text tokens and the share of `texts` cut to them."""
        if not self.truncated:
            return {"max_length": None, "text_tokens": None, "truncated_share": 0.0}
        lengths = [len(i) for i in self.tokenizer()(list(texts), add_special_tokens=False, verbose=False)["input_ids"]]
        return {"max_length": int(self.cfg.max_length), "text_tokens": int(self.cfg.max_length),
                "truncated_share": float(np.mean([n > self.cfg.max_length for n in lengths])) if lengths else None}
