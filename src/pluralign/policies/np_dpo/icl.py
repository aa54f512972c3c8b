"""NP-DPO's in-context-learning baseline (issue 16 item 4): the base LM shown a test task's N^C
context pairs as examples (:mod:`pluralign.policies.icl`), scored on the *same* tasks and targets
as NP-DPO (the paired design of :mod:`.evaluate`), and its steered answers for the same new
users as :func:`.evaluate.steered_behaviour` draws.

Accuracy is the implicit-reward accuracy, log pi(y | examples, x) - log pi(y | x) of the chosen
above the rejected target, because NP-DPO's curve is implicit-reward accuracy against the base
model (see the module docstring of :mod:`pluralign.policies.icl`); at N^C = 0 the ICL prompt *is*
the plain prompt, every margin is 0 and the accuracy is exactly 50 % (ties count 1/2). The raw
likelihood comparison (eq. 5.1 style) is kept beside it under ``icl (raw likelihood)``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ...eval.metrics import summarize
from ..icl import ICLConfig, icl_generate, icl_pair_scores
from .data import PolicyData
from .evaluate import PolicyEvalConfig, sample_type_tasks


def _examples(data: PolicyData, pairs: Sequence[int]) -> list[tuple[Any, Any, Any]]:
    return [(data.records[i].prompt, data.records[i].chosen, data.records[i].rejected) for i in pairs]


def icl_accuracy_vs_context(lm: torch.nn.Module, tokenizer: Any, data: PolicyData, config: PolicyEvalConfig,
                            icl: ICLConfig, name: str = "icl") -> dict[str, Any]:
    """``{"models", "per_type", "per_task"}`` entries for ``name`` and ``name (raw likelihood)``,
    on the tasks :func:`.evaluate.sample_type_tasks` draws from ``config`` (the same tasks as
    every other model scored with that config)."""
    tasks = sample_type_tasks(data, config)
    raw_name = f"{name} (raw likelihood)"
    out: dict[str, Any] = {"models": {}, "per_type": {name: {}, raw_name: {}}, "per_task": {name: {}, raw_name: {}}}
    overall: dict[str, dict[int, list]] = {name: {n: [] for n in config.context_sizes},
                                          raw_name: {n: [] for n in config.context_sizes}}
    for t, items in tasks.items():
        rows = [(j, int(p)) for j, it in enumerate(items) for p in it.target]
        task_of = np.asarray([j for j, _ in rows])
        recs = [data.records[p] for _, p in rows]
        plain = None
        per = {name: {}, raw_name: {}}
        for n in config.context_sizes:
            examples = [_examples(data, items[j].context[:n]) for j, _ in rows]
            scores = icl_pair_scores(lm, tokenizer, examples, [r.prompt for r in recs], [r.chosen for r in recs],
                                     [r.rejected for r in recs], icl, plain=plain)
            plain = scores["plain"]  # the same targets at every N^C: the no-example pass once
            for key, col in ((name, "reward_correct"), (raw_name, "raw_correct")):
                ok = scores[col].numpy()
                per[key][n] = np.asarray([ok[task_of == j].mean() for j in range(len(items))])
        for key in (name, raw_name):
            out["per_type"][key][str(t)] = {str(n): summarize(a) for n, a in per[key].items()}
            out["per_task"][key][str(t)] = {str(n): a.tolist() for n, a in per[key].items()}
            for n, a in per[key].items():
                overall[key][n].append(a)
    for key in (name, raw_name):
        out["models"][key] = {str(n): summarize(np.concatenate(a)) for n, a in overall[key].items()}
    return out


def icl_behaviour(lm: torch.nn.Module, tokenizer: Any, data: PolicyData, prompts: Sequence[str], *, k: int = 4,
                  users_per_type: int = 2, attribute: str = "length", seed: int = 0, max_example_words: int = 60,
                  **generate_kwargs: Any) -> list[dict[str, Any]]:
    """Table rows ``{"model": "icl N^C=k", "user_type", "mean", "stderr", "n"}``: answers of the
    base LM shown k choices of a new user. Users and their k choices are drawn exactly as
    :func:`.evaluate.steered_behaviour` draws them (same RNG calls in the same order), so ICL and
    NP-DPO steer for the same people with the same choices."""
    from ...data.builtin.scorers import score

    rng = np.random.default_rng(seed)
    users = np.asarray(data.users)
    types = np.asarray(data.types)
    rows = []
    for t in sorted(set(types.tolist()) - {-1}):
        names = sorted(set(users[types == t].tolist()))
        values: list[float] = []
        for user in rng.choice(names, size=min(users_per_type, len(names)), replace=False):
            pairs = np.flatnonzero(users == user)
            ctx = rng.choice(pairs, size=min(k, len(pairs)), replace=False)
            answers = icl_generate(lm, tokenizer, prompts, _examples(data, ctx), seed=seed,
                                   max_example_words=max_example_words, **generate_kwargs)
            values += [score(a, [attribute])[attribute] for a in answers]
        s = summarize(np.asarray(values))
        rows.append({"model": f"icl N^C={k}", "user_type": int(t), "mean": float(np.mean(values)),
                     "stderr": s["stderr"], "n": s["n"]})
    return rows
