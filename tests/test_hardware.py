"""dtype 'auto' follows the hardware: the CPU's and GPU's detection mocked, so these run on any machine."""

import warnings

import pytest
import torch

from llmclf.models import hardware
from llmclf.models.hardware import SlowDtypeWarning, dtype_record, resolve_dtype


@pytest.fixture
def cpu(monkeypatch):
    """Set what the CPU reports: cpu(torch_says=..., flags=...) -> mocks torch's check and /proc/cpuinfo."""
    monkeypatch.delenv("LLMCLF_CPU_BF16", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def set_cpu(torch_says=None, flags=None, probe=False):
        monkeypatch.setattr(hardware, "_torch_cpu_bf16", lambda: torch_says)
        monkeypatch.setattr(hardware, "_cpuinfo_flags", lambda: flags)
        monkeypatch.setattr(hardware, "_matmul_probe", lambda: probe)
        hardware.cpu_has_native_bf16.cache_clear()

    yield set_cpu
    hardware.cpu_has_native_bf16.cache_clear()


AVX2_FLAGS = {"sse4_2", "avx", "avx2", "fma"}


def test_auto_on_an_avx2_cpu_is_float32(cpu):
    cpu(torch_says=False, flags=AVX2_FLAGS)
    assert resolve_dtype("auto") == "float32"
    assert dtype_record("auto") == {"requested_dtype": "auto", "resolved_dtype": "float32", "device": "cpu"}


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_auto_on_a_cpu_with_native_bf16_is_bfloat16(cpu, flag):
    cpu(torch_says=False, flags=AVX2_FLAGS | {"avx512f", flag})
    assert resolve_dtype("auto") == "bfloat16"


def test_torch_detection_and_the_probe(cpu):
    cpu(torch_says=True, flags=AVX2_FLAGS)  # torch's cpuinfo sees AMX / AVX512_BF16
    assert resolve_dtype("auto") == "bfloat16"
    cpu(torch_says=None, flags=None, probe=True)  # no /proc/cpuinfo (macOS): the matmul probe decides
    assert resolve_dtype("auto") == "bfloat16"
    cpu(torch_says=None, flags=None, probe=False)
    assert resolve_dtype("auto") == "float32"


def test_detection_is_cached_and_can_be_overridden(cpu, monkeypatch):
    calls = []
    cpu(flags=AVX2_FLAGS)
    monkeypatch.setattr(hardware, "_cpuinfo_flags", lambda: calls.append(1) or AVX2_FLAGS)
    for _ in range(3):
        resolve_dtype("auto")
    assert len(calls) == 1
    monkeypatch.setenv("LLMCLF_CPU_BF16", "1")
    hardware.cpu_has_native_bf16.cache_clear()
    assert resolve_dtype("auto") == "bfloat16"


def test_explicit_dtypes_are_kept(cpu):
    cpu(flags=AVX2_FLAGS)
    for name in ("float32", "bfloat16", "float16"):
        assert resolve_dtype(name) == name


@pytest.mark.parametrize("bf16, expected", [(True, "bfloat16"), (False, "float16")])
def test_auto_on_cuda(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert resolve_dtype("auto") == expected
    assert resolve_dtype("auto", device="cuda") == expected
    assert hardware.slow_dtype_message("float16", "cuda") is None


def test_bfloat16_on_a_cpu_without_it_warns_and_records(cpu):
    cpu(torch_says=False, flags=AVX2_FLAGS)
    with pytest.warns(SlowDtypeWarning, match="slower"):
        record = dtype_record("bfloat16")
    assert record["resolved_dtype"] == "bfloat16"  # the request is honoured, and said to be slow
    assert "slower" in record["dtype_warning"] and "auto" in record["dtype_warning"]


def test_no_warning_where_bf16_is_native_or_auto(cpu):
    cpu(flags={"avx2", "amx_bf16"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "dtype_warning" not in dtype_record("bfloat16")
        cpu(flags=AVX2_FLAGS)
        assert "dtype_warning" not in dtype_record("auto")
        assert "dtype_warning" not in dtype_record("float32")


def test_quantization_compute_dtype_follows_auto(cpu):
    pytest.importorskip("bitsandbytes")
    from llmclf.models.loading import quantization_config

    cpu(flags=AVX2_FLAGS)
    assert quantization_config("4bit", "auto").bnb_4bit_compute_dtype == torch.float32
    cpu(flags={"amx_bf16"})
    assert quantization_config("4bit", "auto").bnb_4bit_compute_dtype == torch.bfloat16


def test_training_flags_follow_the_resolved_dtype(cpu, tmp_path):
    from llmclf.approaches.training import training_arguments
    from llmclf.config import EmbeddingHeadConfig

    cpu(flags=AVX2_FLAGS)
    args = training_arguments(EmbeddingHeadConfig(dtype="auto"), str(tmp_path))
    assert not args.bf16 and not args.fp16
    cpu(flags={"avx512_bf16"})
    args = training_arguments(EmbeddingHeadConfig(dtype="auto"), str(tmp_path))
    assert args.bf16 and not args.fp16


def test_real_detection_runs():
    hardware.cpu_has_native_bf16.cache_clear()
    assert resolve_dtype("auto") in ("float32", "bfloat16", "float16")


def test_the_record_carries_the_requested_and_resolved_dtype(tiny_llama, tiny_task_factory, cpu):
    from llmclf.approaches.embedding_head import EmbeddingHeadClassifier
    from llmclf.config import EmbeddingHeadConfig
    from llmclf.study.experiment import fit_and_evaluate

    cpu(torch_says=False, flags=AVX2_FLAGS)
    cfg = EmbeddingHeadConfig(model=str(tiny_llama), max_length=16, batch_size=8)
    result = fit_and_evaluate(EmbeddingHeadClassifier(cfg, str(tiny_llama)), tiny_task_factory())
    assert result.extra["requested_dtype"] == "auto" and result.extra["resolved_dtype"] == "float32"
    assert "dtype_warning" not in result.extra
