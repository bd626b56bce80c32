"""Distillation: a student encoder trained on a teacher's probabilities, to get BERT-class throughput back.

The teacher (any approach: usually the study's best LLM run, loaded with `llmclf.load_run`) labels the training
split with probabilities; the student (`EncoderClassifier`'s model) learns from those soft targets and from the
true labels (Hinton et al.'s recipe):

- single-label: `w * T^2 * KL(p_teacher^(1/T) normalized || softmax(z / T)) + (1 - w) * CE(z, y)`; the teacher's
  tempered distribution is computed from its probabilities (softmax(logits / T) = p^(1/T), normalized), so a
  teacher that gives probabilities only (TF-IDF, instruction scoring) is as good as one that gives logits;
- multi-label: `w * T^2 * BCE(sigmoid(z / T), sigmoid(logit(p_teacher) / T)) + (1 - w) * BCE(z, y)`.

T is `temperature`, w `distill_weight`. Training goes through transformers' Trainer (training.train_with_trainer);
the trained student is an encoder like any other: saved, loaded and predicted as `EncoderClassifier`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .encoder import EncoderClassifier
from .training import TokenizedDataset, train_with_trainer

EPS = 1e-6


def distillation_loss(logits: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor, multi_label: bool,
                      temperature: float, weight: float) -> torch.Tensor:
    T = temperature
    soft = soft.float().clamp(EPS, 1 - EPS)
    if multi_label:
        target = torch.sigmoid(torch.logit(soft) / T)
        soft_loss = nn.functional.binary_cross_entropy_with_logits(logits / T, target) * T * T
        hard_loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
    else:
        target = torch.softmax(torch.log(soft) / T, dim=-1)
        soft_loss = nn.functional.kl_div(torch.log_softmax(logits / T, dim=-1), target,
                                         reduction="batchmean") * T * T
        hard_loss = nn.functional.cross_entropy(logits, labels.long())
    return weight * soft_loss + (1 - weight) * hard_loss


class StudentLoss(nn.Module):
    """Training forward of the student: its logits, and the distillation loss."""

    def __init__(self, model, multi_label: bool, temperature: float, weight: float):
        super().__init__()
        self.model = model
        self.multi_label, self.temperature, self.weight = multi_label, temperature, weight

    def forward(self, input_ids, attention_mask, labels, soft_targets):
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
        loss = distillation_loss(logits, labels, soft_targets, self.multi_label, self.temperature, self.weight)
        return {"loss": loss, "logits": logits}


class SoftTargetDataset(TokenizedDataset):
    def __init__(self, tokenizer, texts, max_length, labels, soft_targets):
        super().__init__(tokenizer, texts, max_length, labels=labels)
        self.soft = np.asarray(soft_targets, dtype=np.float32)

    def __getitem__(self, i):
        item = super().__getitem__(i)
        item["soft_targets"] = self.soft[i].tolist()
        return item


class SoftTargetCollator:
    """Pads input ids and masks (the tokenizer's pad), stacks labels and soft targets."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, features):
        batch = self.tokenizer.pad([{"input_ids": f["input_ids"], "attention_mask": f["attention_mask"]}
                                    for f in features], return_tensors="pt")
        batch["labels"] = torch.tensor([f["labels"] for f in features])
        batch["soft_targets"] = torch.tensor([f["soft_targets"] for f in features], dtype=torch.float32)
        return batch


def align_teacher(proba: np.ndarray, teacher_labels: list[str], labels: list[str]) -> np.ndarray:
    """The teacher's columns in the student's label order; an error when the label sets differ."""
    if list(teacher_labels) == list(labels):
        return np.asarray(proba, dtype=np.float32)
    if set(teacher_labels) != set(labels):
        raise ValueError(f"the teacher's labels {sorted(teacher_labels)} are not the task's {sorted(labels)}: "
                         "distil on the teacher's task")
    return np.asarray(proba, dtype=np.float32)[:, [list(teacher_labels).index(l) for l in labels]]


class DistilledEncoderClassifier(EncoderClassifier):
    """fit(task) on the teacher's probabilities over `task.train` (`teacher_train_proba`, (n_train, labels), in
    the task's label order), then predict_proba(texts) -> (n, labels) as any encoder. `cfg`: a DistillationConfig."""

    def __init__(self, cfg, model_path: str, teacher_train_proba: np.ndarray):
        super().__init__(cfg, model_path)
        self.teacher_train_proba = np.asarray(teacher_train_proba, dtype=np.float32)

    def fit(self, task):
        if self.teacher_train_proba.shape != (len(task.train), task.n_labels):
            raise ValueError(f"teacher probabilities have shape {self.teacher_train_proba.shape}; the training "
                             f"split needs ({len(task.train)}, {task.n_labels})")
        import time

        self.labels, self.multi_label = task.labels, task.multi_label
        start = time.perf_counter()
        self.fit_stats.update(self.precision.record())  # as every fine-tuned approach (FineTunedClassifier.fit)
        self.precision.warn_if_slow()
        self._build(task.n_labels, task.multi_label)
        self.phase_seconds = {"load": time.perf_counter() - start}  # loading is not training
        y = task.train.y.astype(np.float32) if task.multi_label else task.train.y
        data = SoftTargetDataset(self.tokenizer, task.train.texts, self.cfg.max_length, y, self.teacher_train_proba)
        student = StudentLoss(self.net, task.multi_label, self.cfg.temperature, self.cfg.distill_weight)
        self.log_history = train_with_trainer(student, data, self.tokenizer, self.cfg,
                                              collator=SoftTargetCollator(self.tokenizer), precision=self.precision)
        self.validation_proba = None
        if task.multi_label:  # every threshold rule of the config, as the other fine-tuned approaches
            from .decisions import threshold_on_validation

            threshold_on_validation(self, task)
        return self

    def _extra_metadata(self) -> dict:
        return {"distillation": {"temperature": self.cfg.temperature, "distill_weight": self.cfg.distill_weight,
                                 "teacher_run": self.cfg.teacher_run}}
