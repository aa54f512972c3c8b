"""The single-reward line: the best accuracy a model that scores options by *one* reward per
context can reach, beside the Bayes line it cannot always reach.

NP-BTL (and VPL at its posterior mean, BTL, DPL's mean) predicts a target pair by
r(chosen; z) − r(rejected; z) with one z per context, so its predictions on pairs are those of
one utility function: transitive. The Bayes predictor (:mod:`pluralign.eval.bayes`) follows the
*posterior majority* of the user types, which for three or more types is not transitive
(Condorcet): with types preferring a ≻ b ≻ c, b ≻ c ≻ a and c ≻ a ≻ b, the majority prefers
a ≻ b, b ≻ c and c ≻ a, and no reward agrees with all three. So when the context leaves the
type uncertain (N^C = 0 above all) the Bayes line overstates what any reward model can reach;
Siththaranjan et al. (2024, "Distributional preference learning") show the same for BTL, which
aggregates hidden contexts by a Borda count.

For users whose rewards are linear in the options, u_m · y (u_m = w_m · A for the attribute
populations of :mod:`pluralign.data.populations`), this module estimates the line per task:
fit one linear reward w to the posterior-weighted preferences of the users,
max_w E_d Σ_m p(m | D^C) · 1[sign(w·d) = sign(u_m·d)] over option differences d drawn from the
option distribution (logistic regression on the soft labels, then a sharpened surrogate), and
score w on the task's unseen targets in expectation: q if w prefers the stored chosen option,
1 − q otherwise, with q the posterior probability that the user prefers it (the same q as the
Bayes line's). Nonlinear rewards do not do better at the population level: on the bench's
populations at N^C = 0 a 2 × 256 MLP reward trained on 75,000 pairs reached the linear fit's
accuracy to 0.1 pp (K = 2: 62.5 / 62.5, K = 3: 64.2 / 64.2, K = 5: 67.2 / 67.3; Bayes 62.5,
70.0, 70.4; benchmarks/single_reward_check.py). It is an estimate (a fitted w, a sampled d), not a bound.
"""

from __future__ import annotations

import numpy as np
import torch

from .bayes import BayesResult


def fit_single_rewards(posterior: np.ndarray, directions: np.ndarray, diffs: np.ndarray,
                       steps: int = 300, lr: float = 0.05, seed: int = 0) -> np.ndarray:
    """One linear reward per task for a posterior over linear users.

    Args:
        posterior: (B, M) p(user m | context) per task.
        directions: (M, D) the users' reward directions u_m (option y scores u_m · y).
        diffs: (S, D) option differences d = y_a − y_b drawn from the option distribution.
    Returns:
        (B, D) reward directions w_b (unit norm; any positive scale is the same reward).
    """
    post = torch.as_tensor(posterior, dtype=torch.float32)
    d = torch.as_tensor(diffs, dtype=torch.float32)
    prefers = (torch.as_tensor(directions, dtype=torch.float32) @ d.T > 0).float()  # (M, S)
    p = post @ prefers  # (B, S) posterior share of users preferring y_a
    # start from the posterior-mean direction (the Borda-like aggregate), then fit
    start = post @ torch.as_tensor(directions, dtype=torch.float32)
    w = start + 1e-3 * torch.randn(start.shape, generator=torch.Generator().manual_seed(seed))
    w.requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    scale = d.norm(dim=1).mean()
    for step in range(steps):
        wn = w / w.norm(dim=1, keepdim=True).clamp_min(1e-8)
        # first half: soft-label logistic regression; second half: a sharper sigmoid surrogate
        # of the accuracy itself (the logistic optimum's sign is not the accuracy optimum's)
        tau = 4.0 if step < steps // 2 else 16.0
        logits = tau * (wn @ d.T) / scale
        if step < steps // 2:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, p)
        else:
            s = torch.sigmoid(logits)
            loss = -(p * s + (1 - p) * (1 - s)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        # keep whichever of the start (the posterior-mean direction, exact when the posterior
        # is certain) and the fit agrees with more of the posterior's preferences on the sample
        fitted = w / w.norm(dim=1, keepdim=True).clamp_min(1e-8)
        agree = lambda v: (p * (v @ d.T > 0) + (1 - p) * (v @ d.T < 0)).mean(dim=1)  # noqa: E731
        better = (agree(fitted) >= agree(start)).unsqueeze(1)
        return torch.where(better, fitted, start / start.norm(dim=1, keepdim=True).clamp_min(1e-8)).numpy()


def single_reward_accuracy(bayes: BayesResult, items, directions: np.ndarray, diffs: np.ndarray,
                           target_diffs: np.ndarray, seed: int = 0) -> float:
    """Expected unseen-target accuracy of the best single linear reward per task.

    bayes: :func:`pluralign.eval.bayes.bayes_optimal_accuracy` on ``items`` (its posterior and
    per-target q). directions: (M, D) the users behind the likelihood's rows. diffs: (S, D)
    option differences to fit on. target_diffs: (P, D) chosen − rejected of the pair table the
    items index.
    """
    if bayes.q is None:
        raise ValueError("the Bayes result carries no per-target q")
    w = fit_single_rewards(bayes.posterior, directions, diffs, seed=seed)
    total = hits = 0.0
    for b, it in enumerate(items):
        unseen = np.asarray(it.unseen, dtype=bool)
        if not unseen.any():
            continue
        t = np.asarray(it.target, dtype=np.int64)[unseen]
        q = bayes.q[b, : len(it.target)][unseen]
        margin = target_diffs[t] @ w[b]
        acc = np.where(margin > 0, q, np.where(margin < 0, 1 - q, 0.5))
        hits += float(acc.sum())
        total += len(t)
    return hits / total if total else float("nan")
