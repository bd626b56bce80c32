"""The same tuning budget for every trained approach: a learning rate chosen on validation.

`LearningRateSearch` wraps any fine-tuned approach (the embedding head, instruction tuning, the encoder): `fit`
trains one model per value of `cfg.learning_rate_grid`, scores each on the validation split (F1 micro at the
approach's own decision rule: argmax, its tuned threshold, invalid answers wrong) and keeps the best (ties: the
earlier value); the others are freed. Everything else is the kept model's, so `fit_and_evaluate`, `keep_model` and
the record see an ordinary classifier of the chosen learning rate. The test split is never read.

In a study, the choice is made once per configuration: the first of its seeds to run searches the grid and writes
the choice to `runs/<study>/_tuning/<key>.json` (under a lock, like the instruction adapters), and the other seeds
train once at the chosen value. `key` hashes everything the choice depends on except the seed and the learning
rate: the other parameters, the model, the training and validation data (ids, texts, labels) and anything the
caller adds (`key_extra`: a distillation teacher's probabilities). The searching seed's validation score is the best
of the grid, so it is flattered (as any choice on validation flatters the score it was chosen by); the other seeds'
are not. While searching, the best model so far stays loaded beside the next one (peak memory about two models). The record's `tuning` says which
values were tried, their validation scores, the choice, and whether this run made it or reused it.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ..locking import build_lock
from .decisions import predict_labels

# what the choice does not depend on: the seed (the other seeds reuse it), the values searched over, where to write
NOT_IN_KEY = ("seed", "learning_rate", "run_dir", "save_model", "eval_batch_size")


def validation_f1_micro(clf, task, proba, invalid=None) -> float:
    """F1 micro on the validation split at the classifier's own decision rule (invalid answers count wrong)."""
    from sklearn.metrics import f1_score

    y = task.validation.y
    pred = predict_labels(np.asarray(proba), task.multi_label, clf.threshold)
    if task.multi_label:
        if invalid is not None:
            pred = pred.copy()
            pred[np.asarray(invalid, dtype=bool)] = 0
        return float(f1_score(y, pred, average="micro", zero_division=0))
    correct = pred == y
    if invalid is not None:
        correct &= ~np.asarray(invalid, dtype=bool)
    return float(correct.mean())  # single-label F1 micro is accuracy


def tuning_cache_dir(run_dir: str) -> str | None:
    """`<run_dir>/../_tuning`: shared by the runs of one study; None when the run records nothing to disk."""
    return str(Path(run_dir).resolve().parent / "_tuning") if run_dir else None


def tuned(make, cfg, model_path: str | None = None, key_extra=None):
    """`make(cfg)` when `cfg.learning_rate_grid` is None, else a LearningRateSearch over it (the notebooks' call).
    `key_extra`: anything else the choice depends on (the distillation teacher's probabilities)."""
    if getattr(cfg, "learning_rate_grid", None) is None:
        return make(cfg)
    return LearningRateSearch(make, cfg, model_path=model_path, cache_dir=tuning_cache_dir(cfg.run_dir),
                              key_extra=key_extra)


