"""A run's numeric precision, decided once: the device, the compute dtype, the master dtype, autocast, bitsandbytes.

Mixed precision, as Trainer's `bf16=True` and `torch.autocast` mean it: the parameters that train (LoRA adapters,
heads, a fully fine-tuned encoder) and the optimizer state stay in float32 (the master dtype); the forward runs in
the compute dtype under autocast; frozen base weights may be stored in the compute dtype (they never receive an
update, so nothing is lost to rounding). Full fine-tuning with the weights themselves in bfloat16 was measured to
lose 6-13 F1 points on the default study (small updates vanish in bf16's 8-bit mantissa), which is why a model
trained in full is loaded in float32 and only computes in bf16.

`dtype: float32` means pure float32 everywhere (no autocast). `auto` is resolved for the hardware
(`hardware.resolve_dtype`): bf16 where native, float32 on an AVX2-only CPU.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .hardware import default_device, dtype_record

MASTER_DTYPE = "float32"


@dataclass(frozen=True)
class Precision:
    """Resolved once per run (`Precision.resolve(cfg.dtype)`) and passed down to loading, training and inference."""

    requested: str          # what the run asked for: auto, float32, bfloat16, float16
    device: str             # cpu or cuda
    compute_dtype: str      # the resolved dtype of the forward (and of a 4-bit base's matmuls)
    master_dtype: str = MASTER_DTYPE  # trained parameters and optimizer state
    warning: str | None = None        # set when the compute dtype is emulated on this device

    @classmethod
    def resolve(cls, requested: str = "auto", device: str | None = None, warn: bool = True) -> "Precision":
        """The precision of a run that asked for `requested` on `device` (default: CUDA when present, else CPU);
        warns once (SlowDtypeWarning) when the compute dtype is emulated there."""
        if isinstance(requested, Precision):
            return requested
        device = device or default_device()
        rec = dtype_record(requested, device, warn=False)
        out = cls(requested=requested, device=device, compute_dtype=rec["resolved_dtype"],
                  warning=rec.get("dtype_warning"))
        if warn:
            out.warn_if_slow()
        return out

    @property
    def compute(self) -> torch.dtype:
        return getattr(torch, self.compute_dtype)

    @property
    def master(self) -> torch.dtype:
        return getattr(torch, self.master_dtype)

    @property
    def mixed(self) -> bool:
        """True when the forward runs in a 16-bit dtype (autocast) over float32 trained weights."""
        return self.compute_dtype != self.master_dtype

    def load_dtype(self, trained_in_full: bool) -> torch.dtype:
        """The dtype a base model's weights are stored in: the master dtype when every weight trains (full
        fine-tuning), else the compute dtype (a frozen base under LoRA, or a model only predicted with)."""
        return self.master if trained_in_full else self.compute

    def autocast(self):
        """The forward's context: torch.autocast in the compute dtype, or nothing in pure float32."""
        if not self.mixed:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda" if self.device.startswith("cuda") else "cpu", dtype=self.compute)

    def bnb_config(self, quantization: str):
        """bitsandbytes settings for `quantization` (none, 8bit, 4bit): a 4-bit base computes in the compute dtype."""
        from transformers import BitsAndBytesConfig

        if quantization == "none":
            return None
        if quantization == "4bit":
            return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=self.compute)
        if quantization == "8bit":
            return BitsAndBytesConfig(load_in_8bit=True)
        raise ValueError(f"quantization must be one of none, 8bit, 4bit; got {quantization!r}")

    def trainer_flags(self) -> dict:
        """TrainingArguments' mixed-precision flags: bf16 autocast where the compute dtype is bf16, fp16 (with its
        loss scaling) only on a GPU; float32: neither."""
        return {"bf16": self.compute_dtype == "bfloat16",
                "fp16": self.compute_dtype == "float16" and self.device.startswith("cuda")}

    def cast_trainable(self, model) -> int:
        """Every parameter that trains, in the master dtype (peft already keeps LoRA weights in float32; a new
        classifier layer or a `modules_to_save` copy would otherwise train in the base's 16 bits). Returns how
        many tensors were cast."""
        cast = 0
        for p in model.parameters():
            if p.requires_grad and p.is_floating_point() and p.dtype != self.master:
                p.data = p.data.to(self.master)
                cast += 1
        return cast

    def warn_if_slow(self) -> None:
        """A SlowDtypeWarning (shown in the notebook) when the compute dtype is emulated on this device."""
        if self.warning:
            import warnings

            from .hardware import SlowDtypeWarning

            warnings.warn(self.warning, SlowDtypeWarning, stacklevel=2)

    def float_heads(self, model, names=("score", "classifier")) -> None:
        """A sequence-classification model's new head (`score` on a causal LM, `classifier` on BERT) in the master
        dtype before peft copies it into `modules_to_save`: it trains, so it keeps float32 weights, and a reload
        does the same so that its probabilities equal the trained model's."""
        for name in names:
            head = getattr(model, name, None)
            if isinstance(head, torch.nn.Module):
                head.to(self.master)

    def record(self) -> dict:
        """What the run record keeps: requested, resolved (= compute) and master dtype, device, any warning."""
        out = {"requested_dtype": self.requested, "resolved_dtype": self.compute_dtype,
               "compute_dtype": self.compute_dtype, "master_dtype": self.master_dtype, "device": self.device,
               "mixed_precision": self.mixed}
        if self.warning:
            out["dtype_warning"] = self.warning
        return out
