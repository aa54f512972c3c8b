"""Set encoders: a user's context pairs ``{(y_w, y_l)}`` -> one vector, for any number of pairs.

Both encoders take padded tensors with a boolean mask, are permutation invariant over the
context (a shuffled context gives the same z) and mask-correct (what sits in padded slots never
reaches the output). Both are defined for the empty context: pooling an empty set gives the
zero vector, so z(∅) is the outer MLP's learned response to "nothing observed".

- :class:`DeepSetEncoder` — NP paper eq. 5 / App. C.1: z = h2(pool_j h1([y_w ‖ y_l])).
  The paper pools with the mean (``pooling="mean"``); ``"sum"`` keeps the evidence count.
- :class:`AttentionSetEncoder` — NP paper eq. 21 / App. C.2.1:
  z = h2(sum_j MultiHeadAttn(W^T [e_w ‖ e_l])_j), 8 heads, dropout 0.1.

``pair_symmetry="antisymmetric"`` (not in the papers; off by default) makes the evidence of a
pair change sign when the pair is flipped: the DeepSet's pair embedding becomes
h(a, b) = φ([a ‖ b]) − φ([b ‖ a]), so h(b, a) = −h(a, b) exactly and, with either pooling, a
context with every pair flipped pools to −pool(context). A flipped context is then never out of
distribution for the outer MLP's input space along the pair axis: it is the mirror image of a
real one. For attention the same difference is taken of the attention outputs of the context
and of the whole flipped context, so flipping *every* pair negates the pooled vector (in eval
mode; dropout differs between the two passes in training).
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import MLP

Pooling = Literal["mean", "sum"]
PairSymmetry = Literal["none", "antisymmetric"]
PAIR_SYMMETRIES = ("none", "antisymmetric")


def _check_symmetry(pair_symmetry: str) -> None:
    if pair_symmetry not in PAIR_SYMMETRIES:
        raise ValueError(f"pair_symmetry must be one of {PAIR_SYMMETRIES}, got {pair_symmetry!r}")


def _check_context(chosen: torch.Tensor, rejected: torch.Tensor, mask: torch.Tensor,
                   option_dim: int) -> None:
    if chosen.shape != rejected.shape or chosen.dim() != 3:
        raise ValueError(f"context chosen/rejected must both be (B, C, D); got "
                         f"{tuple(chosen.shape)} and {tuple(rejected.shape)}")
    if mask.shape != chosen.shape[:2]:
        raise ValueError(f"context mask must be (B, C) = {tuple(chosen.shape[:2])}, "
                         f"got {tuple(mask.shape)}")
    if chosen.shape[-1] != option_dim:
        raise ValueError(f"options have {chosen.shape[-1]} features, encoder expects {option_dim}")


def masked_pool(h: torch.Tensor, mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Pool ``h`` (B, C, H) over the real entries of ``mask`` (B, C) -> (B, H).

    Padded entries are replaced (not multiplied) by zero, so even NaN padding cannot leak.
    An empty row pools to zeros under both ``sum`` and ``mean``.
    """
    m = mask.unsqueeze(-1)
    total = torch.where(m, h, torch.zeros((), dtype=h.dtype, device=h.device)).sum(dim=1)
    if pooling == "sum":
        return total
    if pooling == "mean":
        return total / mask.sum(dim=1, keepdim=True).clamp(min=1).to(h.dtype)
    raise ValueError(f"pooling must be 'mean' or 'sum', got {pooling!r}")


