"""Reference log-probs pi_ref(y | x) from the policy's own weights (no second model).

DPO needs log pi_ref for every response (NP paper eq. 24). The reference is the base LM: the
same module with LoRA adapters disabled (PEFT's ``disable_adapter``) and FiLM inactive. The
published code deep-copied the whole LLM for this (DESIGN.md §4); here it costs no memory, and
because the reference never changes during training it can be computed once per pair
(:func:`precompute_reference`) and looked up, halving the forward passes of a training step.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Iterator, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .logprobs import TokenizedResponses, collate_tokenized, sequence_logprobs


@contextmanager
def reference_mode(lm: nn.Module) -> Iterator[None]:
    """Inside the body ``lm`` behaves as the base model: LoRA adapters off (if any).

    FiLM is inactive unless a ``film.conditioned(z)`` context is open; callers must not open one.
    """
    ctx = lm.disable_adapter() if hasattr(lm, "disable_adapter") and hasattr(lm, "peft_config") else nullcontext()
    with ctx:
        yield


@torch.no_grad()
def reference_logprobs(lm: nn.Module, batch: TokenizedResponses) -> torch.Tensor:
    """log pi_ref of every sequence in ``batch``: (N,). Dropout off, no gradients."""
    was_training = lm.training
    lm.eval()
    try:
        with reference_mode(lm):
            return sequence_logprobs(lm, batch)
    finally:
        lm.train(was_training)


def precompute_reference(lm: nn.Module, sequences: Sequence[tuple[list[int], list[int]]], *,
                         pad_token_id: int, batch_size: int = 16, device: torch.device | str = "cpu",
                         progress: bool = True, capture_block: int = 0,
                         ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    """log pi_ref of every (prompt_ids, response_ids) sequence, batched: (len(sequences),).

    Sequences are sorted by length before batching so little compute goes to padding. With
    ``capture_block`` > 0 also returns, per sequence, the hidden state entering that block
    ((len_i, H), real tokens only; :mod:`pluralign.policies.prefix`) from the same pass.
    """
    from .prefix import capture_block_input

    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i][0]) + len(sequences[i][1]))
    out = torch.empty(len(sequences), dtype=torch.float32)
    states: list[torch.Tensor | None] = [None] * len(sequences)
    starts = range(0, len(order), batch_size)
    for s in tqdm(starts, desc="reference log-probs", disable=not progress, leave=False):
        idx = order[s:s + batch_size]
        batch = collate_tokenized([sequences[i] for i in idx], pad_token_id=pad_token_id,
                                  padding_side="left").to(device)
        if capture_block:
            with capture_block_input(lm, capture_block) as seen:
                logps = reference_logprobs(lm, batch)
            real = batch.attention_mask.bool()
            for row, i in enumerate(idx):
                states[i] = seen[0][row][real[row]].cpu()
        else:
            logps = reference_logprobs(lm, batch)
        out[torch.tensor(idx)] = logps.float().cpu()
    return (out, states) if capture_block else out
