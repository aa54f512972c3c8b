"""Warm start of the NP-DPO set encoder from an NP-BTL reward model (beyond the paper).

In NP-DPO (NP paper §3.2) the set encoder h is trained only through FiLM: its gradient is
dL/dz = W^T dL/d(gamma, beta), and the FiLM maps W start at zero (identity FiLM). So at first the
encoder gets no gradient, z is a random function of the context, and the hypernetwork can fit
only what does not depend on z — on a CPU budget of a few dozen updates that is all it learned
(docs/np-dpo.md runs 1-3: the policy leaned to one user type instead of reading the context).

The NP paper trains the same kind of encoder cheaply in NP-BTL (§3.1): context pairs ->
z -> r(y | z) with the Bradley-Terry likelihood of the user's target choices. The encoder's
inputs are the same cached context-option embeddings in both models, so an NP-BTL model whose
encoder has the NP-DPO architecture can be trained on the policy's training users first (seconds
on a CPU: no language model is run), and its encoder copied into the policy. NP-DPO training then
starts from a z that already tells users apart and goes on training the encoder jointly.
``steps = 0`` (the default) is the paper: a randomly initialised encoder.

NP-BTL leaves z at whatever scale its decoder liked (|z| ~ 20-75 on the SmolLM2 corpus), and
the FiLM maps are linear in z, so under Adam the FiLM step grows with |z|: the first pilot's
DPO loss went from 0.69 to 7 in five updates. The encoder's output layer is therefore rescaled
so that z has root-mean-square ``z_rms`` over training contexts (a linear rescaling: which
contexts z tells apart is unchanged).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...data.tasks import TaskBatch, collate
from ...rewards.np_btl import NPBTLConfig, NPBTLRewardModel
from ...train.config import TrainConfig, check_types
from .data import PolicyData
from .policy import NPDPOPolicy
from .train import PolicyTaskConfig, make_sampler


@dataclass
class ContextTable:
    """Context pairs for the set encoder: per pair its user, user type (-1 unknown) and option
    embeddings (P, D). :class:`~.data.PolicyData` has the same fields."""

    users: list[str]
    types: list[int]
    chosen_emb: torch.Tensor
    rejected_emb: torch.Tensor


@dataclass
class EncoderWarmStartConfig:
    """NP-BTL pre-training of the NP-DPO set encoder: ``steps`` updates (0: off, the paper) of
    ``tasks_per_step`` tasks with N^C drawn from the policy task's range and ``n_target`` targets,
    at ``learning_rate``; the decoder MLPs are ``hidden`` wide.

    The encoder needs no language model, so it can learn from more users and prompts than the
    policy can afford to score: ``max_prompts`` / ``users_per_type`` rebuild the experiment's
    built-in data set with that many corpus prompts / simulated users per type for the warm start
    (None: the policy's own training users). The policy's validation and test prompts are
    always left out of it."""

    steps: int = 0
    tasks_per_step: int = 16
    n_target: int = 8
    learning_rate: float = 1e-3
    hidden: int = 256
    z_rms: float | None = 1.0  # None: keep NP-BTL's scale of z
    max_prompts: int | None = None
    users_per_type: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_types(self)
        if self.steps < 0 or self.tasks_per_step < 1 or self.n_target < 1 or self.hidden < 1:
            raise ValueError("need steps >= 0 and tasks_per_step, n_target, hidden >= 1")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.z_rms is not None and not self.z_rms > 0:
            raise ValueError(f"z_rms must be > 0 or None, got {self.z_rms}")


def np_btl_with_encoder(policy: NPDPOPolicy, hidden: int) -> NPBTLRewardModel:
    """An NP-BTL model whose set encoder is a copy of ``policy.encoder`` (same architecture and
    weights), with a fresh decoder r(y | z) for options of the policy's context dimension."""
    if policy.encoder is None:
        raise ValueError("the policy has no set encoder (film=False): nothing to warm-start")
    cfg = policy.config
    model = NPBTLRewardModel(NPBTLConfig(option_dim=cfg.option_dim, z_dim=cfg.z_dim, hidden_dim=hidden,
                                         embed_dim=hidden))
    model.encoder = copy.deepcopy(policy.encoder)
    return model


def warm_start_encoder(policy: NPDPOPolicy, train: PolicyData | ContextTable, task: PolicyTaskConfig,
                       config: EncoderWarmStartConfig, out_dir: str | Path,
                       val: PolicyData | ContextTable | None = None) -> dict[str, Any]:
    """Train an NP-BTL model on ``train``'s users (context embeddings only) with
    :func:`pluralign.train.loop.fit` and copy its encoder into ``policy``; returns the fit's
    final train metrics and, with ``val``, the NP-BTL validation accuracy on unseen targets."""
    from ...train.loop import fit

    torch.manual_seed(config.seed)  # the decoder's init must not depend on what ran before
    model = np_btl_with_encoder(policy, config.hidden)
    n_target = max(config.n_target, task.context_max)
    sampler_task = PolicyTaskConfig(method="np-dpo", context_min=task.context_min, context_max=task.context_max,
                                    n_target=n_target, stratify_types=task.stratify_types, seed=config.seed)
    sampler = make_sampler(train, sampler_task)
    chosen, rejected = train.chosen_emb, train.rejected_emb

    def batch_fn(step: int, stream: int):
        return collate(sampler.sample(config.tasks_per_step, step=step, stream=stream), chosen, rejected)

    val_fn = None
    if val is not None:
        val_sampler = make_sampler(val, sampler_task, context_in_target=False, seed=config.seed + 1)
        val_batch = collate(val_sampler.sample(64, step=0), val.chosen_emb, val.rejected_emb)

        def val_fn(m: NPBTLRewardModel) -> dict[str, float]:
            loss, metrics = m(val_batch)
            return {"loss": float(loss), **{k: float(v) for k, v in metrics.items() if k != "loss"}}

    # with validation users, keep the step whose context-conditioned accuracy is best
    train_cfg = TrainConfig(learning_rate=config.learning_rate, max_steps=config.steps,
                            eval_steps=max(config.steps // 8, 1), save_steps=config.steps,
                            logging_steps=max(config.steps // 10, 1), seed=config.seed,
                            metric_for_best_model="accuracy", greater_is_better=True,
                            load_best_model_at_end=val is not None)
    result = fit(model, lambda m, b: m(b), batch_fn, train_cfg, out_dir, val_fn=val_fn)
    policy.encoder.load_state_dict(model.encoder.state_dict())
    info = {"steps": result.step, "best_step": result.best_step, "train": result.train_metrics,
            "validation": result.best_metrics}
    if config.z_rms is not None:
        info["z_rms_before"] = rescale_z(policy.encoder, collate(sampler.sample(256, step=0, stream=1), chosen, rejected),
                                         config.z_rms)
    return info


@torch.no_grad()
def rescale_z(encoder: nn.Module, batch: TaskBatch, target_rms: float) -> float:
    """Scale the encoder's output layer so that z over ``batch``'s contexts has root-mean-square
    ``target_rms``; returns the RMS before. Both set encoders end in ``outer`` (an MLP)."""
    last = [m for m in encoder.outer.modules() if isinstance(m, nn.Linear)][-1]
    z = encoder(batch.context_chosen, batch.context_rejected, batch.context_mask)
    rms = float(z.pow(2).mean().sqrt())
    if rms > 0:
        last.weight.mul_(target_rms / rms)
        last.bias.mul_(target_rms / rms)
    return rms