class LearningRateSearch:
    """fit(task) -> self: the best of one model per learning rate, chosen on validation; see the module docstring.
    After `fit`, every attribute not defined here is the kept model's (`predict_proba`, `threshold`, `save`, `cfg`
    with the chosen learning rate, ...); `base_cfg` is the configuration searched from."""

    def __init__(self, make, cfg, model_path: str | None = None, cache_dir: str | None = None, key_extra=None):
        self.make, self.base_cfg, self.model_path, self.cache_dir = make, cfg, model_path, cache_dir
        self.key_extra = key_extra
        self.grid = [float(v) for v in cfg.learning_rate_grid]
        self.epochs = cfg.epochs  # what fit_and_evaluate is told before fit, as for any approach
        self.best = None
        self.tuning: dict = {}
        self.phase_seconds: dict[str, float] = {}
        self.validation_proba = None

    def __getattr__(self, name):
        best = self.__dict__.get("best")
        if best is None:
            raise AttributeError(f"{type(self).__name__} has no {name!r} before fit (the kept model's attribute)")
        return getattr(best, name)

    def key(self, task) -> str:
        params = {k: v for k, v in self.base_cfg.to_dict().items() if k not in NOT_IN_KEY}
        data = [task.labels, task.multi_label, task.train.ids, task.train.texts, np.asarray(task.train.y).tolist(),
                task.validation.ids, task.validation.texts, np.asarray(task.validation.y).tolist()]
        if self.key_extra is not None:  # e.g. a teacher's probabilities: the choice depends on them too
            extra = np.ascontiguousarray(np.asarray(self.key_extra))
            data.append(hashlib.sha256(extra.tobytes() + str(extra.shape).encode()).hexdigest())
        model = None
        if self.model_path:
            from ..models.loading import model_checksum

            model = model_checksum(self.model_path)
        blob = json.dumps({"params": params, "data": data, "model": model}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def fit(self, task) -> "LearningRateSearch":
        start = time.perf_counter()
        path = Path(self.cache_dir) / f"{self.key(task)}.json" if self.cache_dir else None
        choice = None
        if path is None:
            self._search(task, start)
        else:
            # seeds run side by side wait for the first one's search, not for each other's training
            with build_lock(path):
                if path.exists():
                    choice = json.loads(path.read_text())
                else:
                    self._search(task, start)
                    tmp = path.with_suffix(".tmp")
                    tmp.write_text(json.dumps({**self.tuning, "made_by_seed": self.base_cfg.seed}, indent=1))
                    tmp.replace(path)
        if choice is not None:
            self._train_chosen(task, choice, start)
        return self

    def _candidate(self, task, lr: float):
        """(fitted classifier, validation F1 micro, its seconds: {"fit", "load", "validation"})."""
        clf = self.make(dataclasses.replace(self.base_cfg, learning_rate=lr, learning_rate_grid=None))
        t = time.perf_counter()
        clf.fit(task)
        seconds = {"fit": time.perf_counter() - t}
        in_fit = dict(getattr(clf, "phase_seconds", None) or {})
        seconds["load"], seconds["validation"] = in_fit.get("load", 0.0), in_fit.get("validation", 0.0)
        proba = getattr(clf, "validation_proba", None)
        if proba is None:  # a fit that predicted no validation: predict it here (the run records it for calibration)
            t = time.perf_counter()
            proba = clf.predict_proba(task.validation.texts)
            elapsed = time.perf_counter() - t
            seconds["fit"] += elapsed
            seconds["validation"] += elapsed
            clf.validation_proba = np.asarray(proba)
        mask = getattr(clf, "invalid_mask", None)
        invalid = np.array(mask, dtype=bool) if mask is not None and len(mask) == len(task.validation) else None
        return clf, validation_f1_micro(clf, task, proba, invalid), seconds

    def _search(self, task, start):
        scores, kept = [], None
        for lr in self.grid:
            clf, score, seconds = self._candidate(task, lr)
            scores.append(score)
            if kept is None or score > kept[1]:
                kept = (clf, score, seconds)
            del clf
            gc.collect()  # a model that lost is freed; the best so far stays loaded (peak memory: about two)
        self._keep(kept[0], kept[2], start)
        self.tuning = {"grid": self.grid, "validation_f1_micro": scores, "chosen": kept[0].cfg.learning_rate,
                       "metric": "validation F1 micro", "searched_here": True, "trainings": len(self.grid)}

    def _train_chosen(self, task, choice: dict, start):
        clf, score, seconds = self._candidate(task, float(choice["chosen"]))
        self._keep(clf, seconds, start)
        self.tuning = {**{k: choice[k] for k in ("grid", "validation_f1_micro", "chosen", "metric")},
                       "searched_here": False, "made_by_seed": choice.get("made_by_seed"),
                       "validation_f1_micro_this_seed": score, "trainings": 1}

    def _keep(self, clf, seconds: dict, start):
        """Timings as study.experiment reads them: the kept model's own load and validation; everything else in
        this fit (the other values' loading, training and validation) is `tuning`, kept apart from training."""
        self.best = clf
        self.validation_proba = clf.validation_proba
        total = time.perf_counter() - start
        self.phase_seconds = {"load": seconds["load"], "validation": seconds["validation"],
                              "tuning": max(total - seconds["fit"], 0.0)}

    @property
    def fit_stats(self) -> dict:
        return {**(getattr(self.best, "fit_stats", None) or {}), "learning_rate": self.best.cfg.learning_rate,
                "tuning": self.tuning}