class _SetEncoder(nn.Module):
    """What both set encoders share: option checks and z = outer(pooled(context))."""

    def __init__(self, option_dim: int, z_dim: int, pooling: Pooling, pair_symmetry: PairSymmetry):
        super().__init__()
        if pooling not in ("mean", "sum"):
            raise ValueError(f"pooling must be 'mean' or 'sum', got {pooling!r}")
        _check_symmetry(pair_symmetry)
        self.option_dim, self.z_dim, self.pooling = option_dim, z_dim, pooling
        self.pair_symmetry = pair_symmetry

    def forward(self, chosen: torch.Tensor, rejected: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        return self.outer(self.pooled(chosen, rejected, mask))


class DeepSetEncoder(_SetEncoder):
    """z = outer(pool_j pair([chosen_j ‖ rejected_j])) over the masked context.

    Args:
        option_dim: D, features of one option.
        z_dim: size of z.
        pair_dim: width of the per-pair embedding h1 (NP paper: 256).
        hidden: hidden widths of both MLPs.
        pooling: ``"mean"`` (NP paper eq. 5) or ``"sum"``.
        pair_symmetry: ``"none"`` (NP paper) or ``"antisymmetric"``: h1(a, b) = φ(a‖b) − φ(b‖a)
            (same parameters, so checkpoints of either kind load into the other's shapes).

    forward(chosen (B, C, D), rejected (B, C, D), mask (B, C) bool) -> (B, z_dim).
    """

    def __init__(self, option_dim: int, z_dim: int = 256, pair_dim: int = 256,
                 hidden: Sequence[int] = (256, 256), act: str = "gelu", pooling: Pooling = "mean",
                 pair_symmetry: PairSymmetry = "none"):
        super().__init__(option_dim, z_dim, pooling, pair_symmetry)
        self.pair = MLP(2 * option_dim, pair_dim, hidden, act)
        self.outer = MLP(pair_dim, z_dim, hidden, act)

    def pooled(self, chosen: torch.Tensor, rejected: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        """pool_j h1(chosen_j, rejected_j): the representation before the outer MLP, (B, pair_dim)."""
        _check_context(chosen, rejected, mask, self.option_dim)
        # h1 ends in a linear layer W·g + b and pooling is linear, so pool(W·g + b) =
        # W·pool(g) + b·(number pooled: the count for a sum, 1 or 0 for a mean): the last layer
        # runs once per user instead of once per pair (exact up to rounding).
        body, last = self.pair.net[:-1], self.pair.net[-1]
        g = body(torch.cat([chosen, rejected], dim=-1))  # (B, C, hidden)
        if self.pair_symmetry == "antisymmetric":  # the biases cancel in h(a,b) - h(b,a)
            g = g - body(torch.cat([rejected, chosen], dim=-1))
            return F.linear(masked_pool(g, mask, self.pooling), last.weight)
        out = F.linear(masked_pool(g, mask, self.pooling), last.weight)
        count = mask.sum(dim=1, keepdim=True)
        weight = count if self.pooling == "sum" else (count > 0)
        return out + weight.to(out.dtype) * last.bias.to(out.dtype)


class AttentionSetEncoder(_SetEncoder):
    """z = outer(pool_j MHA(W [chosen_j ‖ rejected_j])_j), self-attention among context pairs.

    Self-attention is permutation equivariant and the pooling invariant, so z is invariant.
    Padded pairs are excluded as keys (key-padding mask) and as pooled outputs.

    forward(chosen (B, C, D), rejected (B, C, D), mask (B, C) bool) -> (B, z_dim).
    """

    def __init__(self, option_dim: int, z_dim: int = 256, model_dim: int = 256, n_heads: int = 8,
                 dropout: float = 0.1, hidden: Sequence[int] = (256, 256), act: str = "gelu",
                 pooling: Pooling = "sum", pair_symmetry: PairSymmetry = "none"):
        super().__init__(option_dim, z_dim, pooling, pair_symmetry)
        if model_dim % n_heads:
            raise ValueError(f"model_dim ({model_dim}) must be divisible by n_heads ({n_heads})")
        self.model_dim = model_dim
        self.proj = nn.Linear(2 * option_dim, model_dim)
        self.attn = nn.MultiheadAttention(model_dim, n_heads, dropout=dropout, batch_first=True)
        self.outer = MLP(model_dim, z_dim, hidden, act)

    def pooled(self, chosen: torch.Tensor, rejected: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        """The pooled attention outputs before the outer MLP, (B, model_dim)."""
        _check_context(chosen, rejected, mask, self.option_dim)
        mask = mask.bool()
        if chosen.shape[1] == 0:
            return chosen.new_zeros(chosen.shape[0], self.model_dim)
        out = self._attend(chosen, rejected, mask)
        if self.pair_symmetry == "antisymmetric":
            out = out - self._attend(rejected, chosen, mask)
        return masked_pool(out, mask, self.pooling)

    def _attend(self, chosen: torch.Tensor, rejected: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """Self-attention among the context pairs, (B, C, model_dim); padded rows are junk."""
        x = self.proj(torch.cat([chosen, rejected], dim=-1))  # (B, C, model_dim)
        # Zero the padded inputs so their content cannot matter, and let rows with no real pair
        # attend to their (zeroed) padding: an all-masked softmax row would be NaN. Those rows'
        # outputs are discarded by the masked pooling below.
        x = torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))
        empty = ~mask.any(dim=1, keepdim=True)  # (B, 1)
        key_padding = ~mask & ~empty
        out, _ = self.attn(x, x, x, key_padding_mask=key_padding, need_weights=False)
        return out
