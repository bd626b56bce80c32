"""The embedding-head approach: a linear head on a causal LM's pooled hidden state, trained with LoRA.

The head is the `score` layer of `AutoModelForSequenceClassification`, so peft saves it with the adapter. The
pooling is ours rather than the model's: transformers finds the last token by looking for the pad id, which breaks
when pad == eos or a text contains the pad token, and it offers no mean pooling. Here the attention mask decides,
and position ids follow the mask, so left- and right-padded batches give the same logits as unpadded inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ConfigError
from ..models.loading import count_parameters, eos_id, load_pretrained, load_tokenizer, wrap_lora
from .batching import pool, position_ids_from_mask
from .training import FineTunedClassifier


class PooledClassifier(nn.Module):
    """Backbone -> pool -> score head -> logits (and the loss, when labels are given)."""

    def __init__(self, seq_cls_model, pooling: str, multi_label: bool):
        super().__init__()
        self.model = seq_cls_model  # a PeftModel or a plain *ForSequenceClassification
        self.pooling = pooling
        self.multi_label = multi_label
        inner = seq_cls_model.get_base_model() if hasattr(seq_cls_model, "get_base_model") else seq_cls_model
        self.backbone = getattr(inner, inner.base_model_prefix)
        self.score = inner.score

    def forward(self, input_ids, attention_mask, labels=None):
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                               position_ids=position_ids_from_mask(attention_mask), use_cache=False).last_hidden_state
        head_dtype = next(self.score.parameters()).dtype
        logits = self.score(pool(hidden, attention_mask, self.pooling).to(head_dtype)).float()
        out = {"logits": logits}
        if labels is not None:
            if self.multi_label:
                out["loss"] = nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
            else:
                out["loss"] = nn.functional.cross_entropy(logits, labels.long())
        return out


def check_causal_lm(model_path: str, trust_remote_code: bool = False) -> None:
    """The embedding head reads a causal LM's last (or mean) hidden state; an encoder is the encoder baseline's."""
    from transformers import AutoConfig

    from .frozen import is_causal_lm

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    if not is_causal_lm(config):
        raise ConfigError(f"model {model_path} is a {config.model_type} encoder, not a causal LM: the embedding head "
                          "is for decoder-only models (e.g. smollm2-135m); for an encoder use 30_baselines with "
                          "baseline='encoder' (or 'frozen')")


def label_token(tokenizer, label: str) -> int:
    """The first token of ' ' + label that is not whitespace alone (a SentencePiece tokenizer may split off a bare
    '▁', which every label would share)."""
    ids = tokenizer(" " + label, add_special_tokens=False)["input_ids"]
    for i in ids:
        if tokenizer.decode([i]).strip():
            return i
    raise ConfigError(f"head_init='label_tokens': label {label!r} tokenizes to whitespace only")


class EmbeddingHeadClassifier(FineTunedClassifier):
    """fit(task) then predict_proba(texts) -> (n, n_labels) probabilities, as in scikit-learn.
    `cfg`: an EmbeddingHeadConfig; `model_path`: a local causal LM folder (`llmclf.resolve_model`)."""

    def _build(self, n_labels: int, multi_label: bool):
        from transformers import AutoModelForSequenceClassification, set_seed

        cfg = self.cfg
        check_causal_lm(self.model_path, cfg.trust_remote_code)
        set_seed(cfg.seed)
        self.tokenizer = load_tokenizer(self.model_path, cfg.trust_remote_code)
        model = load_pretrained(AutoModelForSequenceClassification, self.model_path, quantization=cfg.quantization,
                                precision=self.precision, trained_in_full=not cfg.use_lora,
                                trust_remote_code=cfg.trust_remote_code, num_labels=n_labels,
                                problem_type="multi_label_classification" if multi_label else None)
        model.config.pad_token_id = self.tokenizer.pad_token_id
        if cfg.head_init == "label_tokens":
            self._init_from_label_tokens(model)
        model = wrap_lora(model, cfg, task_type="SEQ_CLS")  # the head and adapters train in float32
        self.net = PooledClassifier(model, cfg.pooling, multi_label)
        self.trainable_params, self.total_params = count_parameters(model)

    def _init_from_label_tokens(self, model) -> None:
        """The head's rows := the LM head's rows of each label's first token (' ' + label), and no bias: the head
        then scores what the LM's next-token logits say at the position it reads. Labels that share a first token
        start equal (recorded, with a warning): training has to tell them apart."""
        import warnings

        from ..models.loading import lm_head_rows

        first = [label_token(self.tokenizer, label) for label in self.labels]
        rows = lm_head_rows(model, self.model_path, first)
        with torch.no_grad():
            model.score.weight.copy_(rows.to(model.score.weight.dtype))
            if model.score.bias is not None:
                model.score.bias.zero_()
        pieces = self.tokenizer.convert_ids_to_tokens(first)
        shared = sorted({p for p in pieces if pieces.count(p) > 1})
        if shared:
            warnings.warn(f"head_init='label_tokens': labels share the first token(s) {shared}; their rows start "
                          "equal", stacklevel=2)
        self.fit_stats["label_tokens"] = {"tokens": pieces, "shared": shared}

    def _logits(self, input_ids, attention_mask):
        return self.net(input_ids, attention_mask)["logits"]

    @property
    def append_token(self) -> int | None:
        """EOS after every (truncated) text when `append_eos`, so that last-token pooling reads a fixed token."""
        return eos_id(self.tokenizer, self.model_path) if self.cfg.append_eos else None

    def save(self, folder: str) -> None:
        """The LoRA adapter and the trained head (peft's modules_to_save: the `score` layer), with the tokenizer
        and `llmclf_model.json` (labels, threshold(s), pooling, append_eos, max_length, the base's checksum).
        Without LoRA the whole fine-tuned model is saved instead, and no base is needed."""
        from .persistence import write_metadata

        self.net.model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        write_metadata(folder, self, "embedding_head", base_model=self.cfg.model, base_path=self.model_path,
                       needs_base=self.cfg.use_lora, pooling=self.cfg.pooling,
                       append_eos_token=self.append_token)

    @classmethod
    def load(cls, folder: str, model_path: str | None = None) -> "EmbeddingHeadClassifier":
        """A saved classifier (see `save`), on the base model it was trained on (or `model_path`)."""
        from transformers import AutoModelForSequenceClassification

        from ..config import EmbeddingHeadConfig
        from ..models.loading import prepare_for_adapter
        from .persistence import restore_transformer

        clf, cfg, meta, base = restore_transformer(cls, folder, EmbeddingHeadConfig, model_path)
        n = len(clf.labels)
        problem = "multi_label_classification" if clf.multi_label else None
        if cfg.use_lora:
            from peft import PeftModel

            model = load_pretrained(AutoModelForSequenceClassification, base, quantization=cfg.quantization,
                                    precision=clf.precision, trust_remote_code=cfg.trust_remote_code, num_labels=n,
                                    problem_type=problem)
            model = prepare_for_adapter(model, cfg, clf.precision)  # as in training: a float32 head
            model = PeftModel.from_pretrained(model, folder)
        else:  # trained in full: float32 weights, as in training
            model = load_pretrained(AutoModelForSequenceClassification, folder, precision=clf.precision,
                                    trained_in_full=True, trust_remote_code=cfg.trust_remote_code, num_labels=n,
                                    problem_type=problem)
        model.config.pad_token_id = clf.tokenizer.pad_token_id
        clf.net = PooledClassifier(model, cfg.pooling, clf.multi_label).eval()
        clf.trainable_params, clf.total_params = count_parameters(model)
        return clf
