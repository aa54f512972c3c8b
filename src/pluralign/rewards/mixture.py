"""Mix-BTL: a finite mixture of Bradley–Terry rewards with an exact posterior over them.

Not one of the seed papers' models; it is the latent-class model that the Bayes line of
``pluralign bench defaults`` assumes, with learnt components. M reward functions
r_1..r_M (one MLP with M outputs) and a prior π over them; a user is one component. Given the
context D^C, the posterior is exact,

    w_m ∝ π_m · Π_{(a ≻ b) ∈ D^C} P_m(a ≻ b),   P_m(a ≻ b) = ε + (1 − 2ε)·σ(r_m(a) − r_m(b)),

with a learnt lapse ε (a coin flip with probability 2ε, for noisy labels), and a target pair is
predicted by the posterior predictive Σ_m w_m P_m(a ≻ b). Training maximises that predictive
likelihood of the target pairs given the context over the same tasks NP-BTL trains on (NP paper
Algorithm 1), so it is a neural process whose "encoder" is Bayes' rule on its own decoder.
Mixtures of reward models fitted by EM (MaxMin-RLHF, Chakraborty et al. 2024) are the same
model; here the components are learnt by gradient on tasks drawn across users, and a new user's
posterior is computed in closed form from their choices (no per-user fitting).

Unlike NP-BTL the prediction for a pair is not one reward difference, so it is not limited to
transitive predictions when the context leaves the user uncertain (docs/defaults.md, the
single-reward line). Ranking candidates needs one score per candidate: :meth:`reward` is the
posterior-mean reward Σ_m w_m r_m(y). ``personalize`` returns z = log w, (B, M).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..data.tasks import TaskBatch
from ..losses import log_bt_prob_lapse, mixture_nll
from ..nn import MLP
from .base import Latent, PreparedCandidates, RewardConfig, RewardModel


@dataclass
class MixBTLConfig(RewardConfig):
    """n_components: M reward functions (more than the user types you expect: spare ones
    learn near-copies, and continuous users are covered by more of them). lapse: ε at the start;
    learn_lapse: whether ε is trained (within (0, 0.5)) or kept fixed. linear_term: each
    reward is an MLP plus a linear function of the option's features. nonlinear_l2: λ of a
    penalty λ·Σ‖W‖² on the MLP's weight matrices (not its biases, not the linear term) added to
    the training loss: with ``linear_term`` the rewards are then linear unless the data pay for
    the bend. init_scale: the MLP's initial weights and biases times this factor; a small start
    keeps the rewards close to linear unless the data pay for the bend (the implicit bias of a
    small initialisation), but learns text features more slowly, so ``pluralign train``'s
    preset tries 1 and 0.1 and keeps the lower validation NLL (docs/defaults.md)."""

    n_components: int = 32
    lapse: float = 0.05
    learn_lapse: bool = True
    linear_term: bool = False
    nonlinear_l2: float = 0.0
    init_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_components < 1:
            raise ValueError(f"MixBTLConfig.n_components must be >= 1, got {self.n_components}")
        if not 0.0 < self.lapse < 0.5:
            raise ValueError(f"MixBTLConfig.lapse must be in (0, 0.5), got {self.lapse}")
        if self.nonlinear_l2 < 0:
            raise ValueError(f"MixBTLConfig.nonlinear_l2 must be >= 0, got {self.nonlinear_l2}")
        if self.init_scale <= 0:
            raise ValueError(f"MixBTLConfig.init_scale must be > 0, got {self.init_scale}")


class MixBTLRewardModel(RewardModel):
    """M rewards, a prior and a lapse; z = log posterior weights over the M rewards."""

    name = "mix-btl"
    config_class = MixBTLConfig
    #: the posterior over z is exact and finite (active selection scores the M components)
    exact_posterior: ClassVar[bool] = True
    #: a target that is also a context pair would be counted twice by the exact posterior (its
    #: label already weighs the components); disjoint targets make the loss the true predictive
    #: likelihood, and scored 0.1-1.0 pp better under label noise (docs/defaults.md)
    train_context_in_target: ClassVar[bool] = False

    def __init__(self, config: MixBTLConfig):
        super().__init__(config)
        self.net = MLP(config.option_dim, config.n_components, config.hidden, config.activation,
                       linear_skip=config.linear_term)
        if config.init_scale != 1.0:
            with torch.no_grad():
                for p in self.net.net.parameters():
                    p.mul_(config.init_scale)
        self.prior_logits = nn.Parameter(torch.zeros(config.n_components))
        # ε = 0.5·σ(θ) keeps it in (0, 0.5)
        theta = torch.tensor(math.log(2 * config.lapse / (1 - 2 * config.lapse)))
        self.lapse_logit = nn.Parameter(theta, requires_grad=config.learn_lapse)

    def lapse(self) -> torch.Tensor:
        return 0.5 * torch.sigmoid(self.lapse_logit)

    def _log_p(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """log P_m(a_n ≻ b_n) for every component: (B, N, D) x2 -> (B, N, M)."""
        r = self.net(torch.cat([a, b], dim=1))
        ra, rb = r.split([a.shape[1], b.shape[1]], dim=1)
        return log_bt_prob_lapse(ra - rb, self.lapse())

    def component_probs(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """P_m(a_n ≻ b_n) of every component for pairs (N, D) x2 -> (M, N)."""
        return self._log_p(a.unsqueeze(0), b.unsqueeze(0))[0].T.exp()

    def personalize(self, context_chosen: torch.Tensor, context_rejected: torch.Tensor,
                    context_mask: torch.Tensor) -> torch.Tensor:
        log_lik = self._log_p(context_chosen, context_rejected)
        log_lik = log_lik * context_mask.to(log_lik.dtype).unsqueeze(-1)
        return F.log_softmax(self.prior_logits + log_lik.sum(dim=1), dim=-1)

    def _log_weights(self, z: Latent | None, batch: int) -> torch.Tensor:
        if z is None:  # no context: the prior
            return F.log_softmax(self.prior_logits, dim=-1).expand(batch, -1)
        if not isinstance(z, torch.Tensor) or z.shape[-1] != self.config.n_components:
            raise TypeError("Mix-BTL needs z = model.personalize(context ...), "
                            f"a (B, {self.config.n_components}) tensor")
        return z

    def reward(self, options: torch.Tensor, z: Latent | None = None) -> torch.Tensor:
        w = self._log_weights(z, options.shape[0]).exp()
        return (self.net(options) * w.unsqueeze(1)).sum(-1)

    def _candidate_part(self, options: torch.Tensor) -> torch.Tensor:
        return self.net(options)

    def score_candidates(self, prepared: PreparedCandidates, z: Latent | None) -> torch.Tensor:
        part = prepared.part if prepared.part is not None else self.net(prepared.options)
        return self._log_weights(z, 1).exp() @ part.T

    def preference_prob(self, a: torch.Tensor, b: torch.Tensor, z: Latent | None = None) -> torch.Tensor:
        log_w = self._log_weights(z, a.shape[0])
        return torch.logsumexp(log_w.unsqueeze(1) + self._log_p(a, b), dim=-1).exp()

    def pairwise_prob(self, options: torch.Tensor, others: torch.Tensor,
                      z: Latent | None = None) -> torch.Tensor:
        r = self.net(torch.cat([options, others], dim=1))
        ra, rb = r.split([options.shape[1], others.shape[1]], dim=1)
        log_p = log_bt_prob_lapse(ra.unsqueeze(2) - rb.unsqueeze(1), self.lapse())  # (B, N, K, M) for K others
        log_w = self._log_weights(z, options.shape[0])[:, None, None, :]
        return torch.logsumexp(log_w + log_p, dim=-1).exp()

    def forward(self, batch: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        log_w = self.personalize(batch.context_chosen, batch.context_rejected, batch.context_mask)
        log_p = self._log_p(batch.target_chosen, batch.target_rejected)
        nll = mixture_nll(log_w, log_p, batch.target_mask)
        loss = nll
        if self.config.nonlinear_l2 > 0:
            weights = [m.weight for m in self.net.net if isinstance(m, nn.Linear)]
            loss = nll + self.config.nonlinear_l2 * sum(w.pow(2).sum() for w in weights)
        p = torch.logsumexp(log_w.unsqueeze(1) + log_p, dim=-1).exp()
        return loss, self._metrics(loss, p, batch.target_mask, lapse=float(self.lapse().detach()),
                                   nll=float(nll.detach()))
