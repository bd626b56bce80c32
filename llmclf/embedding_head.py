"""The embedding-head approach: a linear head on a causal LM's pooled hidden state, trained with LoRA.

The head is the `score` layer of `AutoModelForSequenceClassification`, so peft saves it with the adapter. The
pooling is ours rather than the model's: transformers finds the last token by looking for the pad id, which breaks
when pad == eos or a text contains the pad token, and it offers no mean pooling. Here the attention mask decides,
and position ids follow the mask, so left- and right-padded batches give the same logits as unpadded inputs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .config import EmbeddingHeadConfig
from .lora import count_parameters, load_pretrained, wrap_lora
from .training import TokenizedDataset, encode_batch, train_with_trainer


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """(batch, seq, hidden) -> (batch, hidden): the last real token's state, or the mean over real tokens."""
    mask = attention_mask.to(hidden.dtype)
    if mode == "mean":
        return (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    if mode == "last":
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        last = (positions * attention_mask).argmax(dim=1)  # rightmost real token, whatever the padding side
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"pooling must be 'last' or 'mean', got {mode!r}")


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


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


class EmbeddingHeadClassifier:
    """fit(task) then predict_proba(texts) -> (n, n_labels) probabilities, as in scikit-learn."""

    def __init__(self, cfg: EmbeddingHeadConfig, model_path: str):
        self.cfg = cfg
        self.model_path = model_path
        self.threshold = 0.5
        self.log_history: list[dict] = []

    def _build(self, n_labels: int, multi_label: bool):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

        cfg = self.cfg
        set_seed(cfg.seed)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, trust_remote_code=cfg.trust_remote_code)
        if self.tokenizer.pad_token is None:
            # Any id will do: the attention mask, not the pad id, decides what is pooled.
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        model = load_pretrained(AutoModelForSequenceClassification, self.model_path, quantization=cfg.quantization,
                                dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code, num_labels=n_labels,
                                problem_type="multi_label_classification" if multi_label else None)
        model.config.pad_token_id = self.tokenizer.pad_token_id
        model = wrap_lora(model, cfg, task_type="SEQ_CLS")
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        inner.score.float()  # the head trains in float32 whatever the base dtype
        self.net = PooledClassifier(model, cfg.pooling, multi_label)
        self.trainable_params, self.total_params = count_parameters(model)

    def fit(self, task) -> "EmbeddingHeadClassifier":
        self.labels, self.multi_label = task.labels, task.multi_label
        self._build(task.n_labels, task.multi_label)
        y = task.train.y.astype(np.float32) if task.multi_label else task.train.y
        data = TokenizedDataset(self.tokenizer, task.train.texts, self.cfg.max_length, labels=y,
                                append_token=self._eos_id())
        self.log_history = train_with_trainer(self.net, data, self.tokenizer, self.cfg)
        if task.multi_label and self.cfg.threshold == "validation":
            from .metrics import tune_threshold

            self.threshold = tune_threshold(task.validation.y, self.predict_proba(task.validation.texts))
        return self

    @torch.inference_mode()
    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.net.eval()
        device = next(self.net.parameters()).device
        # Sorting by length keeps padding, and so wasted compute, small; the order is restored at the end.
        order = np.argsort([len(t) for t in texts])
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        bs = self.cfg.eval_batch_size
        for start in range(0, len(texts), bs):
            idx = order[start:start + bs]
            enc = encode_batch(self.tokenizer, [texts[i] for i in idx], self.cfg.max_length, self._eos_id())
            enc = {k: v.to(device) for k, v in enc.items()}
            logits = self.net(enc["input_ids"], enc["attention_mask"])["logits"]
            probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
            out[idx] = probs.float().cpu().numpy()
        return out

    def _eos_id(self) -> int | None:
        if not self.cfg.append_eos:
            return None
        if self.tokenizer.eos_token_id is None:
            raise ValueError(f"append_eos=True but the tokenizer of {self.model_path} has no EOS token; "
                             "set append_eos=False")
        return self.tokenizer.eos_token_id

    def save(self, folder: str) -> None:
        """The LoRA adapter and the trained head (peft's modules_to_save), with the tokenizer."""
        self.net.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
