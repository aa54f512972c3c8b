"""Accuracy on unseen target pairs as a function of the context size N^C (NP paper §4, Fig. 1b).

Evaluation tasks are drawn from the test split with the context *disjoint* from the target
(``context_in_target=False``) and N^C fixed per curve point, and every model is scored on the
same tasks, so models and the Bayes-optimal reference are compared pair for pair. A model is
right on a target pair when P(chosen ≻ rejected | context) > 1/2 (targets are stored
chosen-first); P = 1/2 exactly is a coin flip and counts 1/2, as in :mod:`pluralign.eval.bayes`.
Standard errors are over test tasks (each task's accuracy is one observation).

Models only need the reward-model interface: ``personalize(context_chosen, context_rejected,
context_mask) -> z`` (a tensor or a distribution) and ``preference_prob(a, b, z) -> (B, T)``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..data.records import PreferenceRecord
from ..data.tables import option_vectors, pair_conflicts, user_ids, user_types
from ..data.tasks import TaskBatch, TaskItem, TaskSampler, collate
from ..losses import preference_correct
from .bayes import BayesResult, bayes_optimal_accuracy, per_task_mean, preference_matrix

DEFAULT_CONTEXT_SIZES = (0, 1, 3, 5, 10)


@dataclass
class EvalConfig:
    """context_sizes: the N^C of each curve point. n_tasks: test tasks per N^C. n_target: N^T.
    batch_size: tasks per forward pass. seed: the evaluation sampler's own seed (never a
    training seed). flip_test / active_units: run those diagnostics
    (:mod:`pluralign.eval.diagnostics`); active_threshold: variance above which a latent unit
    counts as active (VPL posterior-collapse check)."""

    context_sizes: tuple[int, ...] = DEFAULT_CONTEXT_SIZES
    n_tasks: int = 500
    n_target: int = 20
    batch_size: int = 100
    seed: int = 12345
    flip_test: bool = True
    active_units: bool = True
    active_threshold: float = 0.01

    def __post_init__(self) -> None:
        self.context_sizes = tuple(int(n) for n in self.context_sizes)
        if not self.context_sizes or any(n < 0 for n in self.context_sizes):
            raise ValueError(f"EvalConfig.context_sizes must be non-negative integers, got {self.context_sizes}")
        if len(set(self.context_sizes)) != len(self.context_sizes):
            raise ValueError(f"EvalConfig.context_sizes has duplicates: {self.context_sizes}")
        for name in ("n_tasks", "n_target", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"EvalConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.active_threshold < 0:
            raise ValueError(f"EvalConfig.active_threshold must be >= 0, got {self.active_threshold}")


@dataclass
class EvalData:
    """The pair table of one split, as evaluation needs it.

    chosen, rejected: (P, D) option vectors. users / types: per pair (type -1 when unknown).
    conflicting: (P,) bool, the user types disagree on the pair; conflict_known: (P,) bool, the
    types' preferences on the pair are known (simulated data). likelihood: (n_types, P) table
    for the Bayes-optimal reference, or None; bayes_kind: how that table was made (written
    beside the Bayes line in results).
    """

    chosen: torch.Tensor
    rejected: torch.Tensor
    users: list[str]
    types: list[int]
    conflicting: torch.Tensor | None = None
    conflict_known: torch.Tensor | None = None
    likelihood: np.ndarray | None = field(default=None, repr=False)
    bayes_kind: str | None = None

    def __post_init__(self) -> None:
        p = len(self.users)
        if self.chosen.shape != self.rejected.shape or self.chosen.ndim != 2 or self.chosen.shape[0] != p:
            raise ValueError(f"EvalData: chosen {tuple(self.chosen.shape)} and rejected "
                             f"{tuple(self.rejected.shape)} must both be (P={p}, D)")
        if len(self.types) != p:
            raise ValueError(f"EvalData: {len(self.types)} types for {p} pairs")

    @classmethod
    def from_records(cls, records: Sequence[PreferenceRecord], chosen: torch.Tensor | None = None,
                     rejected: torch.Tensor | None = None) -> "EvalData":
        """From the records of one split; ``chosen``/``rejected`` default to the records'
        numeric options (pass embeddings for text records)."""
        if chosen is None or rejected is None:
            chosen, rejected = option_vectors(records)
        conflicts = pair_conflicts(records)
        conflicting = known = None
        if conflicts:
            known = torch.tensor([r.pair_id in conflicts for r in records])
            conflicting = torch.tensor([conflicts.get(r.pair_id, False) for r in records])
        likelihood = None
        if any(isinstance(r.user_latent, int) and r.pair_id is not None for r in records):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                likelihood, _ = preference_matrix(records)
        kind = None if likelihood is None else (
            "enumeration over the user types' recorded labels: exact for deterministic users, "
            "an oracle bound (it knows the coin flips) for stochastic ones")
        return cls(chosen.float(), rejected.float(), user_ids(records), user_types(records),
                   conflicting, known, likelihood, kind)


def sample_eval_tasks(data: EvalData, config: EvalConfig) -> dict[int, list[TaskItem]]:
    """``config.n_tasks`` disjoint-context tasks for every N^C (one sampler, one stream per N)."""
    sampler = TaskSampler(data.users, context_range=(0, max(config.context_sizes)),
                          n_target=config.n_target, context_in_target=False,
                          user_types=data.types, seed=config.seed)
    return {n: sampler.sample(config.n_tasks, step=0, stream=n, n_context=n)
            for n in config.context_sizes}


def model_device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def batches(items: Sequence[TaskItem], data: EvalData, batch_size: int, device: torch.device):
    for start in range(0, len(items), batch_size):
        yield collate(items[start: start + batch_size], data.chosen, data.rejected).to(device)


@torch.no_grad()
def predict(model: nn.Module, batch: TaskBatch, flip_context: bool = False) -> torch.Tensor:
    """P(target_chosen ≻ target_rejected | context) -> (B, T); ``flip_context`` swaps every
    context pair's chosen and rejected option first (the context-flip test)."""
    cc, cr = batch.context_chosen, batch.context_rejected
    if flip_context:
        cc, cr = cr, cc
    z = model.personalize(cc, cr, batch.context_mask)
    return model.preference_prob(batch.target_chosen, batch.target_rejected, z).float()


