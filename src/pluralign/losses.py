"""Every training objective, as pure functions over tensors.

Two sections: reward objectives (Bradley–Terry, DPL, KL, ELBO) and, at the end of the file,
policy objectives (DPO, cDPO). Functions take model outputs, never models; shapes are in the
docstrings; ``mask`` arguments are boolean with True on real entries, and a masked mean over
zero real entries is 0 (never NaN).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# Reward objectives
# ---------------------------------------------------------------------------------------------

#: Φ(x) ≈ σ(1.702·x): the logistic approximation of the normal CDF (max. abs. error < 0.01).
PROBIT_LOGISTIC_SCALE = 1.702


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` is True (all entries if None); 0 if none."""
    if mask is None:
        return x.mean() if x.numel() else x.new_zeros(())
    mask = mask.to(torch.bool)
    if mask.shape != x.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match {tuple(x.shape)}")
    total = torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum()
    return total / mask.sum().clamp(min=1).to(x.dtype)


def bt_nll(r_chosen: torch.Tensor, r_rejected: torch.Tensor,
           mask: torch.Tensor | None = None, lapse: float = 0.0) -> torch.Tensor:
    """Bradley–Terry negative log-likelihood, mean over real pairs (NP paper eq. 2 and 7).

    -log σ(r_chosen - r_rejected). ``r_chosen``, ``r_rejected``, ``mask``: (...) -> scalar.
    ``lapse`` ε > 0 (not in the paper): the choice is a coin flip with probability 2ε, so
    -log(ε + (1 - 2ε)·σ(Δr)); a flipped label then costs at most -log ε instead of growing
    with the margin.
    """
    return masked_mean(-log_bt_prob(r_chosen - r_rejected, lapse), mask)


def log_bt_prob(margin: torch.Tensor, lapse: float = 0.0) -> torch.Tensor:
    """log P(chosen ≻ rejected) = log(ε + (1 - 2ε)·σ(margin)), computed stably (ε = ``lapse``)."""
    if not 0.0 <= lapse < 0.5:
        raise ValueError(f"lapse must be in [0, 0.5), got {lapse}")
    if lapse == 0.0:
        return F.logsigmoid(margin)
    return torch.logaddexp(torch.full_like(margin, math.log(lapse)),
                           math.log1p(-2 * lapse) + F.logsigmoid(margin))


def log_bt_prob_lapse(margin: torch.Tensor, lapse: torch.Tensor) -> torch.Tensor:
    """:func:`log_bt_prob` with a *tensor* ε in (0, 0.5) (a learnt lapse; gradients flow to it)."""
    return torch.logaddexp(torch.log(lapse).expand_as(margin),
                           torch.log1p(-2 * lapse) + F.logsigmoid(margin))


