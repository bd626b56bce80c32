"""Which compute dtype this machine runs fast: `dtype: auto` resolved from the hardware, never a constant.

bfloat16 halves the memory of a model, but it is only fast where the hardware multiplies in it natively: a CUDA
device that supports it, or a CPU with AMX or AVX512_BF16 (recent Xeons, Zen 4 and later). Elsewhere, e.g. an
AVX2-only CPU such as AMD Zen 3 or most laptops, bf16 is emulated: a matrix product ran at about 1-2 GFLOP/s against
120-180 in float32 on a Zen 3 EPYC, a whole SmolLM2 forward pass 6.6 (256 tokens) to 26 (64 tokens) times slower and
a training step 22 times slower. So `auto` is bfloat16 where native, float32 on any other CPU, and float16 on a GPU
without bfloat16.
"""

from __future__ import annotations

import functools
import os
import time
import warnings

import torch

# Measured on an AVX2-only AMD EPYC (Zen 3), 2 threads, SmolLM2-135M: how much slower bf16 was than float32 there
# (a forward pass at 256 tokens (issue 15), at 64 tokens (bench/results/amd-epyc.json), a training step). Quoted in
# the warning; a guide, not a prediction for every CPU.
EMULATED_BF16_SLOWDOWN = {"inference at 256 tokens": 6.6, "inference at 64 tokens": 26.0, "a training step": 22.0}


class SlowDtypeWarning(UserWarning):
    """A run asked for a dtype that this hardware emulates (e.g. bfloat16 on an AVX2-only CPU)."""


def _cpuinfo_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (x86 'flags', ARM 'Features'); None where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        return None
    return set()


def _torch_cpu_bf16() -> bool | None:
    """torch's own detection (cpuinfo inside ATen), where this torch has it; None when it cannot say."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if not any(callable(c) for c in checks):
        return None
    try:
        return any(bool(c()) for c in checks if callable(c))
    except Exception:  # noqa: BLE001 - a private API: any failure means 'cannot say'
        return None


def _matmul_probe(size: int = 256, repeats: int = 3) -> bool:
    """True when a bf16 matrix product runs at least half as fast as float32 (emulated bf16 is 10-100x slower)."""
    a = torch.randn(size, size)
    timings = {}
    for dtype in (torch.float32, torch.bfloat16):
        x = a.to(dtype)
        x @ x  # warm up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            x @ x
            best = min(best, time.perf_counter() - start)
        timings[dtype] = best
    return timings[torch.bfloat16] <= 2 * timings[torch.float32]


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX or AVX512_BF16; ARM's BF16 extension).

    `LLMCLF_CPU_BF16=0/1` overrides; then torch's CPU detection, /proc/cpuinfo's flags, and, where neither can
    say (no /proc/cpuinfo), a short matmul probe. Cached: asked once per process.
    """
    override = os.environ.get("LLMCLF_CPU_BF16")
    if override in ("0", "1"):
        return override == "1"
    # torch.backends.cpu.get_cpu_capability() says AVX2 / AVX512 only, which does not tell bf16 apart; torch's
    # cpuinfo checks do, on x86
    if _torch_cpu_bf16():
        return True
    flags = _cpuinfo_flags()
    if flags:
        return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})  # 'bf16': ARM's BF16 extension
    return _matmul_probe()


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def native_dtypes(device: str | None = None) -> list[str]:
    """The 16-bit dtypes this device runs natively, best first (float32 always runs)."""
    device = device or default_device()
    if device.startswith("cuda"):
        return ["bfloat16", "float16"] if torch.cuda.is_bf16_supported() else ["float16"]
    return ["bfloat16"] if cpu_has_native_bf16() else []


def resolve_dtype(requested: str, device: str | None = None) -> str:
    """A concrete dtype name for `requested`: 'auto' becomes bfloat16 where native (CUDA with bf16, a CPU with AMX
    or AVX512_BF16), float16 on a GPU without bf16, float32 on any other CPU; any other name is kept."""
    if requested != "auto":
        return requested
    device = device or default_device()
    native = native_dtypes(device)
    if native:
        return native[0]
    return "float32"


def slow_dtype_message(requested: str, device: str | None = None) -> str | None:
    """What to tell a run that asked explicitly for a dtype this device emulates; None when it is fine."""
    device = device or default_device()
    if requested in ("auto", "float32") or requested in native_dtypes(device):
        return None
    if device.startswith("cuda"):
        return f"dtype={requested!r} is not supported natively by this GPU; use dtype='auto'"
    measured = ", ".join(f"{v:g}x for {k}" for k, v in EMULATED_BF16_SLOWDOWN.items())
    return (f"dtype={requested!r} on a CPU without native {requested} (no AMX / AVX512_BF16: "
            f"{torch.backends.cpu.get_cpu_capability()}): it is emulated, likely 5 to 25 times slower than "
            f"float32 (measured on an AVX2 EPYC: {measured}); dtype='auto' picks float32 here")


def dtype_record(requested: str, device: str | None = None, warn: bool = True) -> dict:
    """{'requested_dtype', 'resolved_dtype'[, 'dtype_warning']} for the run record; warns (SlowDtypeWarning, shown in
    the notebook) when the request is slow here."""
    device = device or default_device()
    out = {"requested_dtype": requested, "resolved_dtype": resolve_dtype(requested, device), "device": device}
    message = slow_dtype_message(requested, device)
    if message:
        out["dtype_warning"] = message
        if warn:
            warnings.warn(message, SlowDtypeWarning, stacklevel=2)
    return out
