"""The Bayes-optimal greedy questioner for simulated users of finitely many types.

With the types' preferences known (L[t, n] = p(type t prefers a_n over b_n)), the posterior over
a user's type given the answers is exact by enumeration, p(t | answers) ∝ p(t) Π p(answer | t),
and so is the information a new question carries about the type:
I(y; t) = h(Σ_t π_t L_t) - Σ_t π_t h(L_t) — :func:`~pluralign.active.info_gain.single_pair_gain`
with the types as particles. Asking the pair with the largest gain, one at a time, is the
greedy Bayes-optimal questioner the learned strategies are measured against; it predicts a target
pair by the posterior majority (as :mod:`pluralign.eval.bayes`). Label noise ε (answers flipped
at random) enters as L -> ε + (1 - 2ε) L.
"""

from __future__ import annotations

import torch

from .info_gain import single_pair_gain


def noisy_table(likelihood: torch.Tensor, noise: float) -> torch.Tensor:
    """p(answer "a" | type) when each answer is flipped with probability ``noise``."""
    if not 0 <= noise <= 0.5:
        raise ValueError(f"noise must lie in [0, 0.5], got {noise}")
    return noise + (1 - 2 * noise) * likelihood


def type_log_posterior(likelihood: torch.Tensor, asked: torch.Tensor, answers: torch.Tensor,
                       log_prior: torch.Tensor | None = None) -> torch.Tensor:
    """log p(t | answers), normalised, for B users at once.

    likelihood: (T, N) p(type t answers "a" on pair n) (noise included); asked: (B, C) pair
    indices; answers: (B, C) bool, True = "a" preferred. -> (B, T).
    """
    n_types = likelihood.shape[0]
    lp = likelihood[:, asked]  # (T, B, C)
    ll = torch.where(answers.unsqueeze(0), lp, 1 - lp).clamp_min(1e-300).log().sum(-1).T  # (B, T)
    if log_prior is None:
        log_prior = torch.full((n_types,), -torch.log(torch.tensor(float(n_types))).item())
    lp_post = ll + log_prior
    return lp_post - torch.logsumexp(lp_post, dim=-1, keepdim=True)


def bayes_gain(likelihood: torch.Tensor, log_post: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Exact I(y; type) of each candidate pair: (B, M) for candidates (B, M) pair indices."""
    p = likelihood[:, candidates].permute(1, 0, 2)  # (B, T, M)
    return single_pair_gain(p, log_post)


def bayes_predict(likelihood: torch.Tensor, log_post: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Posterior-predictive P(a ≻ b) of target pairs (B, T') for the true (noise-free) table."""
    return torch.einsum("bt,tbk->bk", log_post.exp(), likelihood[:, targets])
