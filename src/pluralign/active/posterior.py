"""Posteriors over the user latent z that query selection conditions on (VPL App. B).

* **VPL** (variational): q(z | answers so far) is the encoder's Gaussian, exactly what App. B
  maximises information under; it is represented by ``n_samples`` draws (equal weights) and
  updated after each answer by re-encoding the answers (the amortised posterior).
* **NP-BTL** (deterministic z, NP paper §3.1) has no posterior, so one is built the Bayesian way:
  particles z_1..z_P are the latents of real users' contexts (drawn from the training data, an
  empirical sample of the population's z), each a hypothesis "the new user is like this one";
  the new user's answers reweight them by the Bradley–Terry likelihood the model was trained with,

      w_p ∝ Π_answers  ε + (1 - 2ε) σ(r(chosen | z_p) - r(rejected | z_p)),

  with a small lapse rate ε (a person sometimes clicks the other option) so that one surprising
  answer cannot zero every particle. The same construction works for VPL (particles = posterior
  means of training contexts) and is an alternative to sampling q.

The model object holds no training data, so particles are built once per run from contexts the
caller passes (:meth:`ParticlePosterior.from_contexts`) or samples from a pair table
(:meth:`ParticlePosterior.from_pairs`), then reused for every user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn
from torch.distributions import Normal

from ..losses import log_bt_prob
from .scoring import OptionScorer


class NoLatentError(TypeError):
    """The model has no user latent, so there is nothing for questions to be informative about."""


def latent_kind(model: nn.Module) -> str:
    """``"variational"`` (q(z | context) is a distribution, VPL), ``"deterministic"`` (NP-BTL) or
    ``"mixture"`` (Mix-BTL: z is an exact posterior over finitely many rewards);
    raises :class:`NoLatentError` for models without a latent (BTL, DPL)."""
    name = getattr(model, "name", type(model).__name__)
    dim = getattr(model, "config", None)
    dim = getattr(dim, "option_dim", None)
    if dim is None or not hasattr(model, "personalize"):
        raise NoLatentError(f"active selection needs a latent reward model (np-btl or vpl), got {name!r}")
    if getattr(model, "exact_posterior", False):
        return "mixture"
    empty = torch.zeros(1, 0, dim)
    with torch.no_grad():
        z = model.personalize(empty, empty, torch.zeros(1, 0, dtype=torch.bool))
    if isinstance(z, Normal):
        return "variational"
    if isinstance(z, torch.Tensor) and z.shape[-1] > 0:
        return "deterministic"
    raise NoLatentError(f"active selection needs a latent model: {name!r} ranks options the same for "
                        "everyone (it has no user latent z); use np-btl or vpl")


@torch.no_grad()
def point_latent(model: nn.Module, chosen: torch.Tensor, rejected: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """The z a model predicts with, from context (B, C, D) x2 + mask: NP-BTL's z, VPL's mean."""
    z = model.personalize(chosen, rejected, mask)
    return z.mean if isinstance(z, Normal) else z


@torch.no_grad()
def posterior_samples(model: nn.Module, chosen: torch.Tensor, rejected: torch.Tensor, mask: torch.Tensor,
                      n_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, K, dz) draws of q(z | context) for a variational model (VPL App. B)."""
    q = model.personalize(chosen, rejected, mask)
    if not isinstance(q, Normal):
        raise TypeError("posterior_samples needs a variational model (personalize returns a Normal)")
    eps = torch.randn(q.mean.shape[0], n_samples, q.mean.shape[-1], generator=generator)
    return q.mean.unsqueeze(1) + q.stddev.unsqueeze(1) * eps


def answer_log_likelihood(delta: torch.Tensor, lapse: float) -> torch.Tensor:
    """log p(answer | z) = log(ε + (1-2ε) σ(Δ)) for Δ = r(chosen | z) - r(rejected | z), stable:
    the lapsed Bradley–Terry likelihood NP-BTL trains with (:func:`pluralign.losses.log_bt_prob`)."""
    return log_bt_prob(delta, lapse)


