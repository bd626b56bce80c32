"""Models: names to folders (packaged models from pinned wheels, tiny random models built in code, hub ids,
local folders) in `registry`, and loading them with a dtype, bitsandbytes quantization and LoRA in `loading`.

Imports only `llmclf.config` and `llmclf.artifacts` (never data or anything above).
"""

from .registry import resolve_model

__all__ = ["resolve_model"]
