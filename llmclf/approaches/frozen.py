"""The frozen-embedding baseline: a linear model on a frozen model's pooled hidden states.

The paper found frozen LLM embeddings the strongest approach on its multi-label set. Embedding is the costly part
and the same for every seed and every C, so each split's embeddings are computed once, in batched no-grad passes,
and cached on disk under `cache_dir()/embeddings/<key>.npz`; the key covers everything that changes them (the
model's checksum, or its hub id, the pooling, max_length, dtype and the texts). A run records which splits came from
the cache (`embedding_cache`), since a hit makes fit and predict much faster than the embedding they stand for.

Pooling: a causal LM is read at its last real token or averaged over real tokens (llmclf.embedding_head.pool, with
position ids that follow the mask, so padding changes nothing), optionally after an appended EOS token as in the
embedding head (`append_eos`); an encoder is averaged over real tokens, as sentence-transformers does. Features are
standardized before the linear model (llmclf.baselines).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from ..config import BaselineConfig, ConfigError
from ..locking import build_lock
from .batching import (encode_batch, encode_windows, length_batches, pad_windows, pool, pool_windows,
                       position_ids_from_mask, token_budget)
from .linear import count_linear_parameters, fit_linear_on_validation, predict_proba_linear

CACHE_FORMAT = 1  # bump when the way embeddings are computed changes: old files are then never read


def texts_checksum(texts: list[str]) -> str:
    return hashlib.sha256(json.dumps(list(texts)).encode()).hexdigest()


def model_identity(model_path: str) -> str:
    """A local folder's content checksum, or the hub id itself (its revision is not pinned here)."""
    from ..artifacts import folder_checksum

    return f"sha256:{folder_checksum(model_path)}" if Path(model_path).is_dir() else f"hub:{model_path}"


def embedding_key(model_path: str, pooling: str, max_length: int, dtype: str, texts: list[str],
                  quantization: str = "none", append_eos: bool = False, chunks: dict | None = None) -> str:
    """`chunks` (long_text='chunks': max_chunks, stride, chunk pooling) enters the key only when set, so that
    the first window's embeddings keep the key they always had."""
    spec = {"format": CACHE_FORMAT, "model": model_identity(model_path), "pooling": pooling,
            "max_length": max_length, "dtype": dtype, "quantization": quantization, "append_eos": append_eos,
            "texts": texts_checksum(texts)}
    if chunks is not None:
        spec["chunks"] = chunks
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def embedding_cache_path(key: str) -> Path:
    from ..artifacts import cache_dir

    return cache_dir() / "embeddings" / f"{key}.npz"


def load_embeddings(key: str, n_texts: int) -> tuple[np.ndarray, dict] | None:
    """The cached (embeddings, metadata), or None when absent or unreadable (then it is computed again)."""
    path = embedding_cache_path(key)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            embeddings, meta = f["embeddings"], json.loads(str(f["meta"]))
            stored = str(f["sha256"]) if "sha256" in f.files else None
    except (OSError, ValueError, KeyError):
        return None
    if embeddings.ndim != 2 or embeddings.shape[0] != n_texts:
        return None
    if stored is not None and stored != _array_sha256(embeddings):
        print(f"{path}: cached embeddings do not match their checksum (modified since they were written); "
              "computing them again", flush=True)
        return None
    return embeddings, meta


