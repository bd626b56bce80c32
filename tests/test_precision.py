"""Mixed precision (issue 24): what trains is float32, the forward runs in the compute dtype, resolved once a run.

Every test forces its dtype (float32, or bfloat16: cheap on tiny models even where bf16 is emulated), so each means
the same on an AVX2 CPU and on one with AMX / AVX512_BF16; none assumes what 'auto' resolves to.
"""

import warnings

import numpy as np
import pytest
import torch

from llmclf.approaches.baselines import make_baseline
from llmclf.approaches.embedding_head import EmbeddingHeadClassifier
from llmclf.approaches.instruction import InstructionClassifier
from llmclf.config import BaselineConfig, DistillationConfig, EmbeddingHeadConfig, InstructionConfig
from llmclf.models.hardware import resolve_dtype
from llmclf.models.precision import Precision

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN = dict(max_length=32, batch_size=4, eval_batch_size=8, epochs=1.0)


def test_precision_is_resolved_once_with_everything_a_run_needs():
    p = Precision.resolve("bfloat16", device="cpu", warn=False)
    assert (p.compute, p.master, p.mixed) == (torch.bfloat16, torch.float32, True)
    assert p.load_dtype(trained_in_full=True) == torch.float32  # master weights of a full fine-tune
    assert p.load_dtype(trained_in_full=False) == torch.bfloat16  # a frozen base
    assert p.trainer_flags() == {"bf16": True, "fp16": False}
    with p.autocast():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    record = p.record()
    assert record["requested_dtype"] == "bfloat16" and record["compute_dtype"] == "bfloat16"
    assert record["resolved_dtype"] == "bfloat16" and record["master_dtype"] == "float32"
    assert record["mixed_precision"] is True and record["device"] == "cpu"


def test_float32_means_pure_float32_everywhere():
    p = Precision.resolve("float32", device="cpu")
    assert not p.mixed and p.load_dtype(True) == p.load_dtype(False) == torch.float32
    assert p.trainer_flags() == {"bf16": False, "fp16": False}
    with p.autocast():
        assert not torch.is_autocast_enabled("cpu")
    assert p.record()["mixed_precision"] is False


def test_auto_is_what_the_hardware_resolves_and_float16_never_scales_losses_on_a_cpu():
    assert Precision.resolve("auto", warn=False).compute_dtype == resolve_dtype("auto")
    assert Precision.resolve("float16", device="cpu", warn=False).trainer_flags() == {"bf16": False, "fp16": False}
    assert Precision.resolve("float16", device="cuda", warn=False).trainer_flags() == {"bf16": False, "fp16": True}


def test_the_4bit_compute_dtype_follows_the_run_precision():
    pytest.importorskip("bitsandbytes")
    for name in ("float32", "bfloat16"):
        config = Precision.resolve(name, device="cpu", warn=False).bnb_config("4bit")
        assert config.bnb_4bit_compute_dtype == getattr(torch, name)
    assert Precision.resolve("float32", warn=False).bnb_config("none") is None
    with pytest.raises(ValueError, match="none, 8bit, 4bit"):
        Precision.resolve("float32", warn=False).bnb_config("3bit")


def _trained_dtypes(model) -> set:
    return {p.dtype for p in model.parameters() if p.requires_grad}


def _frozen_dtypes(model) -> set:
    return {p.dtype for p in model.parameters() if not p.requires_grad and p.is_floating_point()}


@pytest.mark.parametrize("multi_label", [False, True], ids=["single-label", "multi-label"])
def test_bf16_embedding_head_trains_float32_adapters_and_head_over_a_bf16_base(label_llama, tiny_task_factory,
                                                                               multi_label):
    llama = str(label_llama)
    clf = EmbeddingHeadClassifier(EmbeddingHeadConfig(model=llama, dtype="bfloat16", learning_rate=1e-3,
                                                      multi_label=multi_label, **TRAIN), llama)
    clf.fit(tiny_task_factory(multi_label))
    assert _trained_dtypes(clf.net) == {torch.float32}
    # the frozen base is stored in the compute dtype (the float32 left is peft's untrained copy of the head)
    assert {p.dtype for n, p in clf.net.backbone.named_parameters() if not p.requires_grad} == {torch.bfloat16}
    assert clf.fit_stats["compute_dtype"] == "bfloat16" and clf.fit_stats["master_dtype"] == "float32"