@dataclass
class ParticlePosterior:
    """A posterior over z represented by fixed particles reweighted by the answers.

    z: (P, dz) particles (equal prior weight: an empirical sample of users' latents).
    lapse: ε of the answer likelihood (see the module docstring).
    """

    z: torch.Tensor
    lapse: float = 0.05
    _pool: Any = field(default=None, repr=False)
    _model: Any = field(default=None, repr=False)
    _pool_rewards: Any = field(default=None, repr=False)
    _distances: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.z.dim() != 2 or self.z.shape[0] < 1:
            raise ValueError(f"particles must be (P >= 1, dz), got shape {tuple(self.z.shape)}")
        if not 0 <= self.lapse < 0.5:
            raise ValueError(f"lapse must lie in [0, 0.5), got {self.lapse}")

    @property
    def n_particles(self) -> int:
        return int(self.z.shape[0])

    @classmethod
    @torch.no_grad()
    def from_contexts(cls, model: nn.Module, chosen: torch.Tensor, rejected: torch.Tensor,
                      mask: torch.Tensor | None = None, lapse: float = 0.05) -> "ParticlePosterior":
        """One particle per context: contexts (P, C, D) x2 (+ mask (P, C)) of real users, e.g.
        training users' choices. VPL contexts give their posterior means."""
        latent_kind(model)
        if chosen.dim() != 3 or chosen.shape != rejected.shape:
            raise ValueError(f"contexts must be two (P, C, D) tensors, got {tuple(chosen.shape)} and "
                             f"{tuple(rejected.shape)}")
        mask = torch.ones(chosen.shape[:2], dtype=torch.bool) if mask is None else mask.bool()
        was = model.training
        model.eval()
        try:
            z = point_latent(model, chosen.float(), rejected.float(), mask)
        finally:
            model.train(was)
        return cls(z.float(), lapse)

    @classmethod
    def from_pairs(cls, model: nn.Module, chosen: torch.Tensor, rejected: torch.Tensor,
                   users: Sequence[str], n_particles: int = 256, context_size: tuple[int, int] = (10, 10),
                   seed: int = 0, lapse: float = 0.05) -> "ParticlePosterior":
        """Particles from random contexts of the users of a pair table (chosen-first (N, D) x2,
        ``users`` per row), e.g. the training split: ``n_particles`` users drawn uniformly, each
        with a context of a size drawn from ``context_size`` (inclusive range)."""
        from ..data.tasks import TaskSampler, collate

        lo, hi = context_size
        sampler = TaskSampler(list(users), context_range=(lo, hi), n_target=max(hi, 1),
                              context_in_target=True, seed=seed)
        items = sampler.sample(n_particles, step=0, stream=0)
        batch = collate(items, chosen.float(), rejected.float())
        return cls.from_contexts(model, batch.context_chosen, batch.context_rejected, batch.context_mask, lapse)

    def rewards(self, model: nn.Module, options: torch.Tensor) -> torch.Tensor:
        """r(options | z_p) for every particle: (N, D) -> (P, N)."""
        return OptionScorer(model, options)(self.z)

    def log_weights(self, model: nn.Module, chosen: torch.Tensor | None = None,
                    rejected: torch.Tensor | None = None) -> torch.Tensor:
        """Unnormalised log posterior weights (P,) after the answers chosen ≻ rejected ((C, D) x2)."""
        if chosen is None or len(chosen) == 0:
            return torch.zeros(self.n_particles)
        r = self.rewards(model, torch.cat([chosen, rejected]).float())
        rc, rr = r.split(len(chosen), dim=1)
        return answer_log_likelihood(rc - rr, self.lapse).sum(1)

    def pool_rewards(self, model: nn.Module, pool: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, M) rewards of both sides of a :class:`~pluralign.active.select.Pool`, computed once
        per pool object and reused (a pool is scored for every user that is asked from it)."""
        if self._pool is not pool or self._model is not model:
            r = pool.scorer(model)(self.z)
            self._pool, self._model, self._pool_rewards = pool, model, r.split(len(pool.a), dim=1)
        return self._pool_rewards

    def effective_size(self, log_w: torch.Tensor) -> float:
        """Effective number of particles 1 / Σ w² (a degenerate posterior has ~1)."""
        w = torch.softmax(log_w, dim=-1)
        return float(1.0 / (w ** 2).sum())

    def medoid(self, log_w: torch.Tensor) -> int:
        """Index of the posterior-weighted medoid: the particle with the least expected Euclidean
        distance to the others under the weights softmax(log_w). A point summary that is always
        one of the particles (a real user's z), unlike the weighted mean, and a central one,
        unlike the heaviest particle (pluralign.rl.queries.latents says why that matters)."""
        if self._distances is None:  # (P, P), once per posterior: it is asked for every user
            self._distances = torch.cdist(self.z, self.z)
        return int((self._distances @ torch.softmax(log_w, dim=-1)).argmin())
