"""A second labelling round near each user's inferred goal (issue 14; docs/rl.md, "A second
labelling round near each user's goal"). Not in the paper: VPL's users label random pairs of
dataset states (App. E). Random pairs almost never compare two states of the goal's own cell
(about one pair per goal among 10,000 with 10 goals), so a learned reward goes on rising past
the goal to the wall behind it (docs/rl.md, "What the Mix-BTL policy misses").

Here each labelling user answers the last ``n`` of their pairs in a second round. A reward model
trained on everyone's first-round pairs is personalised with the user's own first-round answers
and rates a pool of dataset states; the user then compares random pairs among the ``top``
fraction of the pool it rates highest, which lie around where the model places the user's goal,
on both sides of it. The user answers exactly as in the first round (:func:`.users.answer`):
only which pairs they are shown is chosen, so every label is still the user's own. Validation
users get their second round the same way (they are labellers too); the test users, who answer
queries after training, are untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..data.records import PreferenceRecord
from ..rewards.base import RewardModel
from .maze import GeodesicField
from .queries import latents
from .users import answer


@torch.no_grad()
def top_states(model: RewardModel, chosen: torch.Tensor, rejected: torch.Tensor, pool_view: torch.Tensor,
               n_top: int, chunk: int = 32) -> np.ndarray:
    """(U, n_top) indices of the ``pool_view`` states (P, D) that ``model``, personalised with each
    user's answers (U, n, D) x2, rates highest, best first."""
    if not 1 <= n_top <= len(pool_view):
        raise ValueError(f"need 1 <= top states <= the pool's {len(pool_view)}, got {n_top}")
    out = []
    for s in range(0, len(chosen), chunk):
        z = torch.from_numpy(latents(model, chosen[s:s + chunk], rejected[s:s + chunk]))
        rewards = model.reward(pool_view.unsqueeze(0).expand(len(z), -1, -1), z)  # (u, P)
        out.append(rewards.topk(n_top, dim=1).indices.numpy())
    return np.concatenate(out)


def refine_records(records: Sequence[PreferenceRecord], model: RewardModel, pool: np.ndarray,
                   view: Callable[[np.ndarray], np.ndarray], fields: Sequence[GeodesicField], n_pairs: int,
                   top: float = 0.03, noise: float = 0.0, seed: int = 0,
                   max_draws: int = 100) -> list[PreferenceRecord]:
    """``records`` (over ``view`` of the states, as the reward models read them) with ``n_pairs``
    second-round pairs added after each user's own (module docstring). ``pool`` (P, 4) are the
    observations the second round draws from; ``fields[user_latent]`` answers for each user;
    ``top`` the fraction of the pool rated highest that the pairs come from."""
    if n_pairs < 1 or not 0.0 < top <= 1.0:
        raise ValueError(f"need at least 1 second-round pair and 0 < top <= 1, got {n_pairs}, {top}")
    by_user: dict[str, list[PreferenceRecord]] = {}
    for r in records:
        by_user.setdefault(r.user_id, []).append(r)
    sizes = {len(rs) for rs in by_user.values()}
    if len(sizes) != 1:
        raise ValueError(f"every user needs the same number of first-round pairs, got {sorted(sizes)}")
    users = list(by_user)
    chosen = torch.tensor([[r.chosen for r in by_user[u]] for u in users], dtype=torch.float32)
    rejected = torch.tensor([[r.rejected for r in by_user[u]] for u in users], dtype=torch.float32)
    n_top = max(2, int(round(top * len(pool))))
    tops = top_states(model, chosen, rejected, torch.from_numpy(view(pool)).float(), n_top)
    rng = np.random.default_rng(seed)
    out: list[PreferenceRecord] = []
    for u, idx in zip(users, tops):
        own = by_user[u]
        field = fields[own[0].user_latent]
        c, r = np.zeros((0, pool.shape[1])), np.zeros((0, pool.shape[1]))
        for _ in range(max_draws):  # ties (states in one cell of the distance grid) are redrawn
            pick = idx[rng.integers(n_top, size=(n_pairs, 2))]
            c2, r2 = answer(pool[pick[:, 0]], pool[pick[:, 1]], field, noise, rng)
            c, r = np.concatenate([c, c2]), np.concatenate([r, r2])
            if len(c) >= n_pairs:
                break
        else:
            raise RuntimeError(f"user {u}: fewer than {n_pairs} decidable pairs among the {n_top} top "
                               f"states after {max_draws} draws; raise the top fraction")
        c, r = view(c[:n_pairs].astype(np.float32)), view(r[:n_pairs].astype(np.float32))
        out += own + [dataclasses.replace(own[0], chosen=[float(x) for x in ci], rejected=[float(x) for x in ri])
                      for ci, ri in zip(c, r)]
    return out