def mixture_nll(log_weights: torch.Tensor, log_p: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """-log Σ_m w_m P_m(pair), mean over real pairs: the predictive likelihood of a finite
    mixture of choice models under posterior weights w.

    ``log_weights``: (B, M) log w (rows normalised); ``log_p``: (B, T, M) log P_m of each of the
    T pairs; ``mask``: (B, T).
    """
    return masked_mean(-torch.logsumexp(log_weights.unsqueeze(1) + log_p, dim=-1), mask)


def meanvar_preference_prob(mean_a: torch.Tensor, var_a: torch.Tensor, mean_b: torch.Tensor,
                            var_b: torch.Tensor, approx: str = "normal") -> torch.Tensor:
    """DPL mean–variance P(a ≻ b) = Φ((μ_a - μ_b) / √(σ_a² + σ_b²)) (NP paper §2).

    ``approx="logistic"`` uses Φ(x) ≈ σ(1.702 x). All inputs (...) -> (...).
    """
    x = (mean_a - mean_b) / torch.sqrt(var_a + var_b)
    if approx == "normal":
        return torch.special.ndtr(x)
    if approx == "logistic":
        return torch.sigmoid(PROBIT_LOGISTIC_SCALE * x)
    raise ValueError(f"approx must be 'normal' or 'logistic', got {approx!r}")


def dpl_meanvar_nll(mean_chosen: torch.Tensor, var_chosen: torch.Tensor,
                    mean_rejected: torch.Tensor, var_rejected: torch.Tensor,
                    mask: torch.Tensor | None = None, approx: str = "normal") -> torch.Tensor:
    """-log P(chosen ≻ rejected) under DPL mean–variance; inputs (...), mean over ``mask``.

    Uses log Φ (``torch.special.log_ndtr``) or log σ directly, so confident pairs do not
    underflow to log 0.
    """
    x = (mean_chosen - mean_rejected) / torch.sqrt(var_chosen + var_rejected)
    if approx == "normal":
        nll = -torch.special.log_ndtr(x)
    elif approx == "logistic":
        nll = -F.logsigmoid(PROBIT_LOGISTIC_SCALE * x)
    else:
        raise ValueError(f"approx must be 'normal' or 'logistic', got {approx!r}")
    return masked_mean(nll, mask)


def categorical_preference_prob(probs_a: torch.Tensor, probs_b: torch.Tensor) -> torch.Tensor:
    """DPL categorical P(a ≻ b) = Σ_{i>j} p_a[i] p_b[j] + ½ Σ_i p_a[i] p_b[i].

    The reward of an option is a categorical distribution over K ordered atoms, independent
    between options; ties count half, so P(a ≻ b) + P(b ≻ a) = 1 exactly.
    ``probs_a``, ``probs_b``: (..., K), rows summing to 1 -> (...).
    """
    cdf_b = probs_b.cumsum(dim=-1)
    below_b = cdf_b - probs_b  # P(r_b < atom i) = Σ_{j<i} p_b[j]
    return (probs_a * (below_b + 0.5 * probs_b)).sum(dim=-1)


def dpl_categorical_nll(logits_chosen: torch.Tensor, logits_rejected: torch.Tensor,
                        mask: torch.Tensor | None = None, entropy_coef: float = 0.0,
                        eps: float = 1e-6) -> torch.Tensor:
    """-log P(chosen ≻ rejected) under DPL categorical, minus ``entropy_coef`` × mean entropy.

    ``logits_*``: (..., K) over K ordered atoms; ``mask`` (...). The entropy bonus (of the
    reward distribution of every real option) keeps the categorical from collapsing onto one
    atom early in training.
    """
    pa, pb = logits_chosen.softmax(-1), logits_rejected.softmax(-1)
    p = categorical_preference_prob(pa, pb)
    nll = -torch.log(p.clamp(min=eps))
    loss = masked_mean(nll, mask)
    if entropy_coef:
        ent = 0.5 * (_entropy(logits_chosen) + _entropy(logits_rejected))
        loss = loss - entropy_coef * masked_mean(ent, mask)
    return loss


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = logits.log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def gaussian_kl(mean_q: torch.Tensor, logvar_q: torch.Tensor, mean_p: torch.Tensor,
                logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(μ_q, diag σ_q²) ‖ N(μ_p, diag σ_p²)), summed over the last dimension.

    ½ Σ_d [logσ_p² - logσ_q² + (σ_q² + (μ_q - μ_p)²) / σ_p² - 1].
    Inputs broadcast to (..., Z) -> (...).
    """
    var_ratio = torch.exp(logvar_q - logvar_p)
    sq = (mean_q - mean_p).pow(2) * torch.exp(-logvar_p)
    return 0.5 * (var_ratio + sq - 1.0 - (logvar_q - logvar_p)).sum(dim=-1)


def negative_elbo(nll: torch.Tensor, kl: torch.Tensor, beta: float | torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """-ELBO per labelled pair (VPL eq. 2): (Σ_tasks Σ_targets nll + β Σ_tasks KL) / #pairs.

    ``nll``: (B, T) per-pair -log p(y | a, b, z) with z ~ q(z | context_b); ``kl``: (B,)
    KL(q(z | context_b) ‖ p(z)); ``mask``: (B, T) real target pairs. Each task's KL is paid
    once for all its pairs (the ELBO of one user's labels), and the total is divided by the
    number of pairs so the scale matches :func:`bt_nll`.
    """
    if nll.dim() != 2 or kl.shape != nll.shape[:1]:
        raise ValueError(f"nll must be (B, T) and kl (B,); got {tuple(nll.shape)}, {tuple(kl.shape)}")
    if mask is None:
        mask = torch.ones_like(nll, dtype=torch.bool)
    mask = mask.to(torch.bool)
    total = torch.where(mask, nll, torch.zeros((), dtype=nll.dtype, device=nll.device)).sum()
    return (total + beta * kl.sum()) / mask.sum().clamp(min=1).to(nll.dtype)


def cosine_beta(step: int, total_steps: int, beta_max: float = 1.0, beta_min: float = 0.0,
                cycles: int = 4) -> float:
    """Cyclical cosine annealing of the KL weight β (VPL App. E, Table 2).

    β rises from ``beta_min`` to ``beta_max`` along a half cosine within each of ``cycles``
    equal cycles of ``total_steps`` ("between 0 and 1 every 25% steps" is ``cycles=4``), and
    stays at ``beta_max`` after ``total_steps``.
    """
    if total_steps <= 0 or cycles <= 0:
        raise ValueError(f"total_steps and cycles must be positive, got {total_steps}, {cycles}")
    if step >= total_steps:
        return float(beta_max)
    period = total_steps / cycles
    phase = (step % period) / period
    return float(beta_min + (beta_max - beta_min) * 0.5 * (1.0 - math.cos(math.pi * phase)))


def preference_correct(p_chosen: torch.Tensor) -> torch.Tensor:
    """Per pair: 1 where P(chosen ≻ rejected) > 1/2, 1/2 on an exact tie (a coin flip), else 0."""
    return (p_chosen > 0.5).to(p_chosen.dtype) + 0.5 * (p_chosen == 0.5).to(p_chosen.dtype)


def preference_accuracy(p_chosen: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of real pairs with P(chosen ≻ rejected) > 0.5 (ties count half)."""
    return masked_mean(preference_correct(p_chosen), mask)


# ============================================================================================
# Policy objectives (NP-DPO / CMPO engineers): DPO and conservative DPO over summed log-probs.
# Pure functions over per-example sequence log-probabilities; they never see a model.
# Knob names follow TRL's DPOConfig (`beta`, `label_smoothing`).
# ============================================================================================


def implicit_reward(policy_logps: torch.Tensor, reference_logps: torch.Tensor, *,
                    beta: float) -> torch.Tensor:
    """DPO implicit reward r = beta * (log pi(y|x) - log pi_ref(y|x)) (Rafailov et al.; NP §3.2).

    Args: ``policy_logps``, ``reference_logps``: (N,) summed response log-probs. Returns (N,).
    """
    return beta * (policy_logps - reference_logps)


def cdpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
              reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor, *,
              beta: float = 0.1, label_smoothing: float = 0.1,
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Conservative DPO (Mitchell; CMPO thesis eq. 2.10-2.11), per example.

    Each label is taken to be flipped with probability eps = ``label_smoothing``:
    loss = -(1 - eps) log sigma(h) - eps log sigma(-h), h = r(chosen) - r(rejected), whose
    gradient is (sigma(h) - (1 - eps)) grad h (eq. 2.11). eps = 0 is plain DPO. Same formula as
    TRL's ``loss_type="sigmoid"`` with ``label_smoothing``.

    Args: four (N,) tensors of summed response log-probs (policy and reference, chosen and
    rejected). Returns ``(losses (N,), chosen_rewards (N,), rejected_rewards (N,))``; rewards
    are detached implicit rewards for logging/accuracy.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    shapes = {t.shape for t in (policy_chosen_logps, policy_rejected_logps,
                                reference_chosen_logps, reference_rejected_logps)}
    if len(shapes) != 1:
        raise ValueError(f"log-prob tensors must share one shape, got {sorted(map(tuple, shapes))}")
    chosen = implicit_reward(policy_chosen_logps, reference_chosen_logps, beta=beta)
    rejected = implicit_reward(policy_rejected_logps, reference_rejected_logps, beta=beta)
    margin = chosen - rejected
    losses = -(1.0 - label_smoothing) * F.logsigmoid(margin) - label_smoothing * F.logsigmoid(-margin)
    return losses, chosen.detach(), rejected.detach()


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor, *,
             beta: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO (Rafailov et al.; NP paper eq. 24-25): -log sigma(r(chosen) - r(rejected)) per example.

    See :func:`cdpo_loss` for arguments and returns; this is ``label_smoothing=0``.
    """
    return cdpo_loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
                     reference_rejected_logps, beta=beta, label_smoothing=0.0)
