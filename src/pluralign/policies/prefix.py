"""Frozen-prefix caching: run the bottom decoder blocks once per sequence, train on the top.

When LoRA and FiLM sit on the top k blocks only (``NPDPOConfig.trainable_layers``), the
bottom L - k blocks are frozen and unconditioned: their output for a given sequence never
changes during training. The one no-grad pass that computes a sequence's reference log-prob
also records the hidden state entering block L - k (a forward pre-hook); training steps then
feed that state to the top blocks only (the model's ``inputs_embeds`` path with the block list
temporarily cut to its top k), so forward and backward cost about k / L of a full pass.
The result is the same computation as the full model (the test checks logits agree).

Only for layouts whose ``inputs_embeds`` enter block 0 unchanged (Llama/SmolLM2, Qwen2,
Mistral...). GPT-2 adds position embeddings to ``inputs_embeds`` and Gemma scales them, so for
those :func:`supports_prefix_cache` is False and training runs the full model.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from .film import decoder_layers, decoder_layers_name, num_decoder_layers
from .logprobs import TokenizedResponses, summed_logprobs

# model types whose embedding output enters the first block as is
PASS_THROUGH_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral", "smollm3", "olmo", "olmo2"})


def supports_prefix_cache(model: nn.Module) -> bool:
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return getattr(cfg, "model_type", None) in PASS_THROUGH_TYPES


@contextmanager
def capture_block_input(model: nn.Module, block: int) -> Iterator[list[torch.Tensor]]:
    """Inside the body, forward passes append the hidden state entering ``block`` (N, L, H)."""
    seen: list[torch.Tensor] = []

    def hook(module, args, kwargs):
        seen.append((args[0] if args else kwargs["hidden_states"]).detach())

    handle = decoder_layers(model)[block].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


@contextmanager
def top_blocks_only(model: nn.Module, first: int) -> Iterator[None]:
    """Inside the body the model's block list is ``blocks[first:]`` (same module objects, so
    LoRA layers and FiLM hooks are untouched); ``inputs_embeds`` then enter block ``first``."""
    name = decoder_layers_name(model)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    full = getattr(parent, attr)
    if not 0 <= first < len(full):
        raise ValueError(f"first block {first} outside 0..{len(full) - 1}")
    setattr(parent, attr, nn.ModuleList(list(full)[first:]))
    try:
        yield
    finally:
        setattr(parent, attr, full)


def logprobs_from_block(model: nn.Module, first: int, hidden: torch.Tensor,
                        batch: TokenizedResponses) -> torch.Tensor:
    """Summed response log-probs (N,) running only blocks ``first..L-1`` on ``hidden``
    (N, L, H), the state entering block ``first`` (left or right padded like ``batch``)."""
    idx = torch.nonzero(batch.response_mask.any(dim=0))
    start = int(idx[0]) if len(idx) else batch.input_ids.shape[1] - 1
    keep = batch.input_ids.shape[1] - max(start - 1, 0)
    with top_blocks_only(model, first):
        out = model(inputs_embeds=hidden, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                    logits_to_keep=keep, use_cache=False)
    return summed_logprobs(out.logits, batch.input_ids, batch.response_mask)


def pad_hidden(states: list[torch.Tensor], batch: TokenizedResponses) -> torch.Tensor:
    """Place per-sequence hidden states (len_i, H) at the real-token positions of ``batch``."""
    n, length = batch.input_ids.shape
    h = states[0].shape[-1]
    out = states[0].new_zeros(n, length, h)
    real = batch.attention_mask.bool()
    for i, s in enumerate(states):
        out[i, real[i]] = s.to(out.dtype)
    return out


def frozen_blocks(model: nn.Module, trainable_layers: int | None) -> int:
    """Number of bottom blocks that are frozen and unconditioned (0 when all are trained)."""
    return 0 if trainable_layers is None else num_decoder_layers(model) - trainable_layers