def _array_sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def save_embeddings(key: str, embeddings: np.ndarray, meta: dict) -> Path:
    """Written to a temporary file and renamed, so a reader (another run) never sees half a file."""
    path = embedding_cache_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, embeddings=embeddings, meta=np.array(json.dumps(meta)),
                     sha256=np.array(_array_sha256(embeddings)))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def is_causal_lm(config) -> bool:
    """Whether a model reads left to right (pool its last token) rather than both ways (an encoder).

    Model types with a masked-LM head (bert, roberta, deberta, ...) are encoders unless the checkpoint itself says
    it is a causal LM."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return True
    return config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


@torch.inference_mode()
def embed_texts(model, tokenizer, texts: list[str], *, pooling: str, max_length: int, batch_size: int,
                causal: bool, append_token: int | None = None, phase: str = "embed", chunks: dict | None = None,
                chunk_pooling: str = "mean") -> np.ndarray:
    """(n, hidden) float32 pooled last hidden states, in batched no-grad passes over texts sorted by length;
    `append_token` ends every text (after truncation to max_length - 1). With `chunks` ({'max_chunks', 'stride'}:
    long_text='chunks') each text is read as windows, pooled each, and the windows' vectors are pooled into one
    by `chunk_pooling` (mean, or the per-dimension max)."""
    from ..progress import track

    device = next(model.parameters()).device
    out = None
    for idx in track(list(length_batches([len(t) for t in texts], batch_size)), phase):
        batch = [texts[i] for i in idx]
        if chunks is None:
            enc = encode_batch(tokenizer, batch, max_length, append_token)
        else:
            enc = pad_windows(tokenizer, encode_windows(tokenizer, batch, max_length, append_token, **chunks))
        enc = {k: v.to(device) for k, v in enc.items()}
        kwargs = {"position_ids": position_ids_from_mask(enc["attention_mask"]), "use_cache": False} if causal else {}
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **kwargs).last_hidden_state
        pooled = pool(hidden.float(), enc["attention_mask"], pooling)  # a bfloat16 mean loses digits
        if chunks is not None:
            pooled = pool_windows(pooled, enc["chunk_owner"], chunk_pooling)
        pooled = pooled.cpu().numpy()
        if out is None:
            out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
        out[idx] = pooled
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


class FrozenEmbeddingClassifier:
    """fit(task) then predict_proba(texts) -> (n, n_labels) probabilities, as in scikit-learn.

    `embedding_cache` says, per split, whether its embeddings were read from the cache ('hit') or computed
    ('miss'); `embedding_seconds` how long getting them took. The model is loaded only when something is computed.
    """

    epochs = 1.0  # for throughput: fit embeds each training text once, whatever the C grid

    def __init__(self, cfg: BaselineConfig, model_path: str):
        self.cfg = cfg
        self.model_path = model_path
        self.threshold = 0.5
        self.log_history: list[dict] = []
        self.embedding_cache: dict[str, str] = {}
        self.embedding_seconds: dict[str, float] = {}
        self.model = None
        self._model_params: int | None = None
        self._split_names: dict[str, str] = {}
        self.cache_other_texts = True  # texts outside the run's splits are cached too; not by a loaded model
        self.phase_seconds: dict[str, float] = {}  # load / validation (approaches.contract)
        self.validation_proba: np.ndarray | None = None
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model_path, trust_remote_code=cfg.trust_remote_code)
        self.causal = is_causal_lm(config)
        if cfg.pooling == "last" and not self.causal:
            raise ConfigError(f"pooling='last' reads a causal LM's final token; {model_path} is an encoder "
                              f"({config.model_type}), whose last token is [SEP]: use pooling='mean'")
        self.append_eos = cfg.append_eos and self.causal
        from ..models.precision import Precision

        self.precision = Precision.resolve(cfg.dtype)  # once per run; warns (in the notebook) if emulated here
        self.fit_stats = self.precision.record()  # the record's requested, compute and master dtype
        self.dtype = self.precision.compute_dtype  # the cache key: 'auto' is float32 here, bf16 elsewhere

    @property
    def chunks(self) -> dict | None:
        """{'max_chunks', 'stride'} when texts are read as several windows (long_text='chunks'), else None."""
        if self.cfg.long_text != "chunks":
            return None
        return {"max_chunks": self.cfg.max_chunks, "stride": self.cfg.chunk_stride}

    def _embed(self, texts: list[str], phase: str = "embed") -> np.ndarray:
        cfg = self.cfg
        return embed_texts(self.model, self.tokenizer, texts, pooling=cfg.pooling, max_length=cfg.max_length,
                           batch_size=cfg.eval_batch_size, causal=self.causal, append_token=self.append_token,
                           phase=phase, chunks=self.chunks, chunk_pooling=cfg.chunk_pooling)

    def _load(self):
        from transformers import AutoModel

        from ..models.loading import eos_id, load_pretrained, load_tokenizer

        cfg = self.cfg
        start = time.perf_counter()
        self.tokenizer = load_tokenizer(self.model_path, cfg.trust_remote_code)
        self.append_token = eos_id(self.tokenizer, self.model_path) if self.append_eos else None
        self.model = load_pretrained(AutoModel, self.model_path, quantization=cfg.quantization,
                                     precision=self.precision, trust_remote_code=cfg.trust_remote_code).eval()
        self._model_params = int(sum(p.numel() for p in self.model.parameters()))
        self.phase_seconds["load"] = self.phase_seconds.get("load", 0.0) + time.perf_counter() - start

    def embed(self, texts: list[str], name: str, store: bool = True) -> np.ndarray:
        """Embeddings of `texts`, from the cache or computed (then cached, if `store`); `name` labels the cache
        record."""
        cfg = self.cfg
        start = time.perf_counter()
        chunks = None if self.chunks is None else {**self.chunks, "pooling": cfg.chunk_pooling}
        key = embedding_key(self.model_path, cfg.pooling, cfg.max_length, self.dtype, texts, cfg.quantization,
                            self.append_eos, chunks)
        # runs side by side (issue 13): computed once, then loaded; nothing is written (not even a lock) unless stored
        with build_lock(embedding_cache_path(key)) if store else nullcontext():
            cached = load_embeddings(key, len(texts))
            if cached is not None:
                embeddings, meta = cached
                self._model_params = self._model_params or meta.get("model_params")
                self.embedding_cache[name] = "hit"
            else:
                if self.model is None:
                    self._load()
                embeddings = self._embed(texts, phase=f"embed {name}")
                if store:
                    save_embeddings(key, embeddings, {"model": model_identity(self.model_path), "pooling": cfg.pooling,
                                                      "max_length": cfg.max_length, "dtype": self.dtype,
                                                      "quantization": cfg.quantization,
                                                      "append_eos": self.append_eos, "chunks": chunks,
                                                      "n_texts": len(texts),
                                                      "model_params": self._model_params})
                self.embedding_cache[name] = "miss"
        self.embedding_seconds[name] = time.perf_counter() - start
        return embeddings

    def fit(self, task) -> "FrozenEmbeddingClassifier":
        from sklearn.preprocessing import StandardScaler

        self.labels, self.multi_label = task.labels, task.multi_label
        # predict_proba is given texts only; knowing the splits lets it record "test" rather than "predict"
        self._split_names = {texts_checksum(s.texts): name for name, s in task.splits.items()}
        X_train = self.embed(task.train.texts, "train")
        loaded = self.phase_seconds.get("load", 0.0)
        X_val = self.embed(task.validation.texts, "validation")
        # the validation pass: embedding the split (less a model load that happened during it)
        self.phase_seconds["validation"] = (self.embedding_seconds["validation"]
                                            - (self.phase_seconds.get("load", 0.0) - loaded))
        self.scaler = StandardScaler().fit(X_train)
        self.selection = fit_linear_on_validation(
            self.scaler.transform(X_train), task.train.y, self.scaler.transform(X_val), task.validation.y,
            n_labels=task.n_labels, multi_label=task.multi_label, kind="logreg", c_values=self.cfg.c_values,
            threshold_rule=self.cfg.threshold, class_weight=self.cfg.class_weight, seed=self.cfg.seed)
        self.linear = self.selection.model
        if task.multi_label:
            self.threshold = self.selection.threshold
        # The scaler is an affine map that folds into the linear weights: it adds no parameters of its own.
        self.trainable_params = count_linear_parameters(self.linear)
        self.total_params = self.trainable_params + (self._model_params or 0)
        self.validation_proba = predict_proba_linear(self.linear, self.scaler.transform(X_val), len(self.labels),
                                                     self.multi_label)
        return self

    def warm_up(self, texts: list[str]) -> None:
        """One untimed batch through the model, not cached. Nothing to warm when the model was never loaded
        (every split came from the embedding cache)."""
        if self.model is not None:
            self._embed(list(texts))

    def input_budget(self, texts: list[str]) -> dict:
        """max_length, the tokens left for the text, and the share of `texts` cut (the tokenizer alone)."""
        from ..models.loading import load_tokenizer

        tokenizer = getattr(self, "tokenizer", None) or load_tokenizer(self.model_path, self.cfg.trust_remote_code)
        return token_budget(tokenizer, texts, self.cfg.max_length, self.append_eos, long_text=self.cfg.long_text,
                            **(self.chunks or {}))

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        name = self._split_names.get(texts_checksum(texts), "predict")
        X = self.scaler.transform(self.embed(texts, name, store=name != "predict" or self.cache_other_texts))
        return predict_proba_linear(self.linear, X, len(self.labels), self.multi_label)

    def save(self, folder: str) -> None:
        """The scaler and the linear model as safetensors + JSON (no pickle), with `llmclf_model.json` (labels,
        threshold(s), pooling, max_length, append_eos and the frozen model's checksum: it embeds every text)."""
        from .persistence import save_sklearn, write_metadata

        save_sklearn({"scaler": self.scaler, "linear": self.linear}, folder, "frozen")
        write_metadata(folder, self, "frozen", base_model=self.cfg.model, base_path=self.model_path,
                       needs_base=True, trainable_params=self.trainable_params, total_params=self.total_params,
                       selection=self.selection.record(), append_eos=bool(self.append_eos), causal=bool(self.causal))

    @classmethod
    def load(cls, folder: str, model_path: str | None = None) -> "FrozenEmbeddingClassifier":
        from types import SimpleNamespace

        from .persistence import config_from, load_sklearn, read_metadata, resolve_base, restore_common

        meta = read_metadata(folder)
        cfg = config_from(meta, BaselineConfig, baseline="frozen")
        clf = restore_common(cls(cfg, resolve_base(meta, model_path)), meta)
        parts = load_sklearn(folder, "frozen")
        clf.scaler, clf.linear = parts["scaler"], parts["linear"]
        clf.cache_other_texts = False  # `llmclf predict`: a user's texts are read from the cache, never written
        record = meta.get("selection") or {}
        clf.selection = SimpleNamespace(record=lambda: record)  # what prediction_stats reports
        clf.trainable_params, clf.total_params = meta.get("trainable_params"), meta.get("total_params")
        return clf

    @property
    def prediction_stats(self) -> dict:
        return {"linear_model": {"kind": "logreg", "n_features": int(self.scaler.n_features_in_),
                                 **self.selection.record()},
                "embedding_cache": dict(self.embedding_cache),
                "feature_seconds": dict(self.embedding_seconds)}
