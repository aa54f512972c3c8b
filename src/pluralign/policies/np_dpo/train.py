"""Training NP-DPO and its DPO baselines with the project's one loop (:func:`pluralign.train.loop.fit`).

NP paper §3.2 / App. C.2.2, eq. 24: every step draws tasks (one user, N^C ~ U[0, 6] context
pairs inside N^T = 9 target pairs), encodes the context into z, and minimises the (c)DPO loss of
the FiLM(z)-conditioned policy on the target pairs, with reference log-probs from the same LM
with adapters and FiLM off. The baselines use the same step with no conditioning:

- ``btl-dpo``: plain DPO on the pooled data of all users (eq. 25);
- ``type-dpo``: plain DPO on the data of one user type only (the oracle that knows z*).

Random streams: training tasks ``seed``, validation tasks ``seed + 1``, the loop ``train.seed``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ...data.tasks import TaskSampler
from ...losses import cdpo_loss
from ...train.config import TrainConfig, check_types
from .data import PolicyBatch, PolicyData
from .policy import NPDPOConfig, NPDPOPolicy

METHODS = ("np-dpo", "btl-dpo", "type-dpo")


@dataclass
class PolicyTaskConfig:
    """What one training step sees. Paper (App. C.2.2): N^C in [0, 6], N^T = 9 (8 in §4.2's
    text), batch size 1, beta 0.05; cDPO is ``label_smoothing`` > 0 (CMPO thesis eq. 2.10)."""

    method: str = "np-dpo"
    user_type: int | None = None  # type-dpo: the one user type trained on
    beta: float = 0.05
    label_smoothing: float = 0.0
    context_min: int = 0
    context_max: int = 6
    n_target: int = 9
    tasks_per_step: int = 1
    max_length: int = 128
    val_tasks: int = 8
    # draw users type by type so every update of >= n_types tasks holds every user type: the
    # pooled (type-independent) part of the gradient then cancels inside an update and only the
    # conditional part remains. The paper draws users uniformly (False).
    stratify_types: bool = False
    # with trainable_layers set: cache the frozen bottom blocks' output per sequence (prefix.py)
    prefix_cache: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_types(self)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.method == "type-dpo" and self.user_type is None:
            raise ValueError("method 'type-dpo' needs user_type")
        if not 0 <= self.context_min <= self.context_max:
            raise ValueError(f"need 0 <= context_min <= context_max, got {self.context_min}, {self.context_max}")
        if self.n_target < 1 or self.tasks_per_step < 1 or self.val_tasks < 0:
            raise ValueError("n_target and tasks_per_step must be >= 1, val_tasks >= 0")
        if self.beta <= 0 or not 0 <= self.label_smoothing < 0.5:
            raise ValueError(f"need beta > 0 and label_smoothing in [0, 0.5), got {self.beta}, {self.label_smoothing}")

    @property
    def conditioned(self) -> bool:
        return self.method == "np-dpo"


def policy_logprobs(policy: NPDPOPolicy, batch: PolicyBatch) -> torch.Tensor:
    """(2N,) log-probs of the batch's sequences, each under its own task's z (if conditioned)."""
    z = None
    if policy.film is not None:
        t = batch.tasks
        z_task = policy.encode(t.context_chosen, t.context_rejected, t.context_mask)  # (B, Z)
        z = z_task[batch.pair_task].repeat(2, 1)  # chosen rows then rejected rows
    return policy.logprobs(batch.sequences, z, prefix=batch.prefix)


def dpo_step(policy: NPDPOPolicy, batch: PolicyBatch, *, beta: float,
             label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean (c)DPO loss over the batch's target pairs, plus logging metrics."""
    ref = batch.reference if batch.reference is not None else policy.reference_logprobs(batch.sequences)
    logps = policy_logprobs(policy, batch)
    n = batch.n_pairs
    losses, chosen_r, rejected_r = cdpo_loss(logps[:n], logps[n:], ref[:n], ref[n:], beta=beta,
                                             label_smoothing=label_smoothing)
    margin = chosen_r - rejected_r
    metrics = {"reward_accuracy": float(((margin > 0).float() + 0.5 * (margin == 0).float()).mean()),
               "reward_margin": float(margin.mean()), "chosen_reward": float(chosen_r.mean()),
               "rejected_reward": float(rejected_r.mean())}
    return losses.mean(), metrics


