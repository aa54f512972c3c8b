"""Evaluate a CMPO run (thesis §5.4 + the few-shot extension) and write the results.

:func:`run_evaluation`: per attribute, eq. 5.1 preference accuracy and implicit-reward accuracy of
CMPO (one-hot lambda) vs base, SFT, per-attribute DPO and SteerLM on held-out pairs; greedy
generations while lambda moves from one attribute to another, scored by the attribute scorers.
:func:`run_fewshot`: the few-shot lambda encoder trained on simulated users of the training
prompts, evaluated on new users of the test prompts with 1..5 choices each.
"""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ...data.cmpo_weights import RatedResponse, attribute_pairs
from ...train.loop import fit
from ...data.tasks import collate
from .evaluate import interpolation, monotone, pair_accuracy, score_sequences, spearman
from .experiment import (CMPOExperimentConfig, _subsample, all_pairs, load_stage, stage_names,
                              steerlm_condition, trunk_cache_for)
from .fewshot import (FewShotConfig, FewShotWeights, fewshot_step, option_features, recovery,
                           simulate_users)
from .train import TrunkCache, pad_id, reference_from_rows, rows_logprobs, rows_vertex_logprobs
from ..logprobs import tokenize_pair
from .plural_heads import PluralLM


def logprobs_of(model: PluralLM, tokenizer: Any, prompts: Sequence[Any], responses: Sequence[Any],
                weights: Any | None, config: CMPOExperimentConfig, cache: TrunkCache | None) -> torch.Tensor:
    """log pi (or log pi_ref when ``weights`` is None) of every (prompt, response): (N,)."""
    if cache is not None and not model.config.lora:
        seqs = [tokenize_pair(tokenizer, p, r, max_length=config.max_length) for p, r in zip(prompts, responses)]
        rows = cache.rows(model, seqs, pad_id(tokenizer), progress=False)
        return reference_from_rows(model, rows) if weights is None else rows_logprobs(model, rows, weights)
    return score_sequences(model, tokenizer, prompts, responses, weights, max_length=config.max_length,
                           reference=weights is None)


def vertex_logprobs_of(model: PluralLM, tokenizer: Any, prompts: Sequence[Any], responses: Sequence[Any],
                       config: CMPOExperimentConfig, cache: TrunkCache | None) -> torch.Tensor:
    """(N, k + 1): log pi_ref (column 0) and log pi under each one-hot lambda (columns 1..k).
    With a cached frozen trunk all columns share one base projection per batch."""
    if cache is not None and not model.config.lora:
        seqs = [tokenize_pair(tokenizer, p, r, max_length=config.max_length) for p, r in zip(prompts, responses)]
        return rows_vertex_logprobs(model, cache.rows(model, seqs, pad_id(tokenizer), progress=False))
    ref = logprobs_of(model, tokenizer, prompts, responses, None, config, cache)
    heads = [logprobs_of(model, tokenizer, prompts, responses, model.one_hot(j), config, cache)
             for j in range(model.k)]
    return torch.stack([ref, *heads], dim=1)


def _eval_model(name: str, model: PluralLM, tokenizer: Any, sets: Mapping[str, list], config, cache,
                out: dict) -> None:
    attrs = config.attributes
    for a, pairs in sets.items():
        if name.startswith("dpo_") and name != f"dpo_{a}":
            continue
        prompts = [p.prompt for p in pairs]
        if name == "steerlm":
            prompts = [steerlm_condition(p, a, attrs) for p in prompts]
        if name == "cmpo":
            j = 1 + attrs.index(a)
            vc = vertex_logprobs_of(model, tokenizer, prompts, [p.chosen for p in pairs], config, cache)
            vr = vertex_logprobs_of(model, tokenizer, prompts, [p.rejected for p in pairs], config, cache)
            lc, lr, rc, rr = vc[:, j], vr[:, j], vc[:, 0], vr[:, 0]
        else:
            lc = logprobs_of(model, tokenizer, prompts, [p.chosen for p in pairs], [1.0], config, cache)
            lr = logprobs_of(model, tokenizer, prompts, [p.rejected for p in pairs], [1.0], config, cache)
            rc = logprobs_of(model, tokenizer, prompts, [p.chosen for p in pairs], None, config, cache)
            rr = logprobs_of(model, tokenizer, prompts, [p.rejected for p in pairs], None, config, cache)
        key = "dpo" if name.startswith("dpo_") else name
        out.setdefault(a, {})[key] = {"preference_accuracy": pair_accuracy(lc, lr),
                                      "reward_accuracy": pair_accuracy(lc - rc, lr - rr), "n": len(pairs)}
        if name == "cmpo":
            # the base model is the reference: its implicit reward is 0, no reward accuracy
            out[a]["base"] = {"preference_accuracy": pair_accuracy(rc, rr), "reward_accuracy": None,
                              "n": len(pairs)}


