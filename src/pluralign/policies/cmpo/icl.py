"""CMPO's in-context-learning baseline (issue 16 item 4): the base LM shown k choices of a user of
one attribute (:mod:`pluralign.policies.icl`) in place of lambda = e_attribute.

* **Accuracy** (:func:`icl_accuracy`): the test pairs of an attribute (the same pairs as the CMPO
  accuracy table), each scored under its own draw of k training pairs oriented by that attribute
  (a user who prefers it). Eq. 5.1 compares raw log pi_ICL(y_c) and log pi_ICL(y_r); the
  implicit-reward accuracy subtracts log pi(y | x) without examples — the base model, CMPO's own
  reference — so both columns mean what they mean for CMPO. Ties count as wrong, as in
  :func:`.evaluate.pair_accuracy`.
* **Steering** (:func:`icl_steering`): greedy answers to the test prompts for a user of each end
  of the interpolation path (k examples each, the selected repetition penalty), scored by the
  same attribute scorers as CMPO's lambda path.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ...data.cmpo_weights import RatedResponse
from ..icl import ICLConfig, icl_generate, icl_pair_scores
from .evaluate import pair_accuracy
from .experiment import CMPOExperimentConfig, dpo_pairs


def attribute_examples(train: Sequence[RatedResponse], attribute: str, config: CMPOExperimentConfig, k: int,
                       rng: np.random.Generator) -> list[tuple[Any, Any, Any]]:
    """k training pairs oriented by ``attribute`` (a user who prefers it), drawn without replacement."""
    pool = dpo_pairs(train, attribute, config)
    if not pool:
        raise ValueError(f"no training pairs oriented by {attribute!r} for the ICL examples")
    idx = rng.choice(len(pool), size=min(k, len(pool)), replace=False)
    return [(pool[i].prompt, pool[i].chosen, pool[i].rejected) for i in idx]


def icl_accuracy(lm: Any, tokenizer: Any, sets: Mapping[str, Sequence[Any]], train: Sequence[RatedResponse],
                 config: CMPOExperimentConfig, icl: ICLConfig, seed: int) -> dict[str, dict[str, Any]]:
    """``{attribute: {"preference_accuracy", "reward_accuracy", "n", "k"}}`` on ``sets`` (records
    with prompt/chosen/rejected per attribute)."""
    out = {}
    for j, (a, pairs) in enumerate(sets.items()):
        rng = np.random.default_rng([seed, j])
        examples = [attribute_examples(train, a, config, icl.k, rng) for _ in pairs]
        s = icl_pair_scores(lm, tokenizer, examples, [p.prompt for p in pairs], [p.chosen for p in pairs],
                            [p.rejected for p in pairs], icl)
        n = len(pairs)
        reward = s["icl"] - s["plain"]
        out[a] = {"preference_accuracy": pair_accuracy(s["icl"][:n], s["icl"][n:]),
                  "reward_accuracy": pair_accuracy(reward[:n], reward[n:]), "n": n, "k": icl.k}
    return out


def icl_steering(lm: Any, tokenizer: Any, prompts: Sequence[Any], attributes: Sequence[str],
                 train: Sequence[RatedResponse], config: CMPOExperimentConfig, icl: ICLConfig,
                 scorers: Mapping[str, Callable[[str], float]], *, max_new_tokens: int, repetition_penalty: float,
                 seed: int) -> dict[str, dict[str, float]]:
    """``{attribute: {scorer: mean over prompts}}``: greedy answers for a user of each attribute."""
    out = {}
    for j, a in enumerate(attributes):
        ex = attribute_examples(train, a, config, icl.k, np.random.default_rng([seed, 100 + j]))
        texts = icl_generate(lm, tokenizer, prompts, ex, max_new_tokens=max_new_tokens, do_sample=False,
                             repetition_penalty=repetition_penalty, seed=seed,
                             max_example_words=icl.max_example_words)
        out[a] = {name: float(np.mean([fn(t) for t in texts])) for name, fn in scorers.items()}
    return out
