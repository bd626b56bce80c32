"""The instruction approach: the causal LM, LoRA-tuned to answer a prompt with the label(s), or zero-shot.

Training: prompt -> answer pairs built by `llmclf.prompts.PromptBuilder` (the answer is the label name, or the
label names in the task's order joined by `answer_separator`, then EOS); the loss covers the answer tokens only
(prompt and padding carry -100), with transformers' Trainer and peft's LoRA as in the embedding head.
`zero_shot=True` skips training: the instruct model as it is, no adapters. `max_length` bounds prompt + answer.

Prediction gives a `predict_proba`-shaped (n, n_labels) array, so the metrics are those of every approach:

- `generate`: greedy decoding, then parsing (`llmclf.prompts.parse_answer`): exact, case-insensitive, then the
  longest label contained in the output (an output naming several unrelated labels is ambiguous). Rows are 0/1.
  An output that names no label is *invalid*: its row is all zeros, it is counted (`invalid_output_rate`) and
  marked in `invalid_mask`, which `llmclf.metrics.classification_metrics` scores as wrong: for single-label a
  prediction of no class, which lowers accuracy and micro F1 (which stay equal) and the recall of its true class,
  and adds no false positive to any class (the argmax of a zero row would otherwise quietly predict label 0).
- `constrained`: greedy decoding restricted by a prefix tree over the labels' tokens (`AnswerConstraint`, a
  `prefix_allowed_tokens_fn` of `generate`): every output is a valid answer; multi-label answers are labels in
  increasing order without repeats, separated, then EOS. Rows are 0/1.
- `score`: the log-likelihood of every candidate answer (EOS included) given the prompt. The prompt runs once; its
  KV cache is repeated over the candidates, which run as one batch of short continuations
  (`score_continuations`). Single-label: a softmax over the labels' answers, so rows sum to 1.
  Multi-label: the per-label probability that the answer, decoded from the model's distribution restricted to
  valid answers, contains the label. Valid answers visit labels in increasing order, so that probability is a
  forward recursion over labels: alpha[j] = q0[j] + sum_{i<j} alpha[i] q[i -> j], where q0 is the softmax over
  first labels and q[i -> .] the softmax over "next label k > i, or EOS" given the prompt and the piece of label i.
  Conditioning a step on the previous label only (not on all earlier ones) is the one approximation; it keeps the
  cost at L(L+1)/2 short continuations per text. (A softmax over one-label answers instead would be biased by the
  answer order: a model trained on "a; b" gives "b" first little probability.) The decision threshold is tuned on
  validation, as for the embedding head. Cost grows with L^2: for hundreds of labels use generate/constrained.

Compute: every prompt starts with the same tokens (system prompt, task, label list: about 50 of SmolLM2's 124).
They run once a batch, as one row whose KV cache the batch shares, in training (`AnswerLoss`, which also runs the
LM head on answer positions only) and in prediction (`prompt_inputs`); the tests check that results are unchanged.

`prediction_stats` (merged into the run record): predict_mode, invalid_output_rate (0.0 by construction for
constrained and score), invalid_outputs, generated_tokens_per_example (0 for score; EOS counted), zero_shot and
adapter_reused.

Adapter cache: a study runs the same training once per predict_mode. Given `adapter_cache` (the notebook passes
`<run_dir>/../_adapters`), `fit` saves the trained adapter under a hash of everything training depends on (the
parameters but predict_mode, max_new_tokens, threshold, eval_batch_size and max_eval; the training split; the
model checksum), and a later run with the same hash loads it instead of training. It then reports the original
training time in `fit_stats["reused_train_seconds"]`, which `fit_and_evaluate` records as the run's training cost,
the load time beside it, and `adapter_reused: true`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError, InstructionConfig
from ..locking import build_lock
from ..models.loading import (count_parameters, load_pretrained, load_tokenizer, model_checksum, prepare_for_adapter,
                              wrap_lora)
from ..models.precision import Precision
from .batching import length_batches
from .prompts import PromptBuilder, parse_answer
from .training import train_with_trainer

# parameters that change predictions (or the evaluation data) but not the trained adapter
PREDICTION_ONLY_PARAMS = ("predict_mode", "max_new_tokens", "threshold", "eval_batch_size", "max_eval", "max_val",
                          "max_test", "run_dir", "save_model")


class AnswerCollator:
    """Right-pads input_ids (with the pad id), attention_mask (0) and labels (-100) to the batch's longest."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict:
        width = max(len(f["input_ids"]) for f in features)
        out = {}
        for key, fill in (("input_ids", self.pad_id), ("attention_mask", 0), ("labels", -100)):
            out[key] = torch.tensor([f[key] + [fill] * (width - len(f[key])) for f in features], dtype=torch.long)
        return out


