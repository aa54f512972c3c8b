"""Rewards of a fixed set of options under many latents at once, the inner loop of query selection.

Scoring a pool for P posterior particles costs P x N decoder evaluations. The decoder is
r(y | z) = MLP2([MLP1(y) ‖ z]) (NP paper App. C, eq. 22), so MLP1(y) and MLP2's first layer on
the option half do not depend on z: :class:`OptionScorer` computes them once per option set,
and only the rest of MLP2 runs per (z, option) — for the 2 x 256 MLPs that halves the cost and
makes the per-user work independent of the option dimension D. Models without that decoder go
through ``model.reward`` (same numbers, slower).
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.decoder import ConditionedRewardDecoder

_CHUNK_ELEMENTS = 1 << 22  # hidden activations per chunk (16 MB of float32)


class OptionScorer:
    """r(option_n | z) for the N options given at construction and any batch of z.

    Args:
        model: a reward model with a latent (``reward(options (B, N, D), z (B, dz))``).
        options: (N, D) option vectors.
    Call with z (..., K, dz) and optionally ``index`` (..., S) (options to score per leading
    row) -> rewards (..., K, N) or (..., K, S).
    """

    @torch.no_grad()
    def __init__(self, model: nn.Module, options: torch.Tensor):
        self.model, self.options = model, options
        dec = getattr(model, "decoder", None)
        self.fast = isinstance(dec, ConditionedRewardDecoder)
        if self.fast:
            self.decoder = dec
            self.option_part = dec.option_part(options)  # (N, H), independent of z

    @property
    def n_options(self) -> int:
        return int(self.options.shape[0])

    @torch.no_grad()
    def __call__(self, z: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        lead, (k, dz) = z.shape[:-2], z.shape[-2:]
        zf = z.reshape(-1, k, dz)
        idx = None if index is None else index.reshape(-1, index.shape[-1])
        if idx is not None and idx.shape[0] != zf.shape[0]:
            raise ValueError(f"index leading shape {tuple(index.shape[:-1])} != z's {tuple(lead)}")
        n = self.n_options if idx is None else idx.shape[1]
        width = self.option_part.shape[1] if self.fast else 1
        step = max(1, _CHUNK_ELEMENTS // max(1, k * n * width))
        out = [self._score(zf[i: i + step], None if idx is None else idx[i: i + step])
               for i in range(0, zf.shape[0], step)]
        return torch.cat(out).reshape(*lead, k, n)

    def _score(self, z: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        if self.fast:
            opt = self.option_part if idx is None else self.option_part[idx]  # (N, H) | (L, S, H)
            zp = self.decoder.user_part(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:2], -1)  # (L, K, H)
            return self.decoder.finish(opt.unsqueeze(0) if idx is None else opt.unsqueeze(1),
                                       zp.unsqueeze(-2))  # (L, K, N)
        lead, k = z.shape[0], z.shape[1]
        opts = self.options if idx is None else None
        rows = []
        for b in range(lead):
            o = opts if opts is not None else self.options[idx[b]]
            rows.append(self.model.reward(o.unsqueeze(0).expand(k, -1, -1), z[b]))
        return torch.stack(rows)
