"""Checks that a personalised model actually uses its context.

* **Context-flip test**: swap chosen and rejected in every context pair. A model that reads
  its context must then change its predictions — above all on *conflicting* target pairs, where
  user types disagree and the context is the only clue to the answer. We report the fraction of
  unseen-target predictions left unchanged (1.0 for BTL/DPL by construction, near 0 on
  conflicting pairs for a model that infers the user from the context).
* **Active latent units** (VPL; posterior-collapse check, Burda et al.'s criterion): a latent
  dimension is active when the variance over tasks of its posterior mean exceeds a threshold
  (0.01). A collapsed posterior (q(z | context) = prior for every context) has no active units.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..data.tasks import TaskItem
from .metrics import EvalData, batches, model_device, predict


def _fraction(num: float, den: float) -> float | None:
    return float(num / den) if den else None


@torch.no_grad()
def context_flip(model: nn.Module, items: Sequence[TaskItem], data: EvalData,
                 batch_size: int = 100) -> dict[str, Any]:
    """Fraction of unseen-target predictions (P > 1/2 or not) unchanged by flipping the context.

    Returns ``{"unchanged", "n", "unchanged_conflicting", "n_conflicting"}``; the conflicting
    entries are None when the data say nothing about conflicts.
    """
    was_training = model.training
    model.eval()
    same = total = same_c = total_c = 0.0
    device = model_device(model)
    for batch in batches(items, data, batch_size, device):
        kept = (predict(model, batch) > 0.5) == (predict(model, batch, flip_context=True) > 0.5)
        unseen = batch.target_unseen
        same += float((kept & unseen).sum())
        total += float(unseen.sum())
        if data.conflicting is not None:
            idx = batch.target_index.clamp(min=0).cpu()
            conf = (data.conflicting[idx] & data.conflict_known[idx]).to(device) & unseen
            same_c += float((kept & conf).sum())
            total_c += float(conf.sum())
    model.train(was_training)
    known = data.conflicting is not None
    return {"unchanged": _fraction(same, total), "n": int(total),
            "unchanged_conflicting": _fraction(same_c, total_c) if known else None,
            "n_conflicting": int(total_c) if known else None}


def flip_test(models: Mapping[str, nn.Module], tasks: Mapping[int, list[TaskItem]], data: EvalData,
              batch_size: int = 100) -> dict[str, dict[str, Any]]:
    """``{model: {"<N>": context_flip(...)}}`` for every N^C > 0 (an empty context has nothing
    to flip)."""
    return {name: {str(n): context_flip(model, items, data, batch_size)
                   for n, items in tasks.items() if n > 0}
            for name, model in models.items()}


def posterior_means(model: nn.Module, items: Sequence[TaskItem], data: EvalData,
                    batch_size: int = 100) -> torch.Tensor | None:
    """Means of q(z | context) for every task -> (n_tasks, Z), or None when ``personalize``
    returns a plain tensor (a deterministic model has no posterior)."""
    was_training = model.training
    model.eval()
    means = []
    with torch.no_grad():
        for batch in batches(items, data, batch_size, model_device(model)):
            z = model.personalize(batch.context_chosen, batch.context_rejected, batch.context_mask)
            if not isinstance(z, torch.distributions.Distribution):
                model.train(was_training)
                return None
            means.append(z.mean.reshape(z.mean.shape[0], -1).float().cpu())
    model.train(was_training)
    return torch.cat(means) if means else None


def active_units(means: torch.Tensor, threshold: float = 0.01) -> dict[str, Any]:
    """Active units of posterior means (n_tasks, Z): variance over tasks per dimension >
    ``threshold``. Returns ``{"active", "latent_dim", "threshold", "variance"}``."""
    if means.ndim != 2 or means.shape[0] < 2:
        raise ValueError(f"need posterior means of shape (n_tasks >= 2, Z), got {tuple(means.shape)}")
    var = means.double().var(dim=0, unbiased=True)
    return {"active": int((var > threshold).sum()), "latent_dim": int(means.shape[1]),
            "threshold": threshold, "variance": [round(float(v), 6) for v in var]}


def latent_activity(models: Mapping[str, nn.Module], tasks: Mapping[int, list[TaskItem]],
                    data: EvalData, threshold: float = 0.01,
                    batch_size: int = 100) -> dict[str, dict[str, Any]]:
    """Active units of every model with a posterior, on the tasks of the largest N^C > 0 (the
    contexts that carry the most information about the user)."""
    sizes = [n for n in tasks if n > 0]
    if not sizes:
        return {}
    n = max(sizes)
    out = {}
    for name, model in models.items():
        means = posterior_means(model, tasks[n], data, batch_size)
        if means is not None and means.shape[0] >= 2:
            out[name] = {"n_context": n, **active_units(means, threshold)}
    return out


def summarize_flip(flip: Mapping[str, Any]) -> float | None:
    """Mean unchanged fraction over context sizes (for a one-line summary)."""
    vals = [v["unchanged"] for v in flip.values() if v.get("unchanged") is not None]
    return float(np.mean(vals)) if vals else None
