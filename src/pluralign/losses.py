"""Every training objective as a pure function over tensors (DESIGN.md §5).

Reward objectives come first (rewards engineer); policy objectives (DPO, cDPO) are in the
section at the end of this file."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
