"""Latent-conditioned reward decoder r(y | z) = MLP2([MLP1(e(y)) ‖ z]) (NP paper App. C, eq. 22).

Shared by NP-BTL (deterministic z) and VPL (z drawn from q(z | context)).

The parameters are those of the paper's form (MLP1 = ``embed``, MLP2 = ``head`` with a first
layer on [e ‖ z]), so checkpoints of either form load into the other. What is computed differs,
exactly in real arithmetic (fp32 rounding aside):

* MLP2's first layer on [e ‖ z] is W·[e ‖ z] + b = W_e·e + W_z·z + b. The z half is the same
  for all of a user's options, so it is computed once per user (B rows), not once per option.
* e = MLP1(y) ends in a linear layer A·h + c that feeds W_e with no activation between, so
  W_e·e = (W_e A)·h + W_e c: one (H × H') matrix instead of two per option (when that is fewer
  multiplications, true for the paper's 256-wide layers).
* The option half W_e·e(y) does not depend on the user: :meth:`option_part` computes it once per
  candidate set (``prepare_candidates`` in serving) and :meth:`score` finishes it for any
  number of users.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import MLP


class ConditionedRewardDecoder(nn.Module):
    """Scalar reward of every option, conditioned on one z per row.

    Args:
        option_dim: D; z_dim: size of z (0 gives an unconditioned reward MLP2(MLP1(y))).
        embed_dim: width of MLP1's output e_y (NP paper: 256).

    forward(options (B, N, D) or (1, N, D), z (B, z_dim)) -> (B, N); options with batch 1 are
    shared by all B users (their option part is computed once).
    """

    def __init__(self, option_dim: int, z_dim: int, embed_dim: int = 256,
                 hidden: Sequence[int] = (256, 256), act: str = "gelu"):
        super().__init__()
        self.option_dim, self.z_dim, self.embed_dim = option_dim, z_dim, embed_dim
        self.embed = MLP(option_dim, embed_dim, hidden, act)
        self.head = MLP(embed_dim + z_dim, 1, hidden, act)
        self._fused_cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None

    def train(self, mode: bool = True) -> "ConditionedRewardDecoder":
        self._fused_cache = None  # the loop validates after optimiser steps: never reuse across them
        return super().train(mode)

    # --- the two halves of MLP2's first layer ----------------------------------------------
    @property
    def _first(self) -> nn.Linear:
        return self.head.net[0]

    def _fused(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(W_e A, W_e c) of the module doc, or None when fusing would cost more.

        Outside autograd (evaluation, serving) the product is cached until a parameter changes.
        The version counters alone do not say so: PyTorch's fused Adam (``fused=True``, what
        :func:`pluralign.train.loop.build_optimizer` uses) updates parameters in place without
        bumping them, and a stale product made every validation in a training run score the
        first validation's weights. So the key also holds the tensors' sums (a pass over
        ~66k numbers, ~20 µs), and switching between train and eval mode drops the cache."""
        last = self.embed.net[-1]
        out_w, mid = self._first.weight.shape[0], last.weight.shape[1]
        if out_w * mid > self.embed_dim * (out_w + mid):
            return None
        w_e = self._first.weight[:, : self.embed_dim]
        if torch.is_grad_enabled():
            return w_e @ last.weight, w_e @ last.bias
        # inference tensors (a model built under torch.inference_mode) have no version counter
        key = tuple((t.data_ptr(), -1 if t.is_inference() else t._version, t.dtype, t.device,
                     float(t.detach().sum())) for t in (self._first.weight, last.weight, last.bias))
        if self._fused_cache is None or self._fused_cache[0] != key:
            with torch.autocast(w_e.device.type, enabled=False):  # cache the fp32 product
                self._fused_cache = (key, w_e @ last.weight, w_e @ last.bias)
        return self._fused_cache[1], self._fused_cache[2]

    def option_part(self, options: torch.Tensor) -> torch.Tensor:
        """W_e·MLP1(y) for every option: (..., D) -> (..., H); independent of the user."""
        if options.shape[-1] != self.option_dim:
            raise ValueError(f"options must have {self.option_dim} features, got {tuple(options.shape)}")
        fused = self._fused()
        if fused is None:
            e = self.embed(options)
            return F.linear(e, self._first.weight[:, : self.embed_dim])
        h = self.embed.net[:-1](options)
        return F.linear(h, fused[0].to(h.dtype), fused[1].to(h.dtype))

    def user_part(self, z: torch.Tensor) -> torch.Tensor:
        """W_z·z + b of MLP2's first layer: (B, z_dim) -> (B, H), once per user."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be (B, {self.z_dim}), got {tuple(z.shape)}")
        first = self._first
        if self.z_dim == 0:
            return first.bias.expand(z.shape[0], -1)
        return F.linear(z, first.weight[:, self.embed_dim:], first.bias)

    def finish(self, option_part: torch.Tensor, user_part: torch.Tensor) -> torch.Tensor:
        """Rewards from an option part (..., H) and a user part broadcast against it: the rest
        of MLP2 on their sum."""
        return self.head.net[1:](option_part + user_part.to(option_part.dtype)).squeeze(-1)

    def score(self, option_part: torch.Tensor, user_part: torch.Tensor) -> torch.Tensor:
        """Finish the rewards: option part (B or 1, N, H) and user part (B, H) -> (B, N)."""
        if option_part.dim() != 3 or option_part.shape[0] not in (1, user_part.shape[0]):
            raise ValueError(f"option part must be (1 or {user_part.shape[0]}, N, H), "
                             f"got {tuple(option_part.shape)}")
        return self.finish(option_part, user_part.unsqueeze(1))

    def forward(self, options: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if options.dim() != 3 or options.shape[-1] != self.option_dim:
            raise ValueError(f"options must be (B, N, {self.option_dim}), got {tuple(options.shape)}")
        if z.dim() != 2 or z.shape[1] != self.z_dim or options.shape[0] not in (1, z.shape[0]):
            raise ValueError(f"z must be ({options.shape[0]}, {self.z_dim}), got {tuple(z.shape)}")
        return self.score(self.option_part(options), self.user_part(z))

    def forward_concat(self, options: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The paper's form, MLP2([MLP1(y) ‖ z]) per option (reference for tests and benchmarks)."""
        e = self.embed(options)
        zz = z.unsqueeze(1).expand(e.shape[0], options.shape[1], -1)
        return self.head(torch.cat([e, zz], dim=-1)).squeeze(-1)