class AnswerLoss(torch.nn.Module):
    """Training forward: the cross-entropy on the answer tokens, computed where it costs least.

    Same loss as the causal LM's own (the mean over supervised tokens), with two savings that matter on a CPU:
    the LM head and its float32 logits cover the answer positions only, not every position; and the prompt's
    first `prefix_len` tokens, identical in every example (system prompt, task, label list), run once a batch as
    one row whose KV cache every row then attends to (gradients from all rows meet in it). With dropout the
    prefix shares one dropout mask across the batch; otherwise the result is that of the plain forward."""

    def __init__(self, model, prefix_len: int = 0):
        super().__init__()
        self.model = model  # a PeftModel or a plain *ForCausalLM
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.backbone = getattr(inner, inner.base_model_prefix)
        self.head = inner.get_output_embeddings()
        self.softcap = getattr(inner.config, "final_logit_softcapping", None)
        self.config = inner.config
        self.prefix_len = prefix_len

    def forward(self, input_ids, attention_mask, labels):
        P = self.prefix_len
        cache = None
        if P:
            cache = expand_cache(self.backbone(input_ids=input_ids[:1, :P], use_cache=True).past_key_values,
                                 len(input_ids), self.config)
        positions = torch.arange(P, input_ids.shape[1], device=input_ids.device)[None]
        hidden = self.backbone(input_ids=input_ids[:, P:], attention_mask=attention_mask, position_ids=positions,
                               past_key_values=cache, use_cache=P > 0).last_hidden_state
        target = labels[:, P + 1:]
        keep = target != -100  # the position before each answer token predicts it
        logits = self.head(hidden[:, :-1][keep]).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return {"loss": torch.nn.functional.cross_entropy(logits, target[keep])}


def expand_cache(cache, n: int, config, interleave: bool = False):
    """A new DynamicCache holding `cache`'s keys and values repeated n times along the batch: each row n times in
    a row (interleave), or the whole batch n times (a batch of one: expanded without a copy until it is used)."""
    from transformers import DynamicCache

    def rep(t):
        if interleave:
            return t.repeat_interleave(n, 0)
        return t.expand(n, *t.shape[1:]) if t.shape[0] == 1 else t.repeat(n, *([1] * (t.dim() - 1)))

    return DynamicCache([(rep(layer[0]), rep(layer[1])) for layer in cache], config=config)


