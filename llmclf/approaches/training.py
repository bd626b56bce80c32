"""Training with transformers' Trainer: one place for the settings every fine-tuning approach shares."""

from __future__ import annotations

import tempfile
import time

import numpy as np
import torch

from ..models.precision import Precision
from .batching import encode, encode_batch, encode_windows, length_batches, pad_windows, pool_windows, token_budget


class TokenizedDataset(torch.utils.data.Dataset):
    """Texts tokenized once, unpadded: the collator pads each batch to its own longest text (dynamic padding).
    With `chunks` (long_text='chunks': {'max_chunks', 'stride'}) an item holds each of its text's windows
    (batching.encode_windows), and `ChunkCollator` pads them."""

    def __init__(self, tokenizer, texts: list[str], max_length: int, labels: np.ndarray | None = None,
                 append_token: int | None = None, chunks: dict | None = None):
        self.labels = labels
        if chunks is None:
            self.encodings = encode(tokenizer, texts, max_length, append_token)
            return
        windows = encode_windows(tokenizer, texts, max_length, append_token, **chunks)
        self.encodings = {"input_ids": [[] for _ in texts], "attention_mask": [[] for _ in texts]}
        for ids, mask, owner in zip(windows["input_ids"], windows["attention_mask"], windows["owner"]):
            self.encodings["input_ids"][owner].append(ids)
            self.encodings["attention_mask"][owner].append(mask)

    def __len__(self):
        return len(self.encodings["input_ids"])

    def __getitem__(self, i):
        item = {"input_ids": self.encodings["input_ids"][i], "attention_mask": self.encodings["attention_mask"][i]}
        if self.labels is not None:
            label = self.labels[i]
            item["labels"] = label.tolist() if isinstance(label, np.ndarray) else int(label)
        return item


