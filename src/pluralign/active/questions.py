"""Asking a person the next question through a :class:`pluralign.Personalizer` (issue 12, item 4).

A pool of candidate questions is a sequence of pairs — ``{"prompt", "a", "b"}`` dicts or
``(prompt, a, b)`` tuples of text (or chat messages) for text runs, numeric vectors for numeric
runs, or an (M, 2, D) tensor of vectors. The pairs are mapped to model inputs exactly as the
person's choices are (the run's embedder and standardisation), then :func:`select_queries` picks
the pair whose answer is expected to tell the most about this person given the choices they have
made (``user``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from .posterior import ParticlePosterior
from .select import Pool, select_queries

if TYPE_CHECKING:  # the Personalizer imports this module lazily
    from ..personalizer import Personalizer, UserState


def _pair(item: Any, i: int) -> tuple[Any, Any, Any]:
    if isinstance(item, Mapping):
        missing = [k for k in ("a", "b") if k not in item]
        if missing:
            raise ValueError(f"pool item {i}: missing field(s) {missing} (expected prompt, a, b)")
        return item.get("prompt") or "", item["a"], item["b"]
    if isinstance(item, (tuple, list)) and len(item) == 3:
        return item[0] or "", item[1], item[2]
    raise ValueError(f"pool item {i}: expected a dict with prompt/a/b or a (prompt, a, b) tuple, "
                     f"got {type(item).__name__}")


def pool_vectors(personalizer: "Personalizer", pool: Sequence[Any] | torch.Tensor) -> Pool:
    """The pool as model inputs (a :class:`Pool`); reuse the result to ask many people."""
    if isinstance(pool, Pool):
        return pool
    if isinstance(pool, torch.Tensor):
        Pool.of(pool, personalizer.option_dim)  # shape and size checks before standardising
        raw = pool.float().cpu()
        return Pool.of(personalizer.features.transform(raw.reshape(-1, raw.shape[-1]).to(personalizer.device))
                       .cpu().reshape(raw.shape), personalizer.option_dim)
    items = [_pair(it, i) for i, it in enumerate(pool)]
    if not items:
        raise ValueError("the pool is empty: there are no pairs to ask about")
    choices = [{"prompt": p, "chosen": a, "rejected": b} for p, a, b in items]
    a, b = personalizer._choice_vectors(choices)  # the same mapping as the person's own choices
    return Pool.of((a.cpu(), b.cpu()), personalizer.option_dim)


def particles_from_people(personalizer: "Personalizer", people: Sequence[Sequence[Any]],
                          lapse: float = 0.05) -> ParticlePosterior:
    """NP-BTL's particle posterior from the choices of known people (e.g. training users): one
    particle per person, z = the model's latent of their choices. Build once, reuse for everyone."""
    states = [personalizer.user(choices) for choices in people]
    if not states:
        raise ValueError("no people to build particles from")
    width = max(s.n_choices for s in states)
    d = personalizer.option_dim
    chosen, rejected = torch.zeros(len(states), width, d), torch.zeros(len(states), width, d)
    mask = torch.zeros(len(states), width, dtype=torch.bool)
    for i, s in enumerate(states):
        chosen[i, : s.n_choices], rejected[i, : s.n_choices] = s.context_chosen[0].cpu(), s.context_rejected[0].cpu()
        mask[i, : s.n_choices] = True
    return ParticlePosterior.from_contexts(personalizer.model.cpu(), chosen, rejected, mask, lapse)


def next_question(personalizer: "Personalizer", user: "UserState", pool: Sequence[Any] | torch.Tensor | Pool,
                  *, strategy: str = "info-gain", exclude: Sequence[int] | None = None,
                  particles: ParticlePosterior | None = None, seed: int = 0, **kwargs: Any) -> tuple[int, Any]:
    """(index, pool item) of the question to ask ``user`` next; ``kwargs`` go to
    :func:`select_queries` (n_samples, n_candidates)."""
    if not personalizer.has_latent:
        from .posterior import NoLatentError

        raise NoLatentError(f"active selection needs a latent model: this run's {personalizer.model_name!r} "
                            "ranks options the same for everyone; train np-btl or vpl")
    vectors = pool_vectors(personalizer, pool)
    answered = (user.context_chosen[0].cpu(), user.context_rejected[0].cpu())
    idx = int(select_queries(personalizer.model.cpu(), vectors, answered, 1, strategy, seed, exclude=exclude,
                             particles=particles, **kwargs)[0])
    item = pool[idx] if not isinstance(pool, (Pool, torch.Tensor)) else (vectors.a[idx], vectors.b[idx])
    return idx, item
