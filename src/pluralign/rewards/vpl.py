"""VPL: variational preference learning (Poddar et al. §3, App. A, E).

q(z | context) is a diagonal Gaussian from a set encoder + Gaussian head; the decoder is the
NP-BTL one, r(y | z) = MLP2([MLP1(y) ‖ z]). Training maximises the ELBO (VPL eq. 2)

    Σ_targets log σ(r(y_w | z) - r(y_l | z)) - β KL(q(z | context) ‖ p(z)),  z ~ q (reparam.)

with a diagonal Gaussian prior whose mean and scale are learnable (App. E.5, initialised to
N(0, I)) and β cosine-annealed (App. E, Table 2). :meth:`VPLRewardModel.latent` is the one
place z is computed from a posterior, in training and evaluation alike (DESIGN.md §4).
SPO-scaled rewards (App. A) are in :mod:`pluralign.rewards.spo`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Normal

from ..data.tasks import TaskBatch
from ..losses import cosine_beta, gaussian_kl, negative_elbo
from ..nn import ConditionedRewardDecoder, GaussianHead
from .base import Latent, PreparedCandidates, RewardModel
from .np_btl import ContextConfig, build_set_encoder, decoder_scores


#: β's annealing span when nothing set ``anneal_steps`` (a trainer normally does)
FALLBACK_ANNEAL_STEPS = 10_000


@dataclass
class VPLConfig(ContextConfig):
    """latent_dim: size of z (VPL Table 2: 8, 16 or 32).
    learn_prior: learn the prior's mean and log-scale (App. E.5) or keep N(0, I).
    beta_max: the KL weight β reaches. beta_schedule: ``cosine`` (cyclical, Table 2) or
    ``constant`` (always beta_max). beta_cycles: annealing cycles within anneal_steps (4 =
    "every 25% of the steps"). anneal_steps: training steps the schedule spans; β stays at
    beta_max afterwards. None (the default): the run's length —
    :func:`pluralign.train.rewards.train_reward_model` sets it to the run's ``max_steps``; a
    model trained some other way with None anneals over ``FALLBACK_ANNEAL_STEPS``.
    """

    latent_dim: int = 16
    learn_prior: bool = True
    beta_max: float = 1.0
    beta_schedule: str = "cosine"
    beta_cycles: int = 4
    anneal_steps: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.latent_dim < 1:
            raise ValueError(f"VPLConfig.latent_dim must be >= 1, got {self.latent_dim}")
        if self.beta_max < 0:
            raise ValueError(f"VPLConfig.beta_max must be >= 0, got {self.beta_max}")
        if self.beta_schedule not in ("cosine", "constant"):
            raise ValueError(f"VPLConfig.beta_schedule must be 'cosine' or 'constant', "
                             f"got {self.beta_schedule!r}")
        if self.beta_cycles < 1 or (self.anneal_steps is not None and self.anneal_steps < 1):
            raise ValueError(f"VPLConfig.beta_cycles and anneal_steps must be >= 1, got "
                             f"{self.beta_cycles}, {self.anneal_steps}")


class VPLRewardModel(RewardModel):
    """Variational conditional reward; ``personalize`` returns the posterior q(z | context)."""

    name = "vpl"
    config_class = VPLConfig

    def __init__(self, config: VPLConfig):
        super().__init__(config)
        self.encoder = build_set_encoder(config, config.hidden_dim)
        self.posterior_head = GaussianHead(config.hidden_dim, config.latent_dim)
        self.decoder = ConditionedRewardDecoder(config.option_dim, config.latent_dim, config.embed_dim,
                                                config.hidden, config.activation)
        self.prior_mean = nn.Parameter(torch.zeros(config.latent_dim), requires_grad=config.learn_prior)
        self.prior_log_std = nn.Parameter(torch.zeros(config.latent_dim),
                                          requires_grad=config.learn_prior)
        # training forward passes so far: drives the β schedule and is checkpointed, so a
        # resumed run continues the schedule where it stopped
        self.register_buffer("train_steps", torch.zeros((), dtype=torch.long))

    # --- posterior and z -----------------------------------------------------------------
    def personalize(self, context_chosen: torch.Tensor, context_rejected: torch.Tensor,
                    context_mask: torch.Tensor) -> Normal:
        """q(z | context): a Normal with batch shape (B, latent_dim)."""
        return self.posterior_head(self.encoder(context_chosen, context_rejected, context_mask))

    def latent(self, posterior: Latent) -> torch.Tensor:
        """The z the decoder sees, for training and evaluation alike.

        In training mode (``model.train()``) a reparameterised sample z = μ + σ·ε; otherwise
        the posterior mean μ. Nothing else differs: no normalisation, no rescaling. A tensor
        passed in is taken to be z itself (e.g. a sample from the prior).
        """
        if isinstance(posterior, torch.Tensor):
            return posterior
        if not isinstance(posterior, Normal):
            raise TypeError(f"VPL z must be a Normal posterior or a tensor, got {type(posterior).__name__}")
        return posterior.rsample() if self.training else posterior.mean

    def prior(self) -> Normal:
        """p(z) = N(prior_mean, diag(exp(prior_log_std))²)."""
        return Normal(self.prior_mean, self.prior_log_std.exp())

    def beta(self) -> float:
        """KL weight at the current training step."""
        c = self.config
        if c.beta_schedule == "constant":
            return c.beta_max
        span = c.anneal_steps if c.anneal_steps is not None else FALLBACK_ANNEAL_STEPS
        return cosine_beta(int(self.train_steps), span, c.beta_max, 0.0, c.beta_cycles)

    # --- interface -------------------------------------------------------------------------
    def reward(self, options: torch.Tensor, z: Latent | None = None) -> torch.Tensor:
        if z is None:
            raise TypeError("VPL needs z: model.personalize(context ...) or a latent tensor")
        return self.decoder(options, self.latent(z))

    def _candidate_part(self, options: torch.Tensor) -> torch.Tensor:
        return self.decoder.option_part(options)

    def score_candidates(self, prepared: PreparedCandidates, z: Latent | None) -> torch.Tensor:
        if z is None:
            raise TypeError("VPL needs z: model.personalize(context ...) or a latent tensor")
        return decoder_scores(self.decoder, prepared, self.latent(z))

    def preference_prob(self, a: torch.Tensor, b: torch.Tensor, z: Latent | None = None) -> torch.Tensor:
        # one z per user for both options (a fresh sample per call would decouple a and b)
        return super().preference_prob(a, b, self.latent(z) if z is not None else z)

    def forward(self, batch: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        posterior = self.personalize(batch.context_chosen, batch.context_rejected, batch.context_mask)
        z = self.latent(posterior)
        r = self.decoder(torch.cat([batch.target_chosen, batch.target_rejected], dim=1), z)
        rc, rr = r.split(batch.target_chosen.shape[1], dim=1)
        nll = -torch.nn.functional.logsigmoid(rc - rr)  # (B, T)
        kl = gaussian_kl(posterior.mean, 2 * posterior.stddev.log(), self.prior_mean,
                         2 * self.prior_log_std)  # (B,)
        beta = self.beta()
        loss = negative_elbo(nll, kl, beta, batch.target_mask)
        if self.training:
            self.train_steps += 1
        return loss, self._metrics(loss, torch.sigmoid(rc - rr), batch.target_mask,
                                   kl=kl.mean().detach(), beta=beta)