class ChunkCollator:
    """Pads a batch of texts' windows (TokenizedDataset with chunks) into one batch of windows, with
    `chunk_owner` (window -> text in the batch) and one label per text."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, items: list[dict]) -> dict:
        windows = {"input_ids": [], "attention_mask": [], "owner": []}
        for j, item in enumerate(items):
            windows["input_ids"] += item["input_ids"]
            windows["attention_mask"] += item["attention_mask"]
            windows["owner"] += [j] * len(item["input_ids"])
        batch = pad_windows(self.tokenizer, windows)
        if "labels" in items[0]:
            labels = [item["labels"] for item in items]
            batch["labels"] = torch.tensor(labels, dtype=torch.float32 if isinstance(labels[0], list) else torch.long)
        return batch


class FineTunedClassifier:
    """fit(task) then predict_proba(texts) -> (n, n_labels) probabilities, as in scikit-learn: what the embedding
    head and the encoder baseline share. A subclass builds `self.net` and `self.tokenizer` in `_build` and says
    how `_logits` reads the net's output; `append_token` (e.g. EOS) ends every text, in training and prediction.

    Training goes through `train_with_trainer`; for multi-label with `threshold: validation` the decision
    threshold is then tuned on the validation split. Prediction runs in `length_batches`. Softmax for
    single-label, sigmoid for multi-label.
    """

    def __init__(self, cfg, model_path: str):
        self.cfg = cfg
        self.model_path = model_path
        self.threshold = 0.5
        self.log_history: list[dict] = []
        self.phase_seconds: dict[str, float] = {}  # load / validation inside fit (approaches.contract)
        self.validation_proba: np.ndarray | None = None
        self.fit_stats: dict = {}  # merged into the run record (approaches.contract): the requested/resolved dtype
        # resolved once per run: loading, Trainer's autocast and inference read it (models.precision)
        self.precision = Precision.resolve(getattr(cfg, "dtype", "auto"), warn=False)

    def _build(self, n_labels: int, multi_label: bool) -> None:
        raise NotImplementedError

    def _logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def append_token(self) -> int | None:
        return None

    @property
    def chunks(self) -> dict | None:
        """{'max_chunks', 'stride'} when texts are read as several windows (long_text='chunks'), else None."""
        if getattr(self.cfg, "long_text", "truncate") != "chunks":
            return None
        return {"max_chunks": self.cfg.max_chunks, "stride": self.cfg.chunk_stride}

    def _text_logits(self, input_ids, attention_mask, chunk_owner=None):
        """One row of logits a text: the windows' logits pooled by `chunk_pooling` when the batch is of windows.
        The mean of a linear head's logits is the head of the windows' mean embedding."""
        logits = self._logits(input_ids, attention_mask)
        if chunk_owner is None:
            return logits
        return pool_windows(logits.float(), chunk_owner, self.cfg.chunk_pooling)

    def fit(self, task):
        self.labels, self.multi_label = task.labels, task.multi_label
        start = time.perf_counter()
        self.fit_stats.update(self.precision.record())
        self.precision.warn_if_slow()  # in the notebook, when the compute dtype is emulated here
        self._build(task.n_labels, task.multi_label)
        self.phase_seconds = {"load": time.perf_counter() - start}
        y = task.train.y.astype(np.float32) if task.multi_label else task.train.y
        data = TokenizedDataset(self.tokenizer, task.train.texts, self.cfg.max_length, labels=y,
                                append_token=self.append_token, chunks=self.chunks)
        self.class_weights = None
        if getattr(self.cfg, "class_weight", "none") == "balanced":
            from .decisions import balanced_weights

            self.class_weights = balanced_weights(task.train.y, task.n_labels, task.multi_label)
        net, collator = self.net, None
        if self.class_weights is not None or self.chunks is not None:  # our loss, on one row of logits a text
            net = TextLoss(self.net, self._text_logits, task.multi_label, self.class_weights)
        if self.chunks is not None:
            collator = ChunkCollator(self.tokenizer)
        self.log_history = train_with_trainer(net, data, self.tokenizer, self.cfg, collator=collator,
                                              precision=self.precision)
        self.validation_proba = None
        if task.multi_label:
            from .decisions import threshold_on_validation

            threshold_on_validation(self, task)
        return self

    def input_budget(self, texts: list[str]) -> dict:
        """max_length, the tokens left for the text after special tokens, and the share of `texts` cut."""
        chunks = self.chunks or {}
        return token_budget(self.tokenizer, texts, self.cfg.max_length, self.append_token is not None,
                            long_text=getattr(self.cfg, "long_text", "truncate"), **chunks)

    @torch.inference_mode()
    def predict_proba(self, texts: list[str], phase: str = "predict") -> np.ndarray:
        from ..progress import track

        self.net.eval()
        device = next(self.net.parameters()).device
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        batches = list(length_batches([len(t) for t in texts], self.cfg.eval_batch_size))
        for idx in track(batches, phase, run_dir=self.cfg.run_dir or None):
            batch = [texts[i] for i in idx]
            if self.chunks is None:
                enc = encode_batch(self.tokenizer, batch, self.cfg.max_length, self.append_token)
            else:
                enc = pad_windows(self.tokenizer, encode_windows(self.tokenizer, batch, self.cfg.max_length,
                                                                 self.append_token, **self.chunks))
            owner = enc["chunk_owner"].to(device) if "chunk_owner" in enc else None
            with self.precision.autocast():
                logits = self._text_logits(enc["input_ids"].to(device), enc["attention_mask"].to(device),
                                           owner).float()
            probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
            out[idx] = probs.cpu().numpy()
        return out


class TextLoss(torch.nn.Module):
    """The net with our loss on one row of logits a text (`logits(input_ids, attention_mask, chunk_owner)`, as
    prediction reads them): for texts read as windows (long_text='chunks'), or with class weights
    (class_weight='balanced': cross-entropy with per-class weights, or binary cross-entropy with per-label
    pos_weight)."""

    # Trainer divides the loss by grad_accum itself only for a model that takes no loss kwargs (forward's `**_`
    # would say it does): say so, as for the plain nets
    accepts_loss_kwargs = False

    def __init__(self, net, logits, multi_label: bool, weights: np.ndarray | None = None):
        super().__init__()
        self.net, self.logits, self.multi_label = net, logits, multi_label
        self.register_buffer("weights", None if weights is None else torch.as_tensor(weights, dtype=torch.float32))

    def forward(self, input_ids, attention_mask, labels=None, chunk_owner=None, **_):
        logits = self.logits(input_ids, attention_mask, chunk_owner).float()
        out = {"logits": logits}
        if labels is not None:
            w = None if self.weights is None else self.weights.to(logits.device)
            if self.multi_label:
                out["loss"] = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=w)
            else:
                out["loss"] = torch.nn.functional.cross_entropy(logits, labels.long(), weight=w)
        return out


def training_arguments(cfg, output_dir: str, precision: Precision | None = None, **overrides):
    """Trainer's settings from a run's config; mixed precision from the run's `Precision` (resolved from
    `cfg.dtype` when none is given)."""
    from transformers import TrainingArguments

    precision = precision or Precision.resolve(getattr(cfg, "dtype", "auto"), warn=False)
    args = dict(
        output_dir=output_dir, seed=cfg.seed, data_seed=cfg.seed, learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size, gradient_accumulation_steps=cfg.grad_accum,
        warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay, lr_scheduler_type="linear",
        logging_strategy="steps", logging_steps=1, save_strategy="no", eval_strategy="no", report_to="none",
        remove_unused_columns=False, dataloader_num_workers=0, use_cpu=not torch.cuda.is_available(),
        # Mixed precision: autocast runs the forward in the compute dtype over float32 trained weights
        # (models.precision); fp16 (with its loss scaling) only on a GPU.
        **precision.trainer_flags(),
    )
    args.update(overrides)
    return TrainingArguments(**args)


def progress_callback(run_dir: str | None = None):
    """A TrainerCallback that reports optimizer steps to progress.json (the Trainer draws its own tqdm bar)."""
    from transformers import TrainerCallback

    from ..progress import Progress

    class ProgressCallback(TrainerCallback):
        progress = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.progress = Progress("train", total=state.max_steps, run_dir=run_dir, bar=False, unit="step")

        def on_step_end(self, args, state, control, **kwargs):
            if self.progress is not None:
                self.progress.update(state.global_step - self.progress.step)

        def on_train_end(self, args, state, control, **kwargs):
            if self.progress is not None:
                self.progress.close()

    return ProgressCallback()


def keep_placement(model) -> None:
    """Trainer moves the model it is given with `.to(device)` unless the model says it is placed already
    (`hf_device_map`, from `device_map` in `load_pretrained`) or bitsandbytes-quantized; a wrapper such as the
    embedding head's PooledClassifier says neither, so it repeats what the model it wraps says: a 4-bit base must
    never be moved with `.to()`."""
    for module in model.modules():
        for name in ("hf_device_map", "quantization_method"):
            value = getattr(module, name, None)
            if value is not None and getattr(model, name, None) is None:
                setattr(model, name, value)


def train_with_trainer(model, dataset, tokenizer, cfg, collator=None, precision: Precision | None = None) -> list[dict]:
    """Train `model` (its forward returns a dict with 'loss') and return Trainer's log history (the loss curve).
    Every trained parameter is float32 (the master dtype); the forward runs under the run's autocast."""
    from transformers import DataCollatorWithPadding, Trainer

    precision = precision or Precision.resolve(getattr(cfg, "dtype", "auto"), warn=False)
    collator = collator or DataCollatorWithPadding(tokenizer)
    keep_placement(model)
    precision.cast_trainable(model)
    with tempfile.TemporaryDirectory(prefix="llmclf-trainer-") as out:
        # TrainingArguments resets accelerate's process-wide mixed-precision state, so they are made right before
        # their Trainer: a bf16 run and a float32 run can follow each other in one process
        trainer = Trainer(model=model, args=training_arguments(cfg, out, precision), train_dataset=dataset,
                          data_collator=collator, callbacks=[progress_callback(getattr(cfg, "run_dir", "") or None)])
        trainer.train()
    return [dict(h) for h in trainer.state.log_history]
