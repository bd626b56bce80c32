"""The encoder baseline, as the paper's BERT baselines: `AutoModelForSequenceClassification` fine-tuned end to end
(or with LoRA adapters), reading the model's own pooled output (BERT: the pooler on [CLS]).

The loss is the model's own: cross-entropy for single-label, binary cross-entropy for multi-label (its
`problem_type`), with the multi-label threshold tuned on validation as for the embedding head. Training goes
through transformers' Trainer (llmclf.training), so its settings mean what they mean for the other approaches.
"""

from __future__ import annotations

from ..config import BaselineConfig
from ..models.loading import count_parameters, load_pretrained, load_tokenizer, wrap_lora
from .training import FineTunedClassifier


class EncoderClassifier(FineTunedClassifier):
    """fit(task) then predict_proba(texts) -> (n, n_labels) probabilities, as in scikit-learn."""

    def __init__(self, cfg: BaselineConfig, model_path: str):
        super().__init__(cfg, model_path)
        self.epochs = cfg.epochs

    def _build(self, n_labels: int, multi_label: bool):
        from transformers import AutoModelForSequenceClassification, set_seed

        cfg = self.cfg
        set_seed(cfg.seed)  # the new classifier layer's initialization
        self.tokenizer = load_tokenizer(self.model_path, cfg.trust_remote_code)
        model = load_pretrained(
            AutoModelForSequenceClassification, self.model_path, quantization=cfg.quantization, dtype=cfg.dtype,
            trust_remote_code=cfg.trust_remote_code, num_labels=n_labels,
            problem_type="multi_label_classification" if multi_label else "single_label_classification")
        model.config.pad_token_id = self.tokenizer.pad_token_id
        # SEQ_CLS: peft trains and saves the new classifier layer in full beside the adapters.
        self.net = wrap_lora(model, cfg, task_type="SEQ_CLS")
        self.trainable_params, self.total_params = count_parameters(self.net)

    def _logits(self, input_ids, attention_mask):
        # as in training (TokenizedDataset), no token_type_ids: a single segment is all zeros anyway
        return self.net(input_ids=input_ids, attention_mask=attention_mask).logits

    def save(self, folder: str) -> None:
        """The fine-tuned model (or the LoRA adapter and classifier layer), with the tokenizer."""
        self.net.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