def training_data(data: PolicyData, task: PolicyTaskConfig) -> PolicyData:
    """The pairs a method trains on: all of them, or one user type's for ``type-dpo``."""
    if task.method != "type-dpo":
        return data
    keep = np.flatnonzero(np.asarray(data.types) == task.user_type)
    if not len(keep):
        raise ValueError(f"no training pairs of user type {task.user_type}; types present: "
                         f"{sorted(set(data.types))}")
    return data.subset(keep)


def make_sampler(data: PolicyData, task: PolicyTaskConfig, *, context_in_target: bool = True,
                 seed: int | None = None, context_range: tuple[int, int] | None = None) -> TaskSampler:
    lo, hi = context_range or ((task.context_min, task.context_max) if task.conditioned else (0, 0))
    return TaskSampler(data.users, context_range=(lo, hi), n_target=task.n_target,
                       context_in_target=context_in_target, user_types=data.types,
                       seed=task.seed if seed is None else seed,
                       stratify_types=task.stratify_types and task.method != "type-dpo")


def make_batch_fn(policy: NPDPOPolicy, data: PolicyData, task: PolicyTaskConfig) -> Callable[[int, int], PolicyBatch]:
    """``batch_fn(step, stream)`` for :func:`fit`: deterministic tasks, cached references."""
    sampler = make_sampler(data, task)

    def batch_fn(step: int, stream: int) -> PolicyBatch:
        items = sampler.sample(task.tasks_per_step, step=step, stream=stream)
        return data.batch(items, lm=policy.lm)

    return batch_fn


def make_val_fn(policy: NPDPOPolicy, data: PolicyData, task: PolicyTaskConfig) -> Callable | None:
    """Implicit-reward accuracy on unseen target pairs of fixed validation tasks (context
    disjoint from the targets), as ``{"reward_accuracy": ..., "loss": ...}``."""
    if task.val_tasks == 0:
        return None
    sampler = make_sampler(data, task, context_in_target=False, seed=task.seed + 1)
    items = sampler.sample(task.val_tasks, step=0, stream=0)
    batches = [data.batch(items[i:i + 1], lm=policy.lm, unseen_only=True) for i in range(len(items))]

    def val_fn(model: NPDPOPolicy) -> dict[str, float]:
        losses, accs = [], []
        for b in batches:
            loss, m = dpo_step(model, b, beta=task.beta, label_smoothing=task.label_smoothing)
            losses.append(float(loss))
            accs.append(m["reward_accuracy"])
        return {"reward_accuracy": float(np.mean(accs)), "loss": float(np.mean(losses))}

    return val_fn


def train_policy(policy: NPDPOPolicy, train: PolicyData, task: PolicyTaskConfig, config: TrainConfig,
                 out_dir: str | Path, val: PolicyData | None = None):
    """Train ``policy`` in place with :func:`pluralign.train.loop.fit`; returns its FitResult.

    ``out_dir/best`` holds the best (or, without validation data, the final) policy as a
    ``save_pretrained`` folder that :meth:`NPDPOPolicy.from_pretrained` loads.
    """
    from ...train.loop import fit

    if task.conditioned != (policy.film is not None):
        raise ValueError(f"method {task.method!r} needs a policy with film={task.conditioned}")
    if task.conditioned and train.option_dim != policy.config.option_dim:
        raise ValueError(f"context embeddings have {train.option_dim} features, the policy's encoder "
                         f"expects {policy.config.option_dim}")
    for d in (train, val):
        if d is not None:
            d.enable_prefix_cache(policy.frozen_blocks if task.prefix_cache else 0)
    data = training_data(train, task)
    val_fn = make_val_fn(policy, training_data(val, task), task) if val is not None else None
    beta, eps = task.beta, task.label_smoothing
    return fit(policy, lambda m, b: dpo_step(m, b, beta=beta, label_smoothing=eps),
               make_batch_fn(policy, data, task), config, out_dir, val_fn=val_fn)


@dataclass
class PolicyRunConfig:
    """Everything ``pluralign policy train`` reads from its YAML (sections ``task``, ``policy``,
    ``train``)."""

    task: PolicyTaskConfig = field(default_factory=PolicyTaskConfig)
    policy: NPDPOConfig = field(default_factory=NPDPOConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(metric_for_best_model="reward_accuracy",
                                                                   greater_is_better=True))

    def to_dict(self) -> dict[str, Any]:
        return {"task": asdict(self.task), "policy": asdict(self.policy), "train": self.train.to_dict()}