def left_pad(seqs: list[list[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.tensor([[pad_id] * (width - len(s)) + list(s) for s in seqs], dtype=torch.long, device=device)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], dtype=torch.long, device=device)
    return ids, mask


def _device(model) -> torch.device:
    return next(model.parameters()).device


def prompt_inputs(model, prompts: list[list[int]], pad_id: int, prefix_len: int = 0):
    """Inputs for a batch of prompts whose first `prefix_len` tokens are the same: [prefix][padding][rest].

    The shared prefix runs once, as one row; its KV cache, repeated over the batch, is returned with the full
    input ids and attention mask, as `generate` and a forward pass with `past_key_values` take them. Padding sits
    between prefix and rest, so the prefix keeps positions 0..P-1 in every row; positions follow the mask."""
    dev = _device(model)
    P = prefix_len
    if P and any(p[:P] != prompts[0][:P] for p in prompts):
        raise ValueError("the prompts do not share their first prefix_len tokens")
    ids, mask = left_pad([p[P:] for p in prompts], pad_id, dev)
    cache = None
    if P:
        prefix = torch.tensor([prompts[0][:P]], dtype=torch.long, device=dev)
        cache = expand_cache(model(input_ids=prefix, use_cache=True, logits_to_keep=1).past_key_values,
                             len(prompts), model.config)
        ids = torch.cat([prefix.expand(len(prompts), P), ids], dim=1)
        mask = torch.cat([torch.ones(len(prompts), P, dtype=mask.dtype, device=dev), mask], dim=1)
    return ids, mask, cache


@torch.inference_mode()
def score_continuations(model, prompts: list[list[int]], continuations: list[list[int]], pad_id: int,
                        prefix_len: int = 0, max_rows: int = 128) -> np.ndarray:
    """Log-probabilities (B, C, T) of every token of every continuation after every prompt; 0 past its end.

    The prompts' shared prefix runs once (`prompt_inputs`), then the rest of each prompt, once; the continuations
    run on the prompts' KV cache repeated C times along the batch, `max_rows` (prompt, continuation) rows at a
    time. The last prompt position predicts each continuation's first token, so a continuation's own last token
    needs no forward pass.
    """
    dev = _device(model)
    ids, mask, cache = prompt_inputs(model, prompts, pad_id, prefix_len)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, prefix_len:]
    out = model(input_ids=ids[:, prefix_len:], attention_mask=mask, position_ids=positions, past_key_values=cache,
                use_cache=True, logits_to_keep=1)  # the LM head on the last position only
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (B, V)
    cache = out.past_key_values
    del out
    B, C, T = len(prompts), len(continuations), max(len(c) for c in continuations)
    cont = torch.tensor([list(c) + [pad_id] * (T - len(c)) for c in continuations], dtype=torch.long, device=dev)
    cmask = torch.tensor([[1] * len(c) + [0] * (T - len(c)) for c in continuations], dtype=torch.long, device=dev)
    logp = torch.zeros(B, C, T, device=dev)
    logp[:, :, 0] = first[:, cont[:, 0]]
    lengths = mask.sum(1)
    step = max(1, max_rows // B)
    for c0 in range(0, C if T > 1 else 0, step):
        part, n = cont[c0:c0 + step], min(step, C - c0)
        # rows are prompt-major: row b * n + c holds prompt b and continuation c0 + c
        expanded = expand_cache(cache, n, model.config, interleave=True)
        inputs = part[:, :-1].repeat(B, 1)
        attention = torch.cat([mask.repeat_interleave(n, 0), cmask[c0:c0 + n, :-1].repeat(B, 1)], dim=1)
        positions = lengths.repeat_interleave(n)[:, None] + torch.arange(T - 1, device=dev)
        logits = model(input_ids=inputs, attention_mask=attention, position_ids=positions, past_key_values=expanded,
                       use_cache=True).logits.float()
        target = part[:, 1:].repeat(B, 1)
        lp = logits.gather(-1, target[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        logp[:, c0:c0 + n, 1:] = lp.view(B, n, T - 1)
    return (logp * cmask[None].to(logp.dtype)).cpu().numpy()


@torch.inference_mode()
def score_continuations_full(model, prompts, continuations, pad_id) -> np.ndarray:
    """The same log-probabilities from one full forward pass per (prompt, continuation): slow; the tests' reference."""
    dev = _device(model)
    T = max(len(c) for c in continuations)
    out = np.zeros((len(prompts), len(continuations), T), dtype=np.float32)
    for b, p in enumerate(prompts):
        for c, cont in enumerate(continuations):
            ids = torch.tensor([list(p) + list(cont)], device=dev)
            logits = model(input_ids=ids).logits[0].float()
            lp = torch.log_softmax(logits[len(p) - 1:-1], dim=-1)
            out[b, c, :len(cont)] = lp.gather(-1, torch.tensor(cont, device=dev)[:, None]).squeeze(-1).cpu().numpy()
    return out


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def multi_label_continuations(builder: PromptBuilder) -> tuple[list[list[int]], list[tuple[int, int | None]]]:
    """For the forward recursion: after the prompt, first piece of i then (next piece of k > i, or EOS)."""
    conts, keys = [], []
    for i, first in enumerate(builder.first_pieces):
        for k in range(i + 1, len(builder.labels)):
            conts.append(first + builder.next_pieces[k])
            keys.append((i, k))
        conts.append(first + [builder.eos_id])
        keys.append((i, None))
    return conts, keys


def label_marginals(logp: np.ndarray, builder: PromptBuilder, keys) -> np.ndarray:
    """(B, C, T) token log-probs of `multi_label_continuations` -> (B, L) P(label in answer); module docstring."""
    B, L = logp.shape[0], len(builder.labels)
    first_len = [len(p) for p in builder.first_pieces]
    first = np.full((B, L), -np.inf)
    trans = np.full((B, L, L + 1), -np.inf)  # column L: EOS
    for c, (i, k) in enumerate(keys):
        first[:, i] = logp[:, c, :first_len[i]].sum(-1)
        trans[:, i, L if k is None else k] = logp[:, c, first_len[i]:].sum(-1)
    q0 = _softmax(first)
    q = _softmax(trans)  # -inf (k <= i) gets probability 0
    alpha = np.zeros((B, L))
    for j in range(L):
        alpha[:, j] = q0[:, j] + (alpha[:, :j] * q[:, :j, j]).sum(-1)
    return np.clip(alpha, 0.0, 1.0)


class InstructionClassifier:
    """fit(task) then predict_proba(texts) -> (n, n_labels), as in scikit-learn; see the module docstring."""

    share_prefix = True  # run the prompts' common first tokens once a batch (the same results; False to compare)

    def __init__(self, cfg: InstructionConfig, model_path: str, adapter_cache: str | None = None):
        self.cfg = cfg
        self.model_path = model_path
        self.adapter_cache = adapter_cache
        self.threshold = 0.5
        self.log_history: list[dict] = []
        self.prediction_stats: dict = {}
        self.invalid_mask: np.ndarray | None = None  # of the last predict_proba call
        self.last_outputs: list[str] | None = None   # decoded answers of the last generate/constrained call
        self.adapter_reused = False
        self.adapter_train_seconds: float | None = None
        self.adapter_key: str | None = None
        self.fit_stats: dict = {}                    # merged into the run record (see approaches.contract)
        self.phase_seconds: dict[str, float] = {}    # load / validation inside fit (approaches.contract)
        self.validation_proba: np.ndarray | None = None
        # resolved once per run: loading, Trainer's autocast, scoring and decoding read it (models.precision)
        self.precision = Precision.resolve(cfg.dtype, warn=False)

    # ---- building and training

    def _build(self, task):
        from transformers import AutoModelForCausalLM, set_seed

        cfg = self.cfg
        sep = cfg.answer_separator.strip()
        clashing = [label for label in task.labels if sep in label] if task.multi_label else []
        if clashing:  # the answer is split on the separator: such a label would come back as pieces
            raise ConfigError(f"label(s) {clashing[:5]} contain the answer_separator {sep!r}; choose an "
                              "answer_separator that no label contains (e.g. ' | ')")
        set_seed(cfg.seed)
        self.labels, self.multi_label = list(task.labels), task.multi_label
        self.tokenizer = load_tokenizer(self.model_path, cfg.trust_remote_code)
        self.prompts = PromptBuilder(
            self.tokenizer, self.labels, task.multi_label, cfg.task_description, cfg.prompt_template,
            cfg.label_verbalizer, task.label_descriptions, cfg.answer_separator, cfg.max_length)
        label_sets = [np.flatnonzero(r).tolist() for r in task.train.label_indicator(task.n_labels)]
        self.prompts.set_answer_reserve(label_sets if task.multi_label else None)
        self.prompts.text_budget  # noqa: B018 - fails now, with the numbers, if max_length is too small
        model = load_pretrained(AutoModelForCausalLM, self.model_path, quantization=cfg.quantization,
                                precision=self.precision, trained_in_full=not (cfg.use_lora or cfg.zero_shot),
                                trust_remote_code=cfg.trust_remote_code)
        if cfg.zero_shot:
            model.requires_grad_(False)
        else:
            model = wrap_lora(model, cfg, task_type="CAUSAL_LM")
        self.model = model
        self.trainable_params, self.total_params = count_parameters(model)
        # generation stops at EOS, and at any end-of-turn id the model's generation config adds (zero-shot)
        extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        extra = extra if isinstance(extra, list) else [extra] if extra is not None else []
        self.stop_ids = sorted({self.prompts.eos_id, *extra})

    def training_key(self, task) -> str:
        """Hash of everything the trained adapter depends on (not what only changes predictions)."""
        params = {k: v for k, v in self.cfg.to_dict().items() if k not in PREDICTION_ONLY_PARAMS}
        params["dtype"] = self.precision.compute_dtype  # 'auto' trains in bf16 on one machine, fp32 on another
        train = task.train
        data = hashlib.sha256(json.dumps([task.labels, task.multi_label, train.ids, train.texts, train.y.tolist()],
                                         default=str).encode()).hexdigest()
        blob = json.dumps({"params": params, "train_data": data, "model": model_checksum(self.model_path)},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def fit(self, task) -> "InstructionClassifier":
        start = time.perf_counter()
        self.fit_stats.update(self.precision.record())
        self.precision.warn_if_slow()
        self._build(task)
        self.phase_seconds = {"load": time.perf_counter() - start}
        if not self.cfg.zero_shot:
            folder = None
            if self.adapter_cache:
                self.adapter_key = self.training_key(task)
                folder = Path(self.adapter_cache) / self.adapter_key
            # runs side by side (issue 13) train one adapter once: the others wait for it and load it
            with build_lock(folder) if folder is not None else nullcontext():
                if folder is not None and (folder / "train_info.json").exists():
                    self._load_adapter(folder)
                else:
                    self._train(task)
                    # what a reusing run records as its training cost: training alone, as measured here
                    self.adapter_train_seconds = time.perf_counter() - start - self.phase_seconds["load"]
                    if folder is not None:
                        self._save_adapter(folder)
        self.model.eval()
        if self.adapter_reused:  # the run's training cost is the original training, as in approaches.contract
            self.fit_stats["reused_train_seconds"] = self.adapter_train_seconds
        if self.adapter_key:
            self.fit_stats["adapter_key"] = self.adapter_key
        if task.multi_label and self.cfg.predict_mode == "score":  # generated answers are 0/1: 0.5 is all there is
            from .decisions import threshold_on_validation

            threshold_on_validation(self, task)
        return self

    def input_budget(self, texts: list[str]) -> dict:
        """max_length (prompt + text + answer), the text tokens left after the prompt and the longest answer, and
        the share of `texts` cut to that budget."""
        budget = self.prompts.text_budget
        enc = self.tokenizer([self.prompts.text_lead + t.strip() for t in texts], add_special_tokens=False,
                             verbose=False)["input_ids"]
        return {"max_length": int(self.cfg.max_length), "text_tokens": int(budget),
                "truncated_share": float(np.mean([len(ids) > budget for ids in enc])) if enc else None}

    def _train(self, task):
        rows = task.train.label_indicator(task.n_labels)
        data = [self.prompts.training_example(t, np.flatnonzero(r)) for t, r in zip(task.train.texts, rows)]
        self.model.config.use_cache = False  # no KV cache while training
        try:
            net = AnswerLoss(self.model, prefix_len=self.prefix_len)
            self.log_history = train_with_trainer(net, data, self.tokenizer, self.cfg,
                                                  collator=AnswerCollator(self.tokenizer.pad_token_id),
                                                  precision=self.precision)
        finally:
            self.model.config.use_cache = True

    def _save_adapter(self, folder: Path):
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
        try:
            self.save(str(tmp))
            info = {"train_seconds": self.adapter_train_seconds, "log_history": self.log_history,
                    "params": self.cfg.to_dict()}
            (tmp / "train_info.json").write_text(json.dumps(info, indent=1, default=str))
            os.replace(tmp, folder)  # only a complete adapter becomes visible
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # e.g. another run saved the same adapter first

    def _load_adapter(self, folder: Path):
        from peft.utils import set_peft_model_state_dict
        from safetensors.torch import load_file

        info = json.loads((folder / "train_info.json").read_text())
        weights = folder / "adapter_model.safetensors"
        if self.cfg.use_lora:
            set_peft_model_state_dict(self.model, load_file(str(weights)))
        else:  # a full fine-tune was saved whole
            from transformers import AutoModelForCausalLM

            self.model = load_pretrained(AutoModelForCausalLM, str(folder), precision=self.precision,
                                         trained_in_full=True)
        self.log_history = info["log_history"]
        self.adapter_train_seconds = info["train_seconds"]
        self.adapter_reused = True

    def save(self, folder: str) -> None:
        """The LoRA adapter (or, without LoRA, the whole model; zero-shot: nothing but the base's name) and the
        tokenizer, with `llmclf_model.json`: labels, threshold(s), the prompt template, task description, label
        verbalizer and descriptions, answer separator, decoding mode (predict_mode), max_length and the base's
        checksum."""
        from .persistence import write_metadata

        if not self.cfg.zero_shot:
            self.model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        b = self.prompts
        write_metadata(folder, self, "instruction", base_model=self.cfg.model, base_path=self.model_path,
                       needs_base=self.cfg.use_lora or self.cfg.zero_shot,
                       prompt={"template": b.prompt_template, "task_description": b.task_description,
                               "label_verbalizer": b.label_verbalizer, "label_descriptions": b.label_descriptions,
                               "answer_separator": b.answer_separator, "use_chat_template": b.use_chat_template,
                               "answer_reserve": b.answer_reserve},
                       predict_mode=self.cfg.predict_mode, max_new_tokens=self.cfg.max_new_tokens)

    @classmethod
    def load(cls, folder: str, model_path: str | None = None) -> "InstructionClassifier":
        """A saved classifier (see `save`): the adapter on the base it was trained on (or `model_path`)."""
        from transformers import AutoModelForCausalLM

        from ..config import InstructionConfig
        from .persistence import restore_transformer

        clf, cfg, meta, base = restore_transformer(cls, folder, InstructionConfig, model_path)
        p = meta["prompt"]
        clf.prompts = PromptBuilder(clf.tokenizer, clf.labels, clf.multi_label, p["task_description"],
                                    p["template"], p["label_verbalizer"], p["label_descriptions"],
                                    p["answer_separator"], cfg.max_length, p["use_chat_template"])
        clf.prompts.answer_reserve = p["answer_reserve"]
        if cfg.zero_shot or cfg.use_lora:
            model = load_pretrained(AutoModelForCausalLM, base, quantization=cfg.quantization,
                                    precision=clf.precision, trust_remote_code=cfg.trust_remote_code)
            if not cfg.zero_shot:
                from peft import PeftModel

                model = PeftModel.from_pretrained(prepare_for_adapter(model, cfg, clf.precision), folder)
        else:  # trained in full: float32 weights, as in training
            model = load_pretrained(AutoModelForCausalLM, folder, precision=clf.precision, trained_in_full=True,
                                    trust_remote_code=cfg.trust_remote_code)
        clf.model = model.eval()
        clf.trainable_params, clf.total_params = count_parameters(model)
        extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        extra = extra if isinstance(extra, list) else [extra] if extra is not None else []
        clf.stop_ids = sorted({clf.prompts.eos_id, *extra})
        return clf

    # ---- prediction

    @property
    def prefix_len(self) -> int:
        return len(self.prompts.prefix_ids) if self.share_prefix else 0

    def prompt_text(self, text: str) -> str:
        """The prompt the model sees for `text`, as text (the text cut to fit, as it is in every mode)."""
        return self.prompts.decode(self.prompts.prompt_ids([text])[0])

    def _batches(self, texts: list[str], phase: str = "predict"):
        from ..progress import track

        prompts = self.prompts.prompt_ids(list(texts))
        batches = list(length_batches([len(p) for p in prompts], self.cfg.eval_batch_size))
        for idx in track(batches, phase, run_dir=self.cfg.run_dir or None):
            yield idx, [prompts[i] for i in idx]

    @torch.inference_mode()
    def generate(self, texts: list[str], constrained: bool = False,
                 phase: str = "predict") -> tuple[list[list[int]], list[str]]:
        """Greedy answers: their token ids (up to the first stop token, included) and decoded text."""
        from transformers import GenerationConfig

        constraint = self.prompts.constraint() if constrained else None
        budget = self.cfg.max_new_tokens
        if constrained:  # long enough for any valid answer, so none is cut
            budget = max(budget, len(self.prompts.answer_ids(range(len(self.labels)))) if self.multi_label
                         else max(len(p) for p in self.prompts.first_pieces) + 1)
        gen = GenerationConfig(max_new_tokens=budget, do_sample=False, num_beams=1,
                               eos_token_id=[self.prompts.eos_id] if constrained else self.stop_ids,
                               pad_token_id=self.tokenizer.pad_token_id)
        tokens: list[list[int]] = [[] for _ in texts]
        for idx, prompts in self._batches(texts, phase):
            with self.precision.autocast():
                ids, mask, cache = prompt_inputs(self.model, prompts, self.tokenizer.pad_token_id, self.prefix_len)
                width = ids.shape[1]
                fn = (lambda _, seq: constraint.allowed(seq[width:].tolist())) if constrained else None
                out = self.model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache,
                                          generation_config=gen, prefix_allowed_tokens_fn=fn)
            stops = set(gen.eos_token_id)
            for i, row in zip(idx, out[:, width:].tolist()):
                end = next((p + 1 for p, t in enumerate(row) if t in stops), len(row))
                tokens[i] = row[:end]
        texts_out = [self.tokenizer.decode([t for t in ids if t not in self.stop_ids], skip_special_tokens=True)
                     for ids in tokens]
        return tokens, texts_out

    def predict_proba(self, texts: list[str], phase: str = "predict") -> np.ndarray:
        texts = list(texts)
        mode = self.cfg.predict_mode
        n, L = len(texts), len(self.labels)
        out = np.zeros((n, L), dtype=np.float32)
        invalid = np.zeros(n, dtype=bool)
        generated = 0
        self.last_outputs = None
        if mode in ("generate", "constrained"):
            tokens, decoded = self.generate(texts, constrained=mode == "constrained", phase=phase)
            constraint = self.prompts.constraint()
            for i, (ids, text) in enumerate(zip(tokens, decoded)):
                if mode == "constrained":
                    labels = constraint.labels_of(ids)
                else:
                    labels = parse_answer(text, self.labels, self.multi_label, self.cfg.answer_separator)
                if labels:
                    out[i, labels] = 1.0
                else:
                    invalid[i] = True
            generated = sum(len(t) for t in tokens)
            self.last_outputs = decoded
        elif mode == "score":
            for idx, prompts in self._batches(texts, phase):
                with self.precision.autocast():
                    out[idx] = self._score(prompts)
        else:
            raise ValueError(f"unknown predict_mode {mode!r}")
        self.invalid_mask = invalid
        self.prediction_stats = {
            "predict_mode": mode, "invalid_output_rate": float(invalid.mean()) if n else 0.0,
            "invalid_outputs": int(invalid.sum()),
            "generated_tokens_per_example": generated / n if n else 0.0,
            "zero_shot": self.cfg.zero_shot, "adapter_reused": self.adapter_reused,
        }
        return out

    def _score(self, prompts: list[list[int]]) -> np.ndarray:
        b = self.prompts
        pad, prefix_len = self.tokenizer.pad_token_id, self.prefix_len
        if not self.multi_label:
            conts = [p + [b.eos_id] for p in b.first_pieces]
            return _softmax(score_continuations(self.model, prompts, conts, pad, prefix_len).sum(-1))
        conts, keys = multi_label_continuations(b)
        logp = score_continuations(self.model, prompts, conts, pad, prefix_len)
        return label_marginals(logp, b, keys)


def adapter_cache_dir(run_dir: str) -> str | None:
    """`<run_dir>/../_adapters`: shared by the runs of one study; None when the run records nothing to disk."""
    return str(Path(run_dir).resolve().parent / "_adapters") if run_dir else None


def show_answers(clf: InstructionClassifier, task, result, n: int = 5, prompt_chars: int = 300):
    """The first `n` test examples: true labels, the free greedy answer, the run's prediction and the text."""
    import pandas as pd

    from .decisions import predict_labels

    texts = task.test.texts[:n]
    _, answers = clf.generate(texts)
    pred = predict_labels(result.test_proba[:n], task.multi_label, clf.threshold)
    invalid = clf.invalid_mask[:n] if clf.invalid_mask is not None else np.zeros(n, dtype=bool)
    rows = []
    for i, text in enumerate(texts):
        predicted = ("(invalid)" if invalid[i] else
                     ", ".join(task.labels[j] for j in (np.flatnonzero(pred[i]) if task.multi_label else [pred[i]])))
        rows.append({"true": ", ".join(task.test.label_names(task.labels)[i]), "greedy answer": answers[i],
                     f"predicted ({clf.cfg.predict_mode})": predicted,
                     "text": text if len(text) <= prompt_chars else text[:prompt_chars] + " ..."})
    return pd.DataFrame(rows)
