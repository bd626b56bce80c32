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


def encode_windows(tokenizer, texts: list[str], max_length: int, append_token: int | None = None, *,
                   stride: int = 0, max_chunks: int = 1) -> dict:
    """Every text as windows of `max_length` tokens (`encode` of each window: special tokens, and `append_token`
    at its end), `stride` tokens shared with the window before, the first `max_chunks` windows of a text kept.
    `owner[k]` is the text of window k (windows in text order). A text that fits one window gives exactly its
    `encode` ids. Needs a fast (Rust) tokenizer, whose overflow windows these are."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("long_text='chunks' needs a fast tokenizer (tokenizer.json): this model's tokenizer is a "
                         "Python one; use long_text='truncate'")
    room = max_length if append_token is None else max_length - 1
    enc = tokenizer(list(texts), truncation=True, max_length=room, stride=stride, return_overflowing_tokens=True)
    ids, mask, owner, seen = [], [], [], {}
    for k, text in enumerate(enc["overflow_to_sample_mapping"]):
        seen[text] = seen.get(text, 0) + 1
        if seen[text] > max_chunks:
            continue
        window = list(enc["input_ids"][k]) + ([] if append_token is None else [append_token])
        ids.append(window)
        mask.append([1] * len(window))
        owner.append(int(text))
    return {"input_ids": ids, "attention_mask": mask, "owner": owner}


def pad_windows(tokenizer, windows: dict) -> dict:
    """`encode_windows`' output padded into tensors, with `chunk_owner` (window -> text index)."""
    batch = tokenizer.pad({"input_ids": windows["input_ids"], "attention_mask": windows["attention_mask"]},
                          return_tensors="pt")
    batch["chunk_owner"] = torch.as_tensor(windows["owner"], dtype=torch.long)
    return batch


def pool_windows(values: torch.Tensor, owner: torch.Tensor, mode: str) -> torch.Tensor:
    """(windows, d) -> (texts, d): the mean or the max over each text's windows; `owner` holds 0..texts-1, each
    at least once. With one window a text, the values themselves."""
    n = int(owner.max()) + 1
    index = owner.to(values.device).unsqueeze(1).expand_as(values)
    if mode == "mean":
        total = torch.zeros((n, values.shape[1]), dtype=values.dtype, device=values.device).scatter_add(0, index, values)
        counts = torch.bincount(owner.to(values.device), minlength=n).to(values.dtype).unsqueeze(1)
        return total / counts
    if mode == "max":
        start = torch.full((n, values.shape[1]), float("-inf"), dtype=values.dtype, device=values.device)
        return start.scatter_reduce(0, index, values, reduce="amax", include_self=True)
    raise ValueError(f"chunk_pooling must be 'mean' or 'max', got {mode!r}")


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


def token_budget(tokenizer, texts: list[str], max_length: int, appends_token: bool = False, *,
                 long_text: str = "truncate", max_chunks: int = 1, stride: int = 0) -> dict:
    """The input budget of a model that reads the first `max_length` tokens (or, with `long_text='chunks'`, up to
    `max_chunks` windows of them, `stride` tokens shared): special tokens (and an appended token such as EOS) come
    off each window; a text is cut when its own tokens exceed what the windows cover. `tokens_read` is the mean
    number of a text's own tokens the model reads, `text_length` the mean it has."""
    reserved = tokenizer.num_special_tokens_to_add() + int(appends_token)
    text_tokens = max_length - reserved
    covered = text_tokens
    if long_text == "chunks":
        covered = text_tokens + (max_chunks - 1) * (text_tokens - stride)
    lengths = np.array([len(ids) for ids in tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]])
    out = {"max_length": int(max_length), "text_tokens": int(text_tokens),
           "truncated_share": float(np.mean(lengths > covered)) if len(lengths) else None,
           "long_text": long_text, "tokens_read": float(np.minimum(lengths, covered).mean()) if len(lengths) else None,
           "text_length": float(lengths.mean()) if len(lengths) else None}
    if long_text == "chunks":
        windows = 1 + np.ceil(np.maximum(np.minimum(lengths, covered) - text_tokens, 0) / (text_tokens - stride))
        out.update(max_chunks=int(max_chunks), chunk_stride=int(stride), text_tokens_covered=int(covered),
                   windows_per_text=float(windows.mean()) if len(lengths) else None)
    return out
