"""CMPO evaluation (thesis §5.4): attribute-conditioned preference accuracy, behaviour under lambda.

- Attribute-conditioned preference accuracy (eq. 5.1): on pairs oriented by one attribute a
  (y_c ≻_a y_r), the fraction with log pi(y_c | x) > log pi(y_r | x), the model conditioned on a:
  CMPO with the one-hot lambda = e_a, the per-attribute DPO model of a, SteerLM's ACM with a rated
  4 and every other attribute 0 (§5.4), SFT and the base model unconditioned. Beside it the
  implicit-reward accuracy (log pi/pi_ref of y_c above that of y_r), which does not penalise long
  responses for their length.
- Behaviour under lambda: greedy generations (App. A.1) for lambda moving from e_a to e_b, scored
  by attribute scorers (text -> float); the measured attribute should move monotonically.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ...data.records import PreferenceRecord
from ..logprobs import collate_tokenized, prompt_text, tokenize_pair
from .plural_heads import PluralLM

Scorer = Callable[[str], float]


@torch.no_grad()
def score_sequences(model: PluralLM, tokenizer: Any, prompts: Sequence[Any], responses: Sequence[Any],
                    weights: Any | None, *, max_length: int = 128, batch_size: int = 16,
                    reference: bool = False) -> torch.Tensor:
    """Summed response log-probs (N,) under lambda = ``weights`` (or the reference model)."""
    seqs = [tokenize_pair(tokenizer, p, r, max_length=max_length) for p, r in zip(prompts, responses)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]) + len(seqs[i][1]))
    out = torch.empty(len(seqs))
    model.eval()
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        batch = collate_tokenized([seqs[i] for i in idx], pad_token_id=pad,
                                  padding_side="left").to(model.device)
        lp = model.reference_logprobs(batch) if reference else model.logprobs(batch, weights)
        out[torch.tensor(idx)] = lp.float().cpu()
    return out


def pair_accuracy(logp_chosen: torch.Tensor, logp_rejected: torch.Tensor) -> float:
    """Eq. 5.1: fraction of pairs with log pi(y_c) > log pi(y_r) (ties count as wrong)."""
    return float((logp_chosen > logp_rejected).float().mean())


def conditioned_accuracy(model: PluralLM, tokenizer: Any, pairs: Sequence[PreferenceRecord],
                         weights: Any | None, *, max_length: int = 128,
                         prompt_fn: Callable[[Any], Any] | None = None,
                         reference: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, float]:
    """Eq. 5.1 accuracy of ``model`` under ``weights`` on oriented ``pairs``; with the reference
    log-probs ``(chosen, rejected)`` also the implicit-reward accuracy."""
    prompts = [prompt_fn(p.prompt) if prompt_fn else p.prompt for p in pairs]
    lc = score_sequences(model, tokenizer, prompts, [p.chosen for p in pairs], weights, max_length=max_length)
    lr = score_sequences(model, tokenizer, prompts, [p.rejected for p in pairs], weights, max_length=max_length)
    out = {"preference_accuracy": pair_accuracy(lc, lr), "n": len(pairs)}
    if reference is not None:
        rc, rr = reference
        out["reward_accuracy"] = pair_accuracy(lc - rc, lr - rr)
    return out


@torch.no_grad()
def generate_texts(model: PluralLM, tokenizer: Any, prompts: Sequence[Any], weights: Any | None, *,
                   max_new_tokens: int = 48, batch_size: int = 8,
                   prompt_fn: Callable[[Any], Any] | None = None, do_sample: bool = False,
                   repetition_penalty: float = 1.0) -> list[str]:
    """Completions of every prompt under lambda = ``weights``: greedy (App. A.1) unless
    ``do_sample``; ``repetition_penalty`` > 1 (HF/CTRL's) discourages the loops greedy decoding
    of a small LM falls into (1.0: off, the thesis' plain greedy)."""
    model.eval()
    texts: list[str] = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for s in range(0, len(prompts), batch_size):
        chunk = [prompt_fn(p) if prompt_fn else p for p in prompts[s:s + batch_size]]
        ids = [tokenizer(prompt_text(tokenizer, p), add_special_tokens=False)["input_ids"] for p in chunk]
        batch = collate_tokenized([(p, []) for p in ids], pad_token_id=pad, padding_side="left")
        out = model.generate(batch.input_ids.to(model.device), batch.attention_mask.to(model.device),
                             weights=weights, max_new_tokens=max_new_tokens, do_sample=do_sample,
                             pad_token_id=pad, repetition_penalty=repetition_penalty)
        for row in out[:, batch.input_ids.shape[1]:]:
            texts.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return texts


def interpolation(model: PluralLM, tokenizer: Any, prompts: Sequence[Any], first: str, second: str,
                  scorers: Mapping[str, Scorer], *, steps: int = 5, max_new_tokens: int = 48,
                  repetition_penalty: float = 1.0, progress: bool = True) -> list[dict[str, Any]]:
    """lambda_t = (1 - t) e_first + t e_second for t on ``steps`` points of [0, 1]; per t the mean
    of every scorer over the greedy generations (and the texts)."""
    rows = []
    for t in tqdm(np.linspace(0.0, 1.0, steps), desc=f"lambda {first}->{second}", disable=not progress):
        lam = (1 - t) * model.one_hot(first) + t * model.one_hot(second)
        texts = generate_texts(model, tokenizer, prompts, lam, max_new_tokens=max_new_tokens,
                               repetition_penalty=repetition_penalty)
        row = {"t": float(t), "weights": [round(float(x), 4) for x in lam]}
        row.update({f"{name}": float(np.mean([fn(x) for x in texts])) for name, fn in scorers.items()})
        row["texts"] = texts
        rows.append(row)
    return rows


def monotone(values: Sequence[float], increasing: bool) -> bool:
    """Non-strictly monotone in the given direction, and not constant."""
    d = np.diff(np.asarray(values, dtype=float))
    ok = bool(np.all(d >= 0)) if increasing else bool(np.all(d <= 0))
    return ok and bool(np.any(d != 0))


def spearman(values: Sequence[float]) -> float:
    """Rank correlation of ``values`` with their position (ties averaged)."""
    from scipy.stats import spearmanr

    v = np.asarray(values, dtype=float)
    if np.all(v == v[0]):
        return 0.0
    return float(spearmanr(np.arange(len(v)), v).statistic)
