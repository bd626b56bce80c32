"""Texts to tensors and hidden states to vectors: what the approaches and the frozen baseline share.

Batches are sorted by length so that padding stays small; pooling reads the attention mask (never pad ids), and
position ids follow the mask, so left- and right-padded batches give the states of unpadded inputs.
"""

from __future__ import annotations

import numpy as np
import torch


def length_batches(lengths, batch_size: int):
    """Index arrays of batches of items sorted by length (stable): short with short, so padding, and the compute
    spent on it, stays small. The caller writes results back at these indices, which restores the order."""
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def encode(tokenizer, texts: list[str], max_length: int, append_token: int | None = None) -> dict:
    """Tokenize and truncate to max_length; with `append_token`, truncate one shorter and end with that token."""
    if append_token is None:
        return tokenizer(list(texts), truncation=True, max_length=max_length)
    enc = tokenizer(list(texts), truncation=True, max_length=max_length - 1)
    enc["input_ids"] = [ids + [append_token] for ids in enc["input_ids"]]
    enc["attention_mask"] = [mask + [1] for mask in enc["attention_mask"]]
    return enc


def encode_batch(tokenizer, texts: list[str], max_length: int, append_token: int | None = None) -> dict:
    """`encode`, padded into tensors (the tokenizer's padding side)."""
    enc = encode(tokenizer, texts, max_length, append_token)
    return tokenizer.pad({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]},
                         return_tensors="pt")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """(batch, seq, hidden) -> (batch, hidden): the last real token's state, or the mean over real tokens."""
    mask = attention_mask.to(hidden.dtype)
    if mode == "mean":
        return (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    if mode == "last":
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        last = (positions * attention_mask).argmax(dim=1)  # rightmost real token, whatever the padding side
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"pooling must be 'last' or 'mean', got {mode!r}")


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def token_budget(tokenizer, texts: list[str], max_length: int, appends_token: bool = False) -> dict:
    """The input budget of a model that reads the first `max_length` tokens: special tokens (and an appended
    token such as EOS) come off it; a text is cut when its own tokens exceed what is left."""
    reserved = tokenizer.num_special_tokens_to_add() + int(appends_token)
    text_tokens = max_length - reserved
    lengths = [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]]
    return {"max_length": int(max_length), "text_tokens": int(text_tokens),
            "truncated_share": float(np.mean([n > text_tokens for n in lengths])) if lengths else None}
