"""The z of ``pluralign rl bench``'s latent reward models (issue 14; :mod:`.bench` module
docstring): the z each relabelled episode gets (VPL Alg. 2's prior samples, encoder outputs of
training users' pairs, or one of Mix-BTL's rewards drawn from its prior) and what the z-conditioned
policy reads of a z (Mix-BTL: posterior weights, or the most probable component's code; VPL: z,
or what its reward says over anchor states: a profile, or where it peaks).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from .setting import training_contexts

#: reward models with a user latent: z relabels the data, conditions the policy, and active
#: queries choose what to ask about it
LATENT_MODELS = ("np-btl", "vpl", "mix-btl")
#: what the policy reads of VPL's z (``RLBenchConfig.vpl_policy_z``; :func:`vpl_policy_reads`)
VPL_POLICY_Z = ("latent", "profile", "peak")
#: dataset states the reward under z is read at, per ``vpl_policy_z``
ANCHORS = {"profile": 128, "peak": 2048}
#: what the goal-conditioned oracle's policy is told of the goal (``RLBenchConfig.oracle_z``)
ORACLE_Z = ("position", "goal")


def relabel_latents(name: str, model, records, n: int, rng: np.random.Generator,
                    vpl_z: str = "prior", sizes: tuple[int, int] = (2, 8),
                    mix_z: str = "posterior") -> torch.Tensor:
    """z for ``n`` episodes (:mod:`.bench` module docstring): prior samples (VPL, Alg. 2; Mix-BTL with
    ``mix_z="prior"``: one component each, drawn from π, as log weights 0 / −inf), encoder outputs
    of random training users' contexts of ``sizes`` pairs (NP-BTL; VPL with ``vpl_z="posterior"``:
    the posterior means, the z test users get; Mix-BTL with ``mix_z="posterior"``: log posterior
    weights), or width 0 (BTL, DPL)."""
    if name == "vpl" and vpl_z == "prior":
        return model.prior().sample((n,)).detach()
    if name == "mix-btl" and mix_z == "prior":
        with torch.no_grad():
            prior = torch.softmax(model.prior_logits, 0).double().numpy()
        picked = torch.from_numpy(rng.choice(len(prior), size=n, p=prior / prior.sum()))
        return torch.full((n, len(prior)), -math.inf).scatter_(1, picked[:, None], 0.0)
    if name not in LATENT_MODELS:
        return torch.zeros(n, 0)
    c, rj, mask, _ = training_contexts(records, n, rng, sizes)
    with torch.no_grad():
        z = model.eval().personalize(c, rj, mask)
        return (model.latent(z) if isinstance(z, torch.distributions.Normal) else z).detach()


def policy_latent(name: str, z: np.ndarray, components: np.ndarray | None = None,
                  reads: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """What the policy reads of a reward model's z: Mix-BTL's z is log posterior weights over
    its components (down to about -1e2 once the answers rule a component out), so the policy
    gets the weights themselves, in [0, 1], or with ``components`` (M, C) (a policy trained on
    one reward per episode, ``mix_relabel_z="prior"``) the row of the most probable component
    (:func:`component_codes`): spare components learn near-copies of one goal's reward, and a
    posterior split evenly over copies is a weight vector such a policy never saw. ``reads``
    (VPL, :func:`vpl_policy_reads`): what it makes of z. Other models' z as it is."""
    if reads is not None:
        return reads(z)
    if name != "mix-btl":
        return z
    if components is not None:
        return components[np.argmax(z, axis=-1)]
    return np.exp(z)


