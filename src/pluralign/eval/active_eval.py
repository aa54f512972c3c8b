"""Accuracy against the number of questions asked, for each way of choosing the questions
(issue 12; VPL App. B, Fig. 4).

A simulated population has finitely many user types whose preferences on every pair of a split
are known (:class:`PairTable`). An evaluation task is one user: a type, N^T target pairs and a
pool of candidate questions disjoint from them. A strategy asks one question at a time (the
sequential mode a live user goes through); after n answers the model personalises on them and
is scored on the targets, so one trajectory gives the whole curve n = 0..N. Every strategy and
the Bayes references see the same tasks and, when answers are flipped at test time (VPL Fig. 9),
the same flips for the same question. Tasks are processed in batches; the selection arithmetic
is :mod:`pluralign.active`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..active import (OptionScorer, ParticlePosterior, answer_log_likelihood, bayes_gain, bayes_predict,
                      noisy_table, point_latent, posterior_samples, single_pair_gain, type_log_posterior)
from ..data.records import PreferenceRecord
from .metrics import correctness


@dataclass
class PairTable:
    """The distinct pairs of one split: a[n] vs b[n] (N, D) and L[t, n] = p(type t prefers a[n])."""

    a: torch.Tensor
    b: torch.Tensor
    likelihood: torch.Tensor  # (T, N)

    @classmethod
    def from_records(cls, records: list[PreferenceRecord]) -> "PairTable":
        """One row per ``pair_id`` (first record's orientation), keeping the pairs every type's
        preference is known on; records need numeric options and integer ``user_latent``."""
        import warnings

        from ..data.tables import option_vectors
        from .bayes import preference_matrix

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pairs some type did not label are dropped below
            L, _ = preference_matrix(records)
        first: dict[str, int] = {}
        for i, r in enumerate(records):
            first.setdefault(r.pair_id, i)
        idx = np.array(sorted(first.values()))
        L = L[:, idx]
        keep = ~(L == 0.5).any(axis=0)
        if not keep.any():
            raise ValueError("no pair has a known preference for every user type")
        chosen, rejected = option_vectors([records[i] for i in idx[keep]])
        return cls(chosen, rejected, torch.as_tensor(L[:, keep], dtype=torch.float32))

    @property
    def n_types(self) -> int:
        return int(self.likelihood.shape[0])

    def __len__(self) -> int:
        return int(self.a.shape[0])


@dataclass
class ActiveTasks:
    """B evaluation users: type (B,), targets (B, T), pool (B, M) pair indices, flips (B, M) bool
    (the answer to that pool question is flipped), random_order (B, M) positions into the pool."""

    types: torch.Tensor
    targets: torch.Tensor
    pool: torch.Tensor
    flips: torch.Tensor
    random_order: torch.Tensor

    def __len__(self) -> int:
        return int(self.types.shape[0])

    def rows(self, sl: slice) -> "ActiveTasks":
        return ActiveTasks(self.types[sl], self.targets[sl], self.pool[sl], self.flips[sl], self.random_order[sl])


def sample_tasks(table: PairTable, n_tasks: int, n_target: int, pool_size: int, noise: float,
                 seed: int) -> ActiveTasks:
    """Users of uniformly drawn types, with disjoint random targets and pools."""
    if n_target + pool_size > len(table):
        raise ValueError(f"{n_target} targets + a pool of {pool_size} need more than the split's "
                         f"{len(table)} pairs")
    rng = np.random.default_rng([seed, 7])
    types = rng.integers(table.n_types, size=n_tasks)
    picks = np.stack([rng.choice(len(table), n_target + pool_size, replace=False) for _ in range(n_tasks)])
    flip_rng = np.random.default_rng([seed, 11])  # its own stream: noise levels share the tasks
    flips = flip_rng.random((n_tasks, pool_size)) < noise
    order = np.stack([rng.permutation(pool_size) for _ in range(n_tasks)])
    t = lambda x: torch.as_tensor(x)  # noqa: E731
    return ActiveTasks(t(types), t(picks[:, :n_target]), t(picks[:, n_target:]), t(flips), t(order))


@dataclass
class SelectionConfig:
    """Knobs of the learned strategies (tuned on validation users; see docs/active.md).

    n_samples: z draws of q(z | answers) (VPL). n_candidates: pool pairs scored per question
    under q samples (App. B's sampling search; particle posteriors score the whole pool).
    vpl_posterior: ``variational`` (App. B) or ``particles``. lapse: ε of the particle likelihood.
    """

    n_samples: int = 16
    n_candidates: int = 32
    vpl_posterior: str = "variational"
    lapse: float = 0.05
    batch_size: int = 100


class _Answers:
    """The answers so far of a batch of tasks and the context tensors they make."""

    def __init__(self, table: PairTable, tasks: ActiveTasks):
        self.table, self.tasks = table, tasks
        self.asked: list[torch.Tensor] = []  # positions into each task's pool
        self.said_a: list[torch.Tensor] = []  # observed answer: a preferred

    def ask(self, pos: torch.Tensor) -> None:
        rows = torch.arange(len(self.tasks))
        pair = self.tasks.pool[rows, pos]
        truth = self.table.likelihood[self.tasks.types, pair] > 0.5
        self.asked.append(pos)
        self.said_a.append(truth ^ self.tasks.flips[rows, pos])

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        b = len(self.tasks)
        if not self.asked:
            return torch.zeros(b, 0, dtype=torch.long), torch.zeros(b, 0, dtype=torch.bool)
        pos = torch.stack(self.asked, 1)
        return torch.gather(self.tasks.pool, 1, pos), torch.stack(self.said_a, 1)

    def context(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pair, said_a = self.pairs()
        a, b = self.table.a[pair], self.table.b[pair]
        s = said_a.unsqueeze(-1)
        return torch.where(s, a, b), torch.where(s, b, a), torch.ones(pair.shape, dtype=torch.bool)

    def asked_mask(self) -> torch.Tensor:
        m = torch.zeros(self.tasks.pool.shape, dtype=torch.bool)
        for pos in self.asked:
            m[torch.arange(len(self.tasks)), pos] = True
        return m


def _target_accuracy(p: torch.Tensor, table: PairTable, tasks: ActiveTasks) -> torch.Tensor:
    truth_a = table.likelihood[tasks.types.unsqueeze(1), tasks.targets] > 0.5
    q = torch.where(truth_a, p, 1 - p)
    return correctness(q).mean(1)


@torch.no_grad()
def model_curves(model: nn.Module, table: PairTable, tasks: ActiveTasks, strategy: str, n_questions: int,
                 cfg: SelectionConfig, particles: ParticlePosterior | None = None, seed: int = 0) -> np.ndarray:
    """(B, n_questions + 1) accuracy on each task's targets after n = 0..N answers."""
    model.eval()
    scorer = OptionScorer(model, torch.cat([table.a, table.b]))
    n = len(table)
    particle_r = None
    if strategy == "info-gain" and particles is not None:
        particle_r = scorer(particles.z)  # (P, 2N), once for the split
    out = []
    for start in range(0, len(tasks), cfg.batch_size):
        tb = tasks.rows(slice(start, start + cfg.batch_size))
        gen = torch.Generator().manual_seed(seed * 1000 + start)
        rng = np.random.default_rng([seed, start])
        answers = _Answers(table, tb)
        accs = []
        for step in range(n_questions + 1):
            c, r, mask = answers.context()
            z = point_latent(model, c, r, mask)
            rt = scorer(z.unsqueeze(1), torch.cat([tb.targets, tb.targets + n], 1))[:, 0]
            t = tb.targets.shape[1]
            accs.append(_target_accuracy(torch.sigmoid(rt[:, :t] - rt[:, t:]), table, tb))
            if step == n_questions:
                break
            answers.ask(_next(model, strategy, step, answers, tb, scorer, z, particle_r, particles,
                              cfg, gen, rng, n))
        out.append(torch.stack(accs, 1))
    return torch.cat(out).numpy()


def _next(model, strategy, step, answers: _Answers, tb: ActiveTasks, scorer, z, particle_r, particles,
          cfg: SelectionConfig, gen, rng, n: int) -> torch.Tensor:
    """Pool position of every task's next question."""
    if strategy == "random":
        return tb.random_order[:, step]
    asked = answers.asked_mask()
    m = tb.pool.shape[1]
    if strategy == "uncertainty":
        r = scorer(z.unsqueeze(1), torch.cat([tb.pool, tb.pool + n], 1))[:, 0]
        score = -(torch.sigmoid(r[:, :m] - r[:, m:]) - 0.5).abs()
    elif strategy == "info-gain" and particle_r is not None:
        pair, said_a = answers.pairs()
        delta = particle_r[:, pair] - particle_r[:, pair + n]  # (P, B, C)
        delta = torch.where(said_a.unsqueeze(0), delta, -delta)
        log_w = answer_log_likelihood(delta, particles.lapse).sum(-1).T  # (B, P)
        p = torch.sigmoid(particle_r[:, tb.pool] - particle_r[:, tb.pool + n]).permute(1, 0, 2)  # (B, P, M)
        score = single_pair_gain(p, log_w)
    elif strategy == "info-gain":
        c, r, mask = answers.context()
        zs = posterior_samples(model, c, r, mask, cfg.n_samples, gen)  # (B, K, dz)
        s = min(cfg.n_candidates, m - step)
        # App. B's sampling search: S random unasked candidates per task
        keys = torch.as_tensor(rng.random(asked.shape)).masked_fill(asked, 2.0)
        cand = torch.argsort(keys, dim=1)[:, :s]
        pair = torch.gather(tb.pool, 1, cand)
        rr = scorer(zs, torch.cat([pair, pair + n], 1))  # (B, K, 2S)
        gain = single_pair_gain(torch.sigmoid(rr[..., :s] - rr[..., s:]))
        score = torch.full(asked.shape, -float("inf")).scatter(1, cand, gain)
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    return score.masked_fill(asked, -float("inf")).argmax(1)


@torch.no_grad()
def bayes_curves(table: PairTable, tasks: ActiveTasks, n_questions: int, noise: float,
                 active: bool) -> np.ndarray:
    """(B, n_questions + 1) accuracy of the exact type posterior; ``active``: the greedy
    Bayes-optimal questioner, else the random questions every random strategy gets."""
    L = noisy_table(table.likelihood, noise)
    answers = _Answers(table, tasks)
    accs = []
    for step in range(n_questions + 1):
        pair, said_a = answers.pairs()
        log_post = type_log_posterior(L, pair, said_a)
        accs.append(_target_accuracy(bayes_predict(table.likelihood, log_post, tasks.targets), table, tasks))
        if step == n_questions:
            break
        if active:
            gain = bayes_gain(L, log_post, tasks.pool).masked_fill(answers.asked_mask(), -float("inf"))
            answers.ask(gain.argmax(1))  # pools are in random order: ties break at random
        else:
            answers.ask(tasks.random_order[:, step])
    return torch.stack(accs, 1).numpy()
