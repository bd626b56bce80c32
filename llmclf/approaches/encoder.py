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
            AutoModelForSequenceClassification, self.model_path, quantization=cfg.quantization,
            precision=self.precision, trained_in_full=not cfg.use_lora,
            trust_remote_code=cfg.trust_remote_code, num_labels=n_labels,
            problem_type="multi_label_classification" if multi_label else "single_label_classification")
        model.config.pad_token_id = self.tokenizer.pad_token_id
        # SEQ_CLS: peft trains and saves the new classifier layer in full beside the adapters.
        self.net = wrap_lora(model, cfg, task_type="SEQ_CLS")
        self.trainable_params, self.total_params = count_parameters(self.net)

    def _logits(self, input_ids, attention_mask):
        # as in training (TokenizedDataset), no token_type_ids: a single segment is all zeros anyway
        return self.net(input_ids=input_ids, attention_mask=attention_mask).logits

    approach = "encoder"

    def save(self, folder: str) -> None:
        """The fine-tuned model (or the LoRA adapter and classifier layer), with the tokenizer and
        `llmclf_model.json` (labels, threshold(s), max_length, the base's checksum when an adapter needs it)."""
        from .persistence import write_metadata

        self.net.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        write_metadata(folder, self, self.approach, base_model=self.cfg.model, base_path=self.model_path,
                       needs_base=self.cfg.use_lora, **self._extra_metadata())

    def _extra_metadata(self) -> dict:
        return {}

    @classmethod
    def load(cls, folder: str, model_path: str | None = None) -> "EncoderClassifier":
        """A saved classifier (see `save`): the model folder itself, or the adapter on its base."""
        from transformers import AutoModelForSequenceClassification

        from ..config import BaselineConfig
        from ..models.loading import prepare_for_adapter
        from .persistence import restore_transformer

        clf, cfg, meta, base = restore_transformer(EncoderClassifier, folder, BaselineConfig, model_path, baseline="encoder")
        if cfg.use_lora:
            from peft import PeftModel

            n = len(clf.labels)
            model = load_pretrained(
                AutoModelForSequenceClassification, base, quantization=cfg.quantization, precision=clf.precision,
                trust_remote_code=cfg.trust_remote_code, num_labels=n,
                problem_type="multi_label_classification" if clf.multi_label else "single_label_classification")
            model = prepare_for_adapter(model, cfg, clf.precision)
            model = PeftModel.from_pretrained(model, folder)
        else:  # trained in full: float32 weights, as in training, so that it predicts as it did
            model = load_pretrained(AutoModelForSequenceClassification, folder, precision=clf.precision,
                                    trained_in_full=True, trust_remote_code=cfg.trust_remote_code)
        clf.net = model.eval()
        clf.trainable_params, clf.total_params = count_parameters(model)
        return clf
