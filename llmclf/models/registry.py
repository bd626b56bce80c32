"""Where a model comes from (a packaged name, a local folder or a Hugging Face id), and tiny random models for tests.

`resolve_model` turns whatever a parameters cell says into something `from_pretrained` can load. The tiny models
are built from a config in code (no download, well under a second) so tests and notebook smoke runs exercise the
real code paths: a Llama-style causal LM with a ChatML chat template, and a BERT-style encoder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..artifacts import ARTIFACTS, cache_dir, fetch


def _hub_offline() -> bool:
    # read the variable now: huggingface_hub only reads it once, at import
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


TINY_MODELS = {"tiny-llama": "tiny_causal_lm", "tiny-bert": "tiny_encoder"}


def _build_tiny(name: str, folder: Path) -> None:
    import tempfile

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}.tmp-"))
    globals()[TINY_MODELS[name]](tmp)
    try:
        os.replace(tmp, folder)  # only a complete folder becomes visible
    except OSError:  # another process won the race; its folder is as good as ours
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def resolve_model(name: str) -> str:
    """A packaged model name, a local folder or a Hugging Face id -> what to pass to `from_pretrained`.

    `tiny-llama` and `tiny-bert` are tiny random models built from a config in code (for notebook defaults and
    tests: they run in seconds and learn nothing useful).
    """
    if name in TINY_MODELS:
        folder = cache_dir() / name
        if not folder.exists():
            from ..locking import build_lock

            with build_lock(folder):  # runs side by side (issue 13): one builds it, the others wait
                if not folder.exists():
                    _build_tiny(name, folder)
        return str(folder)
    packaged = sorted(n for n, a in ARTIFACTS.items() if a.kind == "model")
    if name in ARTIFACTS:
        if ARTIFACTS[name].kind != "model":
            raise ValueError(f"{name!r} is a {ARTIFACTS[name].kind} artifact, not a model; models: {packaged}")
        return str(fetch(name))

    path = Path(name).expanduser()
    # "org/name" is a hub id unless such a folder exists; "./x", "/x", "~/x" are always meant as folders
    if name.startswith((".", "/", "~")) or path.is_dir():
        if not path.exists():
            raise ValueError(f"model folder {name!r} does not exist ({path.absolute()})")
        if not (path / "config.json").is_file():
            raise ValueError(f"{path.absolute()} is not a transformers model folder: it has no config.json")
        return str(path.resolve())

    if name.count("/") > 1 or not name.strip():
        raise ValueError(f"model {name!r} is not a packaged model {packaged}, an existing folder, "
                         "or a Hugging Face id (name or org/name)")
    if _hub_offline():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(name, "config.json")
        except ValueError as e:  # HFValidationError: not a valid repo id
            raise ValueError(f"model {name!r} is not a valid Hugging Face id: {e}") from None
        if not isinstance(cached, str):
            raise ValueError(f"model {name!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set, so it "
                             f"cannot be downloaded; use a packaged model {packaged} or a local folder")
    return name


# ---------------------------------------------------------------------------------------------------------------
# tiny random models

# enough everyday words that short test sentences are not all [UNK]; callers add their own with `words`
_COMMON_WORDS = """
the a an and or of to in on for with by from at as is are was were be been it this that these those not no yes
i you he she we they my your his her our their me him us them what which who how why when where there here
all any some more most many much one two three four five six seven eight nine ten first last new old good bad
great small big long short high low same other only also very just than then so but if into over under about
up down out off again after before because between during through can could will would should may might must do
does did done have has had make made get got go went say said see saw know use used work find give take tell
time year day week month people man woman child world life hand part place case point group company number
government system program question fact money business market price bank growth economy sales profit shares
sport game team match player win won cup club season goal music film show star award tv book election party
minister vote law court police technology phone computer software internet data mobile device patent method
invention claim apparatus process material chemical electric energy engine vehicle signal circuit medical
label answer text category class positive negative neutral topic news politics entertainment tech
system user assistant
""".split()
_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _word_level_tokenizer(specials: list[str], unk: str, words: Iterable[str]):
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    vocab: dict[str, int] = {}
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,;:!?'\"()-/%$&")
    for tok in [*specials, *letters, *_COMMON_WORDS, *(w.lower() for w in words)]:
        vocab.setdefault(tok, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token=unk))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # special tokens are matched before normalizing and splitting, so "<|im_start|>" stays one token
    tok.add_special_tokens(specials)
    return tok


def tiny_causal_lm(folder: str | Path, vocab_size: int | None = None, seed: int = 0,
                   words: Iterable[str] = ()) -> Path:
    """Save a tiny random Llama-style causal LM and its tokenizer (with a ChatML chat template) to `folder`.

    vocab_size: the embedding size, at least the tokenizer's (default: equal); a larger one mimics real models whose
    embedding matrix has padding rows. words: extra vocabulary, so a test's own texts are not all <unk>.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>"]
    backend = _word_level_tokenizer(specials, "<unk>", words)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"], model_max_length=512,
        model_input_names=["input_ids", "attention_mask"],  # a causal LM takes no token_type_ids
    )
    tokenizer.chat_template = _CHAT_TEMPLATE
    n_vocab = len(tokenizer)
    if vocab_size is None:
        vocab_size = n_vocab
    if vocab_size < n_vocab:
        raise ValueError(f"vocab_size={vocab_size} is smaller than the tokenizer's {n_vocab} tokens")

    config = LlamaConfig(
        # hidden 64 rather than smaller: bitsandbytes' 4-bit CPU inference kernel needs rows of at least 64
        vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
        intermediate_size=128, max_position_embeddings=512, tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # seed the weights without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_encoder(folder: str | Path, seed: int = 0, words: Iterable[str] = ()) -> Path:
    """Save a tiny random BERT-style encoder and its tokenizer ([CLS] text [SEP]) to `folder`."""
    import torch
    from tokenizers.processors import TemplateProcessing
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = _word_level_tokenizer(specials, "[UNK]", words)
    cls, sep = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]",
        mask_token="[MASK]", model_max_length=512,
    )
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
