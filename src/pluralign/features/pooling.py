"""Pooling: one vector per sequence from a model's last hidden states.

Two choices, both mask-aware so padding never leaks into a vector:

- ``last_token``: the hidden state of the last *real* token (NP paper App. C.2: "the last hidden
  state representation of the last token"; VPL App. E.5 uses the same). For a causal LM this is
  the only position that has seen the whole text. The index is read from the attention mask, so
  left and right padding (and any mix) give the same answer.
- ``mean``: the average of the hidden states of real tokens (what sentence encoders such as
  all-MiniLM-L6-v2 are trained with).

Shapes: ``hidden`` is (N, L, H), ``attention_mask`` is (N, L) with 1 on real tokens.
"""

from __future__ import annotations

from typing import Literal

import torch

Pooling = Literal["last_token", "mean"]
POOLINGS: tuple[str, ...] = ("last_token", "mean")


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of every row, (N, L) -> (N,) long.

    Works for right padding (``1 1 1 0 0``), left padding (``0 0 1 1 1``) and no padding, because
    it finds the last 1 rather than counting ones. Rows without any real token are an error.
    """
    mask = attention_mask.bool()
    if not bool(mask.any(dim=1).all()):
        raise ValueError("a sequence has no real tokens (all-zero attention mask row)")
    length = mask.shape[1]
    # argmax returns the first maximum: flip so the first 1 found is the last real token.
    return length - 1 - mask.flip(dims=[1]).int().argmax(dim=1)


def last_token_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state at the last real token, (N, L, H), (N, L) -> (N, H)."""
    index = last_token_index(attention_mask)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states of real tokens, (N, L, H), (N, L) -> (N, H)."""
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (N, L, 1)
    count = mask.sum(dim=1)
    if bool((count == 0).any()):
        raise ValueError("a sequence has no real tokens (all-zero attention mask row)")
    return (hidden * mask).sum(dim=1) / count


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Dispatch on ``pooling`` ("last_token" or "mean"); (N, L, H), (N, L) -> (N, H)."""
    if pooling == "last_token":
        return last_token_pool(hidden, attention_mask)
    if pooling == "mean":
        return mean_pool(hidden, attention_mask)
    raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