@torch.no_grad()
def component_codes(model, how: str, states: np.ndarray,
                    view: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """(M, C): what a policy reads of each Mix-BTL component (``RLBenchConfig.mix_policy_z``):
    ``component``, its one-hot; ``peak``, the position (x, y) of the state among ``states`` (read
    by the model through ``view``) its reward ranks highest, a goal estimate as the oracle's z is
    the goal."""
    m = model.config.n_components
    if how == "component":
        return np.eye(m, dtype=np.float32)
    seen = states if view is None else view(states)
    rewards = model.eval().net(torch.from_numpy(seen).float())  # (S, M)
    return states[rewards.argmax(0).numpy(), :2].astype(np.float32)


def vpl_policy_reads(how: str, model, states: np.ndarray, view: Callable[[np.ndarray], np.ndarray],
                     seed: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """What the policy reads of VPL's z, as :func:`policy_latent`'s ``reads``: None for ``latent``
    (z itself, the paper's), else a function of z over ``ANCHORS[how]`` dataset ``states`` (all
    of them if fewer) drawn with ``seed``: ``profile`` (:func:`reward_profile`) or ``peak``
    (:func:`reward_peak`)."""
    if how not in VPL_POLICY_Z:
        raise ValueError(f"vpl_policy_z must be one of {VPL_POLICY_Z}, got {how!r}")
    if how == "latent":
        return None
    n = min(ANCHORS[how], len(states))  # a small dataset lends all its states
    picked = states[np.random.default_rng(seed).choice(len(states), n, replace=False)]
    anchors = torch.from_numpy(view(picked))
    if how == "profile":
        return partial(reward_profile, model, anchors)
    return partial(reward_peak, model, anchors, picked[:, :2].astype(np.float32))


@torch.no_grad()
def anchor_rewards(model, anchors: torch.Tensor, z: np.ndarray, chunk: int = 256) -> torch.Tensor:
    """(B, A): the reward ``model`` gives to ``anchors`` (A, D) (dataset states as the model sees
    them) under each z (B, L)."""
    model.eval()
    zt = torch.from_numpy(np.asarray(z, np.float32))
    out = []
    for i in range(0, len(zt), chunk):  # B x A x D at once would be large for the relabelled episodes
        part = zt[i:i + chunk]
        out.append(model.reward(anchors.float().unsqueeze(0).expand(len(part), -1, -1), part))
    return torch.cat(out) if out else torch.zeros(0, len(anchors))


def reward_profile(model, anchors: torch.Tensor, z: np.ndarray, chunk: int = 256) -> np.ndarray:
    """(B, A): :func:`anchor_rewards` standardised per z (mean 0, std 1 over the anchors). A
    function of z alone that says where its reward is high, as the oracle's goal position does, so
    the policy need not learn to decode the coordinates of a latent space from a few hundred
    relabelled episodes (benchmarks/results/rl_profile/)."""
    r = anchor_rewards(model, anchors, z, chunk)
    r = (r - r.mean(1, keepdim=True)) / r.std(1, keepdim=True).clamp_min(1e-6)
    return r.numpy().astype(np.float32)


def reward_peak(model, anchors: torch.Tensor, anchor_xy: np.ndarray, z: np.ndarray, chunk: int = 256) -> np.ndarray:
    """(B, 2): the position ``anchor_xy`` (A, 2) of the anchor whose reward under z is highest:
    the code Mix-BTL's policy reads of a component (:func:`component_codes`) and the oracle's of
    a goal, here for any z (benchmarks/results/rl_profile/)."""
    return anchor_xy[anchor_rewards(model, anchors, z, chunk).argmax(1).numpy()]


def oracle_latent(goal_index: np.ndarray, goals_xy: np.ndarray, code: str) -> np.ndarray:
    """(N, ·) float32: the oracle's z for goals ``goal_index`` among ``goals_xy`` (K, 2): the
    goal's position (``"position"``) or a one-hot of its index (``"goal"``, K numbers). Both say
    exactly which goal; the one-hot does not ask IQL to tell apart nearby positions whose routes
    differ across a wall (benchmarks/results/rl_iql_steps_many/)."""
    goal_index = np.asarray(goal_index)
    if code == "position":
        return goals_xy[goal_index].astype(np.float32)
    if code == "goal":
        return np.eye(len(goals_xy), dtype=np.float32)[goal_index]
    raise ValueError(f"oracle_z must be one of {ORACLE_Z}, got {code!r}")
