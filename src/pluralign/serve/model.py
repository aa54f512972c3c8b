"""The served run: a :class:`pluralign.Personalizer` (a reward model) or a steered policy
(:mod:`pluralign.policies.steering`: NP-DPO or CMPO) behind one lock, with the per-user z cache,
next-question selection and, for policies, generation.

All personalization goes through the Personalizer (DESIGN.md §7): the service only decides when
to call it. z of a user is cached under (user row id, revision); every new or undone choice
bumps the revision in the database, so a stale z is never served, by any worker. Calls into the
model hold one lock: the embedder's tokenizer and cache are not thread-safe, and on a CPU one
forward pass at a time (micro-batched, :mod:`.batching`) is faster than several competing.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import torch

from ..personalizer import Personalizer


class LRU:
    """A small thread-safe least-recently-used map."""

    def __init__(self, size: int) -> None:
        self.size, self._data, self._lock = size, OrderedDict(), threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return None

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


@dataclass(frozen=True)
class Question:
    index: int
    prompt: str
    a: str
    b: str
    method: str  # "active" (Personalizer.next_question) or "random"


class ServedModel:
    """The Personalizer (or steered policy) of one run plus the caches the service keeps around it."""

    def __init__(self, personalizer: Any, *, kind: str = "reward-model", z_cache_size: int = 10_000) -> None:
        self.personalizer = personalizer
        self.kind = kind  # "reward-model", "np-dpo" or "cmpo" (pluralign.policies.runs.KINDS)
        self.lock = threading.Lock()
        self.z_cache = LRU(z_cache_size)

    @classmethod
    def load(cls, run_dir: str, **kwargs: Any) -> "ServedModel":
        """The run in ``run_dir``, of the kind its folder shows (:func:`pluralign.policies.runs.find_run`)."""
        from ..policies.runs import find_run, load_policy

        torch.set_num_threads(1)  # one worker process per core (uvicorn --workers) scales better
        kind, _ = find_run(run_dir)
        if kind == "reward-model":
            return cls(Personalizer.from_pretrained(run_dir), **kwargs)
        return cls(load_policy(run_dir), kind=kind, **kwargs)

    @property
    def is_policy(self) -> bool:
        """True for NP-DPO and CMPO runs: they generate, and rank by implicit reward."""
        return self.kind != "reward-model"

    @property
    def attributes(self) -> list[str]:
        """CMPO's steering attributes (the names ``weights`` may use); [] otherwise."""
        return list(getattr(self.personalizer, "attributes", []) or [])

    @property
    def model_name(self) -> str:
        return self.personalizer.model_name

    @property
    def has_latent(self) -> bool:
        return bool(self.personalizer.has_latent)

    # -- users -----------------------------------------------------------------------------------
    def user_state(self, key: Hashable, load_choices: Callable[[], Sequence[dict[str, str]]]) -> Any:
        """The user's :class:`UserState` for cache key ``key`` (the service gives
        :attr:`pluralign.serve.store.UserInfo.version`: row, creation time, revision); the
        choices are read (``load_choices``) and personalized only on a miss."""
        state = self.z_cache.get(key)
        if state is None:
            choices = list(load_choices())
            with self.lock:
                state = self.personalizer.user(choices)
            self.z_cache.put(key, state)
        return state

    def z_summary(self, state: Any) -> tuple[list[float], list[float] | None]:
        """z as lists (the posterior mean and std for VPL's Normal)."""
        z = state.z
        if isinstance(z, torch.distributions.Normal):
            return z.mean.reshape(-1).tolist(), z.stddev.reshape(-1).tolist()
        return z.reshape(-1).tolist(), None

    # -- candidates ------------------------------------------------------------------------------
    def score(self, prompt: str, candidates: Sequence[str], states: Sequence[Any]) -> torch.Tensor:
        """Scores (U, N) of ``candidates`` for many users at once (one forward pass). Candidate
        texts are embedded through the run's keyed embedding cache (held in memory once read),
        so a repeated candidate costs a hash lookup, not an encoder pass."""
        with self.lock, torch.inference_mode():
            return self.personalizer.score(prompt, list(candidates), list(states))

    # -- generation (policy runs) ----------------------------------------------------------------
    def check_weights(self, weights: dict[str, float]) -> None:
        """ValueError unless ``weights`` may steer this run: a CMPO run, attribute names it has."""
        if self.kind != "cmpo":
            raise ValueError(f"weights: steer CMPO runs only; this {self.kind} run is steered by the "
                             "user's choices (leave weights out)")
        unknown = sorted(set(weights) - set(self.attributes))
        if unknown:
            raise ValueError(f"weights: unknown attribute(s) {unknown}; this run has {self.attributes}")

    def generate(self, state: Any, prompt: str, *, weights: dict[str, float] | None = None,
                 **decoding: Any) -> tuple[Any, str, dict[str, float] | None]:
        """One answer for the user ``state``: (:class:`~pluralign.policies.steering.Generated`,
        steered_by, the CMPO weights used). CMPO: ``weights`` given steer; else those inferred
        from the user's choices (or the run's default). NP-DPO: z of the user's choices."""
        if not self.is_policy:
            raise NotAPolicy("this run is a reward model; generate needs an NP-DPO or CMPO policy run")
        policy = self.personalizer
        z, steered_by = state.z, state.steered_by
        if weights is not None:
            self.check_weights(weights)
            z, steered_by = policy.weights(weights), "weights"
        with self.lock:
            out = policy.generate(prompt, z, **decoding)
        used = ({a: round(float(w), 6) for a, w in zip(self.attributes, z.reshape(-1).tolist())}
                if self.kind == "cmpo" else None)
        return out, steered_by, used

    # -- questions -------------------------------------------------------------------------------
    def next_question(self, state: Any, pool: Sequence[dict[str, str]], answered: set[tuple[str, str, str]],
                      seed: int) -> Question | None:
        """The next pair to ask: ``Personalizer.next_question`` (active selection, issue 12) for
        VPL and Mix-BTL runs, else a random pair seeded by (user, revision). Pairs the user has
        answered (either way round) are skipped; None when none are left."""
        def asked(q: dict[str, str]) -> bool:
            return (q["prompt"], q["a"], q["b"]) in answered or (q["prompt"], q["b"], q["a"]) in answered

        open_idx = [i for i, q in enumerate(pool) if not asked(q)]
        if not open_idx:
            return None
        select = getattr(self.personalizer, "next_question", None)
        # BTL/DPL learn nothing about a person from answers; NP-BTL's information gain needs a
        # particle posterior built from known people's choices (pluralign.active), which a run
        # folder does not hold, so NP-BTL runs are asked at random; VPL uses q(z | answers) and
        # Mix-BTL its exact posterior over its rewards
        if select is not None and self.has_latent and self.model_name != "np-btl":
            with self.lock, torch.inference_mode():
                pick = select(state, [pool[i] for i in open_idx], seed=seed % (2**31))
            j = open_idx[_picked_index(pick)]
            method = "active"
        else:
            j = random.Random(seed).choice(open_idx)
            method = "random"
        q = pool[j]
        return Question(j, q["prompt"], q["a"], q["b"], method)


class NotAPolicy(ValueError):
    """A policy-only request (generate) made of a reward-model run."""


def _picked_index(pick: Any) -> int:
    """Position in the pool from what ``next_question`` returns: ``(index, item)`` (issue 12's
    API), an index, or an object or dict with ``index``."""
    if isinstance(pick, tuple):
        return int(pick[0])
    if isinstance(pick, int):
        return pick
    if isinstance(pick, dict):
        return int(pick["index"])
    return int(getattr(pick, "index"))
