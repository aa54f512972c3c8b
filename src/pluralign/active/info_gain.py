"""Expected information gain of a query batch about the user latent (VPL App. B, eq. 3).

For a candidate batch of Q pairs (s_A^i, s_B^i) and a posterior over z represented by weighted
particles z_1..z_P (samples of q(z | answers so far), or reweighted particles), the labels
y ∈ {0, 1}^Q are conditionally independent given z under the Bradley–Terry model (VPL eq. 1),
so the mutual information is exact up to the particle approximation:

    I(y; z) = H(y) - E_z H(y | z)
            = -Σ_y m(y) log m(y) - Σ_p w_p Σ_i h(p_{p,i}),   m(y) = Σ_p w_p Π_i p(y_i | z_p)

with p_{p,i} = P(s_A^i ≻ s_B^i | z_p) and h the binary entropy. H(y) is computed by enumerating
the 2^Q label outcomes, as App. B does ("batch size 2^Q"). Everything is in nats, in log space,
and batched over any leading dimensions (users, candidate batches).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

MAX_BATCH = 12  # 2^12 outcomes; App. B uses Q in [2, 8]

_TINY = 1e-12


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """h(p) = -p log p - (1-p) log(1-p) in nats, elementwise (0 at p in {0, 1})."""
    p = p.clamp(0.0, 1.0)
    return -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))


@lru_cache(maxsize=MAX_BATCH + 1)
def outcomes(q: int) -> torch.Tensor:
    """All 2^q label vectors as a (2^q, q) float tensor of 0/1 (row o is o in binary)."""
    if not 0 <= q <= MAX_BATCH:
        raise ValueError(f"a query batch holds 0..{MAX_BATCH} pairs (2^Q outcomes are enumerated), got {q}")
    codes = torch.arange(2 ** q).unsqueeze(1)
    return ((codes >> torch.arange(q)) & 1).float()


def normalized_log_weights(log_w: torch.Tensor | None, n: int, like: torch.Tensor) -> torch.Tensor:
    """log w normalised over the particle axis (last); uniform when ``log_w`` is None."""
    if log_w is None:
        return like.new_full((n,), -math.log(n))
    return log_w - torch.logsumexp(log_w, dim=-1, keepdim=True)


def information_gain(p: torch.Tensor, log_w: torch.Tensor | None = None) -> torch.Tensor:
    """I(y; z) of every candidate batch, by enumerating the 2^Q outcomes.

    Args:
        p: (..., P, S, Q) P(s_A^i ≻ s_B^i | z_p) for S candidate batches of Q pairs under P
            particles (leading dims, e.g. users, are batched).
        log_w: (..., P) unnormalised log weights of the particles (None: equal weights, e.g.
            samples of q(z | answers)).
    Returns:
        (..., S) mutual information in nats, in [0, min(Q log 2, H(z))].
    """
    if p.dim() < 3:
        raise ValueError(f"p must be (..., P, S, Q), got shape {tuple(p.shape)}")
    n_particles, q = p.shape[-3], p.shape[-1]
    lw = normalized_log_weights(log_w, n_particles, p)
    bits = outcomes(q).to(p)  # (O, Q)
    lp1 = p.clamp_min(_TINY).log()
    lp0 = (1 - p).clamp_min(_TINY).log()
    # log p(y_o | z_p) for every outcome o: (..., P, S, O)
    ll = lp1 @ bits.T + lp0 @ (1 - bits).T
    log_m = torch.logsumexp(ll + lw[..., :, None, None], dim=-3)  # (..., S, O)
    h_y = -(log_m.exp() * log_m).sum(-1)
    h_y_given_z = (lw.exp()[..., :, None] * binary_entropy(p).sum(-1)).sum(-2)  # (..., S)
    return (h_y - h_y_given_z).clamp_min(0.0)


def single_pair_gain(p: torch.Tensor, log_w: torch.Tensor | None = None) -> torch.Tensor:
    """I(y; z) of every single pair (Q = 1, BALD): h(E_w p) - E_w h(p).

    p: (..., P, M) preference probabilities under P particles; log_w: (..., P). -> (..., M).
    Equal to ``information_gain(p[..., None])`` without the outcome enumeration (cheaper for
    scoring a whole pool).
    """
    lw = normalized_log_weights(log_w, p.shape[-2], p)
    w = lw.exp()[..., :, None]
    mean = (w * p).sum(-2)
    return (binary_entropy(mean) - (w * binary_entropy(p)).sum(-2)).clamp_min(0.0)


def monte_carlo_information_gain(p: torch.Tensor, log_w: torch.Tensor | None, n: int,
                                 generator: torch.Generator | None = None) -> float:
    """Monte Carlo estimate of I(y; z) for one batch p (P, Q): draw z ~ w, y ~ p(y | z) and
    average log p(y | z) - log m(y). A check on :func:`information_gain`, not used for selection."""
    n_particles, q = p.shape
    w = normalized_log_weights(log_w, n_particles, p).exp()
    idx = torch.multinomial(w, n, replacement=True, generator=generator)
    y = (torch.rand(n, q, generator=generator) < p[idx]).float()
    lp1, lp0 = p.clamp_min(_TINY).log(), (1 - p).clamp_min(_TINY).log()
    ll_all = y @ lp1.T + (1 - y) @ lp0.T  # (n, P): log p(y_s | z_p)
    log_m = torch.logsumexp(ll_all + w.log(), dim=1)
    return float((ll_all[torch.arange(n), idx] - log_m).mean())
