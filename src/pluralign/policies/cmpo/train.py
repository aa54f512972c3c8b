"""CMPO training and its baselines as (step_fn, batch_fn, val_fn) for the one training loop.

- CMPO (thesis §3.2.3, eq. 3.3): cDPO on weight-conditioned pairs (x, y_c ≻ y_r | lambda);
  pi_theta is the plural model under lambda, pi_ref the base model (heads unsplit, LoRA off).
  Defaults beta = 0.5, label smoothing eps = 0.1 (§5.3.1).
- per-attribute DPO (§5.3.1): the same objective with k = 1 and lambda = [1] on the pairs
  oriented by one attribute — :func:`make_pair_steps` with ``constant_weights``.
- SFT (§5.3.1): NLL on every distinct (prompt, response): :func:`make_sft_steps`.
- SteerLM (§5.3.1, attribute-conditioned SFT): SFT with the response's attribute ratings written
  into the prompt (:func:`steerlm_prompt`).

Everything is tokenised once up front; the reference log-probs never change, so they are
computed once per sequence (:func:`pluralign.policies.reference.precompute_reference`).
Batches are drawn with a generator seeded by (seed, stream, step): exact resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ...data.cmpo_weights import ConditionedPair
from ...losses import cdpo_loss
from ..logprobs import collate_tokenized, tokenize_pair
from .plural_heads import PluralLM
from ..reference import precompute_reference

Sequences = list[tuple[list[int], list[int]]]


@dataclass
class CMPOObjective:
    """cDPO knobs (TRL names) and batching. Thesis §5.3.1: beta 0.5, label smoothing 0.1."""

    beta: float = 0.5
    label_smoothing: float = 0.1
    batch_size: int = 8
    max_length: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if self.batch_size < 1 or self.max_length < 2:
            raise ValueError("batch_size must be >= 1 and max_length >= 2")


@dataclass
class CachedRows:
    """Trunk states that predict response tokens, per sequence (valid while the trunk is frozen)."""

    hidden: list[torch.Tensor]  # per sequence (m_i, H)
    labels: list[torch.Tensor]  # per sequence (m_i,) long

    def batch(self, index: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = list(index)
        rows = torch.cat([torch.full((len(self.labels[i]),), r, dtype=torch.long) for r, i in enumerate(idx)])
        return {"hidden_rows": torch.cat([self.hidden[i] for i in idx]),
                "labels": torch.cat([self.labels[i] for i in idx]), "rows": rows}


class TrunkCache:
    """Trunk states per distinct sequence, shared by every model on the same frozen trunk.

    With ``lora=False`` the trunk never changes, so CMPO, its baselines (SFT, per-attribute DPO),
    the reference and the evaluation all reuse one forward pass per (prompt, response).
    ``save``/``load`` keep it across processes (a plain ``torch.save`` file, not a checkpoint).
    """

    def __init__(self) -> None:
        self.entries: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    @staticmethod
    def key(sequence: tuple[list[int], list[int]]) -> tuple[int, ...]:
        p, r = sequence
        return (len(p), *p, *r)

    @torch.no_grad()
    def rows(self, model: PluralLM, sequences: Sequences, pad_token_id: int, batch_size: int = 16,
             progress: bool = True) -> CachedRows:
        """Cached rows of ``sequences``, running the frozen trunk on the ones not seen yet."""
        if model.config.lora:
            raise ValueError("trunk states can only be cached when the trunk is frozen (lora=False)")
        from tqdm.auto import tqdm

        todo = list({self.key(q): q for q in sequences if self.key(q) not in self.entries}.values())
        todo.sort(key=lambda q: len(q[0]) + len(q[1]))
        was = model.training
        model.eval()
        for s in tqdm(range(0, len(todo), batch_size), desc="trunk states", disable=not progress, leave=False):
            chunk = todo[s:s + batch_size]
            batch = collate_tokenized(chunk, pad_token_id=pad_token_id, padding_side="left").to(model.device)
            states = model.hidden_states(batch)[:, :-1]
            mask = batch.response_mask[:, 1:]
            for r, q in enumerate(chunk):
                self.entries[self.key(q)] = (states[r][mask[r]].float().cpu().clone(),
                                             batch.input_ids[r, 1:][mask[r]].cpu().clone())
        model.train(was)
        got = [self.entries[self.key(q)] for q in sequences]
        return CachedRows([g[0] for g in got], [g[1] for g in got])

    def save(self, path: str) -> None:
        import os

        tmp = f"{path}.tmp"
        torch.save(self.entries, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> "TrunkCache":
        import os

        cache = cls()
        if os.path.isfile(path):
            cache.entries = torch.load(path, weights_only=True)
        return cache


@dataclass
class PairTable:
    """Tokenised weight-conditioned pairs: P pairs, k attributes (``cache``: chosen rows 0..P-1,
    rejected rows P..2P-1)."""

    chosen: Sequences
    rejected: Sequences
    weights: torch.Tensor  # (P, k)
    reference_chosen: torch.Tensor  # (P,)
    reference_rejected: torch.Tensor  # (P,)
    pad_token_id: int
    cache: CachedRows | None = None

    def __len__(self) -> int:
        return len(self.chosen)

    def batch(self, index: Sequence[int]) -> dict[str, Any]:
        """Chosen then rejected sequences in one left-padded batch of 2B (or their cached rows)."""
        idx = list(index)
        ref = torch.cat([self.reference_chosen[idx], self.reference_rejected[idx]])
        out: dict[str, Any] = {"weights": self.weights[idx], "reference": ref}
        if self.cache is not None:
            out.update(self.cache.batch(idx + [len(self) + i for i in idx]))
        else:
            out["tokens"] = collate_tokenized([self.chosen[i] for i in idx] + [self.rejected[i] for i in idx],
                                              pad_token_id=self.pad_token_id, padding_side="left")
        return out


def pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def build_pair_table(model: PluralLM, tokenizer: Any, pairs: Sequence[ConditionedPair], *,
                     max_length: int = 128, constant_weights: Sequence[float] | None = None,
                     reference_batch_size: int = 16, progress: bool = True,
                     trunk_cache: TrunkCache | None = None) -> PairTable:
    """Tokenise ``pairs`` and compute their reference log-probs once.

    ``constant_weights`` replaces every pair's lambda (per-attribute DPO: ``[1.0]``). With a
    frozen trunk (``lora=False``) the trunk states are cached (in ``trunk_cache`` if given) and
    the reference is the base head on them.
    """
    if not pairs:
        raise ValueError("no training pairs")
    chosen = [tokenize_pair(tokenizer, p.prompt, p.chosen, max_length=max_length) for p in pairs]
    rejected = [tokenize_pair(tokenizer, p.prompt, p.rejected, max_length=max_length) for p in pairs]
    if constant_weights is not None:
        weights = torch.tensor([list(constant_weights)] * len(pairs), dtype=torch.float32)
    else:
        weights = torch.tensor([list(p.weights) for p in pairs], dtype=torch.float32)
    if weights.shape[1] != model.k:
        raise ValueError(f"pairs carry {weights.shape[1]} weights, the model has k = {model.k} heads")
    pad = pad_id(tokenizer)
    n = len(pairs)
    if model.config.lora:
        ref = precompute_reference(model.lm, chosen + rejected, pad_token_id=pad,
                                   batch_size=reference_batch_size, device=model.device, progress=progress)
        return PairTable(chosen, rejected, weights, ref[:n], ref[n:], pad)
    trunk_cache = trunk_cache or TrunkCache()
    cache = trunk_cache.rows(model, chosen + rejected, pad, reference_batch_size, progress)
    # a response sits in many pairs (all_pairs mode: ~10x): the reference once per distinct sequence
    keys = [TrunkCache.key(q) for q in chosen + rejected]
    distinct = list({k: q for k, q in zip(keys, chosen + rejected)}.values())
    position = {TrunkCache.key(q): i for i, q in enumerate(distinct)}
    ref_distinct = reference_from_rows(model, trunk_cache.rows(model, distinct, pad, reference_batch_size, False))
    ref = ref_distinct[torch.tensor([position[k] for k in keys])]
    return PairTable(chosen, rejected, weights, ref[:n], ref[n:], pad, cache)


@torch.no_grad()
def reference_from_rows(model: PluralLM, cache: CachedRows, batch_size: int = 32) -> torch.Tensor:
    """log pi_ref (the base head on the frozen trunk's states) of every cached sequence: (N,)."""
    out = []
    head = model._base_head
    for s in range(0, len(cache.labels), batch_size):
        b = cache.batch(range(s, min(s + batch_size, len(cache.labels))))
        logits = (b["hidden_rows"].to(model.device) @ head.weight.T).float()
        lp = torch.log_softmax(logits, -1).gather(1, b["labels"].to(model.device)[:, None]).squeeze(1)
        n = min(batch_size, len(cache.labels) - s)
        out.append(torch.zeros(n, device=lp.device).index_add(0, b["rows"].to(model.device), lp).cpu())
    return torch.cat(out)


@torch.no_grad()
def rows_logprobs(model: PluralLM, cache: CachedRows, weights: Any, batch_size: int = 32) -> torch.Tensor:
    """Summed log-probs under lambda = ``weights`` ((k,)) of every cached sequence: (N,)."""
    lam = model.as_weights(weights)
    out = []
    for s in range(0, len(cache.labels), batch_size):
        n = min(batch_size, len(cache.labels) - s)
        b = cache.batch(range(s, s + n))
        out.append(model.logprobs_from_rows(b["hidden_rows"].to(model.device), b["labels"].to(model.device),
                                            b["rows"].to(model.device), n, lam).cpu())
    return torch.cat(out)


@torch.no_grad()
def rows_vertex_logprobs(model: PluralLM, cache: CachedRows, batch_size: int = 32) -> torch.Tensor:
    """Summed log-probs of every cached sequence under the reference (column 0) and each one-hot
    lambda (columns 1..k): (N, k + 1), one shared base projection per batch."""
    out = []
    for s in range(0, len(cache.labels), batch_size):
        n = min(batch_size, len(cache.labels) - s)
        b = cache.batch(range(s, s + n))
        out.append(model.vertex_logprobs_from_rows(b["hidden_rows"].to(model.device), b["labels"].to(model.device),
                                                   b["rows"].to(model.device), n).cpu())
    return torch.cat(out)


def sampler(n: int, batch_size: int, seed: int) -> Callable[[int, int], np.ndarray]:
    """Indices of the batch for (step, stream): deterministic, with replacement across steps."""
    def draw(step: int, stream: int) -> np.ndarray:
        rng = np.random.default_rng([seed, stream, step])
        return rng.choice(n, size=min(batch_size, n), replace=False)
    return draw


def pair_logps(model: PluralLM, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Policy log-probs (B,) of chosen and rejected under each pair's lambda (one trunk pass,
    or none when the batch carries cached trunk states)."""
    weights = batch["weights"]
    b = weights.shape[0]
    both = torch.cat([weights, weights])
    if "hidden_rows" in batch:
        logps = model.logprobs_from_rows(batch["hidden_rows"], batch["labels"], batch["rows"], 2 * b, both)
    else:
        logps = model.logprobs(batch["tokens"], both)
    return logps[:b], logps[b:]


def make_pair_steps(table: PairTable, objective: CMPOObjective):
    """(step_fn, batch_fn) for cDPO on ``table`` (CMPO, or per-attribute DPO with k = 1)."""
    draw = sampler(len(table), objective.batch_size, objective.seed)

    def batch_fn(step: int, stream: int) -> dict[str, Any]:
        return table.batch(draw(step, stream))

    def step_fn(model: PluralLM, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        pc, pr = pair_logps(model, batch)
        b = pc.shape[0]
        ref = batch["reference"]
        losses, rc, rr = cdpo_loss(pc, pr, ref[:b], ref[b:], beta=objective.beta,
                                   label_smoothing=objective.label_smoothing)
        return losses.mean(), {"reward_accuracy": float((rc > rr).float().mean()),
                               "reward_margin": float((rc - rr).mean())}

    return step_fn, batch_fn


@torch.no_grad()
def table_metrics(model: PluralLM, table: PairTable, objective: CMPOObjective,
                  batch_size: int = 16) -> dict[str, float]:
    """On every pair of ``table``: cDPO loss, implicit-reward accuracy, and eq. 5.1 preference
    accuracy (log pi_lambda(y_c) > log pi_lambda(y_r))."""
    was = model.training
    model.eval()
    loss = acc = pref = 0.0
    for s in range(0, len(table), batch_size):
        idx = list(range(s, min(s + batch_size, len(table))))
        batch = table.batch(idx)
        pc, pr = pair_logps(model, batch)
        ref = batch["reference"]
        losses, rc, rr = cdpo_loss(pc, pr, ref[:len(idx)], ref[len(idx):], beta=objective.beta,
                                   label_smoothing=objective.label_smoothing)
        loss += float(losses.sum())
        acc += float((rc > rr).float().sum())
        pref += float((pc > pr).float().sum())
    model.train(was)
    n = len(table)
    return {"loss": loss / n, "reward_accuracy": acc / n, "preference_accuracy": pref / n}


# --- SFT and SteerLM ------------------------------------------------------------------------

def make_sft_steps(sequences: Sequences, pad_token_id: int, batch_size: int = 8, seed: int = 0,
                   cache: CachedRows | None = None):
    """(step_fn, batch_fn): mean per-token NLL of the responses (prompt tokens excluded), with
    lambda uniform over the heads. ``cache``: the sequences' cached trunk states."""
    if not sequences:
        raise ValueError("no SFT sequences")
    draw = sampler(len(sequences), batch_size, seed)

    def batch_fn(step: int, stream: int) -> Any:
        idx = list(draw(step, stream))
        if cache is not None:
            return cache.batch(idx)
        return collate_tokenized([sequences[i] for i in idx], pad_token_id=pad_token_id, padding_side="left")

    def step_fn(model: PluralLM, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        lam = torch.ones(model.k, device=model.device) / model.k
        if isinstance(batch, dict):
            n = int(batch["rows"].max()) + 1
            logps = model.logprobs_from_rows(batch["hidden_rows"], batch["labels"], batch["rows"], n, lam)
            n_tokens = batch["labels"].numel()
        else:
            logps = model.logprobs(batch, lam)
            n_tokens = batch.response_mask[:, 1:].sum()
        return -logps.sum() / n_tokens, {}

    return step_fn, batch_fn


def likert_bins(values: Sequence[float], levels: int = 5) -> np.ndarray:
    """Interior quantile edges turning raw scores into 0..levels-1 ratings (SteerLM's scale)."""
    return np.quantile(np.asarray(values, dtype=float), np.linspace(0, 1, levels + 1)[1:-1])


def to_likert(value: float, edges: np.ndarray) -> int:
    return int(np.searchsorted(edges, value, side="right"))


def steerlm_prompt(prompt: Any, ratings: Mapping[str, int]) -> Any:
    """The prompt with attribute ratings written in (SteerLM's attribute-conditioned model).

    The thesis puts the ratings after the assistant tag (Table A.1); with a chat template we
    append them to the user turn, so the response boundary stays exact.
    """
    tag = "Attributes: " + ",".join(f"{a}:{int(v)}" for a, v in ratings.items())
    if isinstance(prompt, str):
        return f"{prompt}\n\n{tag}"
    messages = [dict(m) for m in prompt]
    messages[-1]["content"] = f"{messages[-1]['content']}\n\n{tag}"
    return messages
