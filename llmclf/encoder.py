"""The encoder baseline, as the paper's BERT baselines: `AutoModelForSequenceClassification` fine-tuned end to end
(or with LoRA adapters), reading the model's own pooled output (BERT: the pooler on [CLS]).

The loss is the model's own: cross-entropy for single-label, binary cross-entropy for multi-label (its
`problem_type`), with the multi-label threshold tuned on validation as for the embedding head. Training goes
through transformers' Trainer (llmclf.training), so its settings mean what they mean for the other approaches.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import BaselineConfig, ConfigError
from .lora import count_parameters, load_pretrained, wrap_lora
from .training import TokenizedDataset, train_with_trainer


def check_lora_targets(model, targets: list[str]) -> None:
    """Fail with the model's own module names when no target matches (BERT calls q_proj 'query')."""
    if targets == ["all-linear"]:
        return
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if not names & set(targets):
        from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as defaults

        linear = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                         if isinstance(m, torch.nn.Linear)})
        suggestion = defaults.get(model.config.model_type)
        raise ConfigError(f"lora_target_modules {targets} match no module of this {model.config.model_type} "
                          f"model; its linear layers are {linear}"
                          + (f" (peft's default for it: {suggestion})" if suggestion else ""))


class EncoderClassifier:
    """fit(task) then predict_proba(texts) -> (n, n_labels) probabilities, as in scikit-learn."""

    def __init__(self, cfg: BaselineConfig, model_path: str):
        self.cfg = cfg
        self.model_path = model_path
        self.threshold = 0.5
        self.log_history: list[dict] = []
        self.epochs = cfg.epochs

    def _build(self, n_labels: int, multi_label: bool):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

        cfg = self.cfg
        set_seed(cfg.seed)  # the new classifier layer's initialization
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, trust_remote_code=cfg.trust_remote_code)
        if self.tokenizer.pad_token is None:  # a causal LM used as an 'encoder'
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        model = load_pretrained(
            AutoModelForSequenceClassification, self.model_path, quantization=cfg.quantization, dtype=cfg.dtype,
            trust_remote_code=cfg.trust_remote_code, num_labels=n_labels,
            problem_type="multi_label_classification" if multi_label else "single_label_classification")
        model.config.pad_token_id = self.tokenizer.pad_token_id
        if cfg.use_lora:
            check_lora_targets(model, cfg.lora_target_modules)
        # SEQ_CLS: peft trains and saves the new classifier layer in full beside the adapters.
        self.model = wrap_lora(model, cfg, task_type="SEQ_CLS")
        self.trainable_params, self.total_params = count_parameters(self.model)

    def fit(self, task) -> "EncoderClassifier":
        self.labels, self.multi_label = task.labels, task.multi_label
        self._build(task.n_labels, task.multi_label)
        y = task.train.y.astype(np.float32) if task.multi_label else task.train.y
        data = TokenizedDataset(self.tokenizer, task.train.texts, self.cfg.max_length, labels=y)
        self.log_history = train_with_trainer(self.model, data, self.tokenizer, self.cfg)
        if task.multi_label and self.cfg.threshold == "validation":
            from .metrics import tune_threshold

            self.threshold = tune_threshold(task.validation.y, self.predict_proba(task.validation.texts))
        return self

    @torch.inference_mode()
    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.model.eval()
        device = next(self.model.parameters()).device
        # Sorting by length keeps padding, and so wasted compute, small; the order is restored at the end.
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        bs = self.cfg.eval_batch_size
        for start in range(0, len(texts), bs):
            idx = order[start:start + bs]
            enc = self.tokenizer([texts[i] for i in idx], truncation=True, max_length=self.cfg.max_length,
                                 padding=True, return_tensors="pt").to(device)
            # as in training (TokenizedDataset), no token_type_ids: a single segment is all zeros anyway
            logits = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.float()
            probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
            out[idx] = probs.cpu().numpy()
        return out

    def save(self, folder: str) -> None:
        """The fine-tuned model (or the LoRA adapter and classifier layer), with the tokenizer."""
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