def correctness(p: torch.Tensor) -> torch.Tensor:
    """1 where P(chosen ≻ rejected) > 1/2, 1/2 on an exact tie, else 0 (as float)."""
    return preference_correct(p.float())


def scored_targets(model: nn.Module, items: Sequence[TaskItem], data: EvalData,
                   batch_size: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Every target of every task, scored: (correct, unseen), both (len(items), T) with T the
    longest target list; correct is 1, 1/2 (tie) or 0 (:func:`correctness`), unseen is False on
    padding and on targets that are also context pairs."""
    width = max((len(it.target) for it in items), default=0)
    correct = np.zeros((len(items), width))
    unseen = np.zeros((len(items), width), dtype=bool)
    device = model_device(model)
    for start, batch in zip(range(0, len(items), batch_size), batches(items, data, batch_size, device)):
        t = batch.target_unseen.shape[1]
        correct[start: start + len(batch.target_unseen), :t] = correctness(predict(model, batch)).cpu().numpy()
        unseen[start: start + len(batch.target_unseen), :t] = batch.target_unseen.cpu().numpy()
    return correct, unseen


def task_accuracy(model: nn.Module, items: Sequence[TaskItem], data: EvalData,
                  batch_size: int = 100) -> np.ndarray:
    """Accuracy on the unseen target pairs of every task -> (len(items),) (nan: no unseen pair)."""
    return per_task_mean(*scored_targets(model, items, data, batch_size))


def expected_scores(correct: np.ndarray, unseen: np.ndarray, bayes: BayesResult) -> dict[str, float]:
    """A model's accuracy in expectation under the true posterior, beside the Bayes line.

    On a target whose stored chosen option is the user's choice with probability q (given the
    context, :class:`pluralign.eval.bayes.BayesResult`), a prediction for the stored option is
    right with probability q, the other way 1 - q. Averaging that instead of the one label the
    user happened to give is the same number in expectation (Rao–Blackwell) with far less
    spread, and it is how the Bayes line itself is scored, so the gap is paired target for
    target: ``expected_accuracy`` (pooled over unseen targets, as the Bayes line is),
    ``expected_stderr`` over tasks and ``gap_stderr``, the standard error of the per-task
    difference to the Bayes line's expected accuracy.
    """
    q = bayes.q[:, : correct.shape[1]]
    hit = correct * q + (1.0 - correct) * (1.0 - q)
    total = int(unseen.sum())
    per_task = per_task_mean(hit, unseen)
    diff = per_task - bayes.item_expected
    return {"expected_accuracy": float(np.where(unseen, hit, 0.0).sum() / max(total, 1)),
            "expected_stderr": summarize(per_task)["stderr"], "gap_stderr": summarize(diff)["stderr"]}


def summarize(values: np.ndarray) -> dict[str, Any]:
    """``{"accuracy", "stderr", "n"}`` of per-task accuracies (nan entries are skipped)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return {"accuracy": float("nan"), "stderr": float("nan"), "n": 0}
    se = float(v.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return {"accuracy": float(v.mean()), "stderr": se, "n": n}


def accuracy_curves(models: Mapping[str, nn.Module], data: EvalData, config: EvalConfig,
                    tasks: Mapping[int, list[TaskItem]] | None = None) -> dict[str, Any]:
    """Accuracy vs N^C for every model, overall and per user type, plus the Bayes reference.

    Returns ``{"models": {name: {"<N>": stats}}, "per_type": {name: {"<type>": {"<N>": stats}}},
    "bayes": {"<N>": float} | None, "bayes_realised": ..., "timing_s": {name: seconds}}``
    (the pieces of the results schema, :mod:`pluralign.eval.results`).
    """
    tasks = tasks if tasks is not None else sample_eval_tasks(data, config)
    bayes = bayes_results(data, tasks)
    out: dict[str, Any] = {"models": {}, "per_type": {}, "timing_s": {}}
    for name, model in models.items():
        was_training = model.training
        model.eval()
        t0 = time.perf_counter()
        curve, per_type = {}, {}
        for n, items in tasks.items():
            correct, unseen = scored_targets(model, items, data, config.batch_size)
            acc = per_task_mean(correct, unseen)
            curve[str(n)] = summarize(acc)
            if bayes is not None:
                curve[str(n)].update(expected_scores(correct, unseen, bayes[n]))
            types = np.array([it.user_type for it in items])
            for t in sorted(set(types.tolist()) - {-1}):
                per_type.setdefault(str(t), {})[str(n)] = summarize(acc[types == t])
        out["timing_s"][name] = round(time.perf_counter() - t0, 4)
        model.train(was_training)
        out["models"][name] = curve
        if per_type:
            out["per_type"][name] = per_type
    out["bayes"] = None if bayes is None else {str(n): r.expected_accuracy for n, r in bayes.items()}
    out["bayes_realised"] = None if bayes is None else {str(n): r.accuracy for n, r in bayes.items()}
    return out


def bayes_results(data: EvalData, tasks: Mapping[int, list[TaskItem]]) -> dict[int, BayesResult] | None:
    """The Bayes-optimal predictor on the same tasks, per N^C, or None when the user types'
    preferences are unknown."""
    if data.likelihood is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {n: bayes_optimal_accuracy(data.likelihood, items) for n, items in tasks.items()}