def test_bf16_instruction_tuning_trains_float32_adapters(label_llama, tiny_task_factory):
    llama = str(label_llama)
    clf = InstructionClassifier(InstructionConfig(model=llama, dtype="bfloat16", learning_rate=1e-3,
                                                  **{**TRAIN, "max_length": 64}), llama)
    clf.fit(tiny_task_factory())
    assert _trained_dtypes(clf.model) == {torch.float32}
    assert torch.bfloat16 in _frozen_dtypes(clf.model)
    assert clf.fit_stats["master_dtype"] == "float32" and clf.fit_stats["compute_dtype"] == "bfloat16"


@pytest.mark.parametrize("use_lora", [False, True], ids=["full", "lora"])
def test_bf16_encoder_keeps_float32_master_weights(tiny_bert, tiny_task_factory, use_lora):
    bert = str(tiny_bert)
    clf = make_baseline(BaselineConfig(baseline="encoder", model=bert, dtype="bfloat16", use_lora=use_lora,
                                       **TRAIN), bert)
    clf.fit(tiny_task_factory())
    assert _trained_dtypes(clf.net) == {torch.float32}  # a LoRA run's new classifier layer too
    if not use_lora:  # every weight trains: all of them float32, the forward in bf16 under autocast
        assert {p.dtype for p in clf.net.parameters()} == {torch.float32}


def test_bf16_full_fine_tuning_keeps_small_updates(tiny_bert, tiny_task_factory, monkeypatch):
    """The bug of issue 24: with the weights themselves in bf16 an update smaller than half a bf16 step of the
    weight is rounded away (pure-bf16 MiniLM lost 6-13 F1 points). With float32 masters the weights move."""
    from llmclf.approaches import training

    bert, before = str(tiny_bert), {}
    train = training.train_with_trainer

    def snapshot_then_train(model, *args, **kwargs):  # the weights as loaded, just before training
        before.update({n: p.detach().clone() for n, p in model.named_parameters()})
        return train(model, *args, **kwargs)

    monkeypatch.setattr(training, "train_with_trainer", snapshot_then_train)
    clf = make_baseline(BaselineConfig(baseline="encoder", model=bert, dtype="bfloat16", learning_rate=1e-6,
                                       **TRAIN), bert)
    clf.fit(tiny_task_factory())
    # the encoder's weight matrices (not the embeddings, whose unseen tokens' rows never move)
    moved = [(before[name] != p.detach()).float().mean().item() for name, p in clf.net.named_parameters()
             if p.ndim == 2 and "encoder.layer" in name]
    assert moved and np.mean(moved) > 0.5, f"share of weights changed by training: {np.mean(moved):.3f}"


def test_bf16_distillation_records_its_precision_and_trains_float32(tiny_bert, tiny_task_factory):
    from llmclf.approaches.distillation import DistilledEncoderClassifier

    task = tiny_task_factory()
    teacher = np.eye(task.n_labels, dtype=np.float32)[task.train.y]
    bert = str(tiny_bert)
    cfg = DistillationConfig(model=bert, dtype="bfloat16", teacher_run="x", **TRAIN)
    clf = DistilledEncoderClassifier(cfg, bert, teacher).fit(task)
    assert {p.dtype for p in clf.net.parameters()} == {torch.float32}
    assert clf.fit_stats["compute_dtype"] == "bfloat16" and clf.fit_stats["master_dtype"] == "float32"
    assert clf.phase_seconds["load"] > 0  # loading the student is not training


def test_a_float32_trainer_after_a_bf16_one_in_one_process(label_llama, tiny_task_factory):
    """accelerate keeps one mixed-precision setting a process; a Trainer whose TrainingArguments were made before
    another run's bf16 Trainer fails ("AcceleratorState has already been initialized and cannot be changed": the
    benchmark's recipe row did). train_with_trainer makes its arguments right before its Trainer."""
    llama, task = str(label_llama), tiny_task_factory()
    for dtype in ("bfloat16", "float32", "bfloat16"):
        clf = EmbeddingHeadClassifier(EmbeddingHeadConfig(model=llama, dtype=dtype, **TRAIN), llama).fit(task)
        assert clf.fit_stats["compute_dtype"] == dtype


def test_float32_run_records_pure_float32_and_warns_nothing(label_llama, tiny_task_factory):
    llama = str(label_llama)
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)
        clf = EmbeddingHeadClassifier(EmbeddingHeadConfig(model=llama, dtype="float32", **TRAIN), llama)
    clf.fit(tiny_task_factory())
    assert {p.dtype for p in clf.net.parameters()} == {torch.float32}
    assert clf.fit_stats["mixed_precision"] is False and clf.fit_stats["compute_dtype"] == "float32"