def run_evaluation(out_dir: str | Path, config: CMPOExperimentConfig, test: Sequence[RatedResponse],
                   tokenizer: Any, scorers: Mapping[str, Callable[[str], float]], *,
                   interpolate: Sequence[tuple[str, str]] = (), n_pairs: int = 40, n_prompts: int = 8,
                   max_new_tokens: int = 48, repetition_penalty: float = 1.0, seed: int = 0) -> dict[str, Any]:
    """Accuracy table + interpolation; writes ``eval.json`` and ``accuracy.csv`` under ``out_dir``."""
    out = Path(out_dir)
    t0 = time.time()
    cache = trunk_cache_for(config, out)
    pool = all_pairs(test, config.attributes)
    sets = {a: _subsample(attribute_pairs(pool, a, config.margins.get(a, 0.0)), n_pairs, seed)
            for a in config.attributes}
    accuracy: dict[str, dict] = {}
    params = None
    for name in stage_names(out):
        model = load_stage(out, name)
        _eval_model(name, model, tokenizer, sets, config, cache, accuracy)
        if name == "cmpo":
            params = model.parameter_report()
        del model
        gc.collect()
    results: dict[str, Any] = {"accuracy": accuracy, "parameters": params, "interpolation": {}}
    prompts = list(dict.fromkeys(r.prompt for r in test))[:n_prompts]
    if interpolate:
        model = load_stage(out, "cmpo")
        for first, second in interpolate:
            rows = interpolation(model, tokenizer, prompts, first, second, scorers,
                                 max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty)
            summary = {name: {"values": [r[name] for r in rows], "spearman": spearman([r[name] for r in rows]),
                              "monotone_increasing": monotone([r[name] for r in rows], True),
                              "monotone_decreasing": monotone([r[name] for r in rows], False)}
                       for name in scorers}
            results["interpolation"][f"{first}->{second}"] = {
                "rows": rows, "summary": summary,
                "decoding": {"greedy": True, "max_new_tokens": max_new_tokens,
                             "repetition_penalty": repetition_penalty, "prompts": len(prompts)}}
        del model
    results["wall_s"] = round(time.time() - t0, 1)
    if cache is not None:
        cache.save(str(out / "trunk_cache.pt"))
    (out / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["attribute,model,preference_accuracy,reward_accuracy,n"]
    for a, models in accuracy.items():
        for m, v in models.items():
            ra = "" if v["reward_accuracy"] is None else f"{v['reward_accuracy']:.4f}"
            lines.append(f"{a},{m},{v['preference_accuracy']:.4f},{ra},{v['n']}")
    (out / "accuracy.csv").write_text("\n".join(lines) + "\n")
    return results


def _pool_features(model: PluralLM, tokenizer: Any, rated: Sequence[RatedResponse], config, cache,
                   max_pairs: int, seed: int, features: str):
    """Pool pairs of ``rated`` with per-head implicit-reward features and attribute scores."""
    pool = _subsample(all_pairs(rated, config.attributes), max_pairs, seed)
    # every response sits in several within-prompt pairs: score each distinct one once
    keys = {}
    for p in pool:
        for y in (p.chosen, p.rejected):
            keys.setdefault((repr(p.prompt), repr(y)), (p.prompt, y))
    index = {key: i for i, key in enumerate(keys)}
    items = list(keys.values())
    v = vertex_logprobs_of(model, tokenizer, [x[0] for x in items], [x[1] for x in items], config, cache)
    n_tokens = torch.tensor([len(tokenize_pair(tokenizer, p, y, max_length=config.max_length)[1]) for p, y in items])
    rewards = option_features(config.beta * (v[:, 1:] - v[:, :1]), n_tokens, features)  # (distinct, k * views)
    feats = [rewards[torch.tensor([index[(repr(p.prompt), repr(getattr(p, side)))] for p in pool])]
             for side in ("chosen", "rejected")]
    sa = np.array([[p.attributes[a][0] for a in config.attributes] for p in pool])
    sb = np.array([[p.attributes[a][1] for a in config.attributes] for p in pool])
    margins = np.array([config.margins.get(a, 0.0) for a in config.attributes])
    # gaps below the margin are ties: no user of that attribute labels the pair
    tie = np.abs(sa - sb) < np.maximum(margins, 1e-12)
    sa = np.where(tie, 0.0, sa)
    sb = np.where(tie, 0.0, sb)
    return feats[0], feats[1], sa, sb


def run_fewshot(out_dir: str | Path, config: CMPOExperimentConfig, train: Sequence[RatedResponse],
                val: Sequence[RatedResponse], test: Sequence[RatedResponse], tokenizer: Any, *,
                steps: int = 3000, users: int = 60, pairs_per_user: int = 20, max_pool: int = 600,
                contexts: Sequence[int] = (1, 2, 3, 4, 5), pair_symmetry: str = "none", draws: int = 1,
                features: str = "sum+mean", seed: int = 0) -> dict[str, Any]:
    """Train the few-shot lambda encoder on users of the train prompts; recovery on test users."""
    out = Path(out_dir)
    t0 = time.time()
    cache = trunk_cache_for(config, out)
    model = load_stage(out, "cmpo")
    tables = {}
    for split, rated, n_users, s in (("train", train, users * 4, seed), ("val", val, users, seed + 1),
                                     ("test", test, users, seed + 2)):
        fa, fb, sa, sb = _pool_features(model, tokenizer, rated, config, cache, max_pool, s, features)
        tables[split] = simulate_users(fa, fb, sa, sb, n_users=n_users, pairs_per_user=pairs_per_user,
                                       seed=s, prefix=f"{split}-user")
    del model
    gc.collect()
    if cache is not None:
        cache.save(str(out / "trunk_cache.pt"))
    # the simulated users' option features, for inspection (a plain torch.save file, not a checkpoint)
    (out / "fewshot").mkdir(parents=True, exist_ok=True)
    torch.save({k: vars(t) for k, t in tables.items()}, out / "fewshot" / "users.pt")
    torch.manual_seed(seed)  # the encoder's init must not depend on what ran before (accuracy, generation)
    enc = FewShotWeights(FewShotConfig(k=len(config.attributes), pair_symmetry=pair_symmetry, features=features))
    enc.fit_scale(torch.cat([tables["train"].chosen, tables["train"].rejected]))
    sampler = tables["train"].sampler(context_range=(0, max(contexts)), n_target=10, seed=seed)
    train_table = tables["train"]

    def batch_fn(step: int, stream: int):
        return collate(sampler.sample(32, step, stream), train_table.chosen, train_table.rejected)

    def val_fn(m):
        return {"recovered": recovery(m, tables["val"], n_context=max(contexts), seed=seed, draws=draws)["recovered"]}

    from ...train.config import TrainConfig

    tc = TrainConfig(learning_rate=3e-3, max_steps=steps, eval_steps=max(steps // 5, 1), save_steps=steps,
                     logging_steps=25, metric_for_best_model="recovered", greater_is_better=True,
                     load_best_model_at_end=True, seed=seed, use_cpu=True, resume_from_checkpoint=False)
    result = fit(enc, fewshot_step, batch_fn, tc, out / "fewshot" / "fit", val_fn=val_fn)
    enc.save_pretrained(out / "fewshot" / "model")
    rows = [recovery(enc, tables["test"], n_context=c, seed=seed, draws=draws) for c in contexts]
    res = {"rows": rows, "train_users": len(set(tables["train"].user_ids)),
           "test_users": len(set(tables["test"].user_ids)), "best_val": result.best_metrics,
           "pair_symmetry": pair_symmetry, "features": features, "draws": draws,
           "wall_s": round(time.time() - t0, 1)}
    (out / "fewshot.json").write_text(json.dumps(res, indent=2) + "\n")
    return res
