"""The z of ``pluralign rl bench``'s latent reward models (issue 14; :mod:`.bench` module
docstring): the z each relabelled episode gets (VPL Alg. 2's prior samples, encoder outputs of
training users' pairs, or one of Mix-BTL's rewards drawn from its prior) and what the z-conditioned
policy reads of a z (Mix-BTL: posterior weights, or the most probable component's code).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .setting import training_contexts

#: reward models with a user latent: z relabels the data, conditions the policy, and active
#: queries choose what to ask about it
LATENT_MODELS = ("np-btl", "vpl", "mix-btl")


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


def policy_latent(name: str, z: np.ndarray, components: np.ndarray | None = None) -> np.ndarray:
    """What the policy reads of a reward model's z: Mix-BTL's z is log posterior weights over
    its components (down to about -1e2 once the answers rule a component out), so the policy
    gets the weights themselves, in [0, 1], or with ``components`` (M, C) (a policy trained on
    one reward per episode, ``mix_relabel_z="prior"``) the row of the most probable component
    (:func:`component_codes`): spare components learn near-copies of one goal's reward, and a
    posterior split evenly over copies is a weight vector such a policy never saw. Other models'
    z as it is."""
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
