"""The in-context-learning baseline: the base LM shown the user's own choices in its prompt.

Issue 16 item 4 (cf. Rezk et al., 2025: plain in-context learning beats reward-guided
personalisation at a few billion parameters). No training: the user's k choices become examples
in one user turn, followed by the new question. The template (:data:`TEMPLATE`):

    Here are questions this person asked earlier, each with the answer they preferred and the
    answer they rejected.

    Example 1
    Question: {prompt}
    Preferred answer: {chosen}
    Rejected answer: {rejected}

    ... (one block per choice, in the order given)

    Answer the next question the way this person would prefer.

    Question: {prompt}

With no examples the prompt is the question alone, so the ICL model *is* the base model at
k = 0. The turn goes through the tokenizer's chat template like every other policy prompt
(:func:`pluralign.policies.logprobs.tokenize_pair`). Example answers are cut to
``max_example_words`` words so k examples fit the context (the cut is recorded in the config).

Scoring (:func:`icl_pair_scores`): for a target pair, log pi(y | ICL prompt) of chosen and rejected
(eq. 5.1's comparison when used raw) and the same under the plain prompt. The *implicit reward*
of ICL is log pi(y | examples, x) - log pi(y | x): exactly DPO's r = log pi/pi_ref with the
examples playing the role of the adaptation and the base model without examples the reference,
so it is the quantity NP-DPO's accuracy compares and it removes the base model's own preference
(e.g. for short answers) that a raw likelihood comparison keeps.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import torch
from tqdm.auto import tqdm

from ..train.config import check_types
from .logprobs import (collate_tokenized, encode_prompts, prompt_text, sequence_logprobs, summed_logprobs,
                       tokenize_pair)

TEMPLATE = {
    "intro": "Here are questions this person asked earlier, each with the answer they preferred and "
             "the answer they rejected.",
    "example": "Example {i}\nQuestion: {prompt}\nPreferred answer: {chosen}\nRejected answer: {rejected}",
    "outro": "Answer the next question the way this person would prefer.",
    "question": "Question: {prompt}",
}

Example = tuple[Any, Any, Any]  # (prompt, chosen, rejected)


@dataclass
class ICLConfig:
    """k: choices shown (CMPO's table; NP-DPO uses its N^C points). max_example_words: each
    example answer cut to this many words. max_length: tokens per ICL prompt + response (the
    prompt keeps its end when cut). batch_size: sequences per forward."""

    k: int = 5
    max_example_words: int = 60
    max_length: int = 1024
    batch_size: int = 4

    def __post_init__(self) -> None:
        check_types(self)
        if self.k < 0 or self.max_example_words < 1 or self.max_length < 8 or self.batch_size < 1:
            raise ValueError("icl: k >= 0, max_example_words >= 1, max_length >= 8, batch_size >= 1")


def load_icl_model(base_model: str) -> torch.nn.Module:
    """The base LM the ICL baseline prompts (no adapters), on the GPU when there is one."""
    from ..features.offline import load_base_model

    lm = load_base_model(base_model)
    return lm.to("cuda") if torch.cuda.is_available() else lm


def _text(x: Any) -> str:
    from .logprobs import response_text

    return x if isinstance(x, str) else response_text(x) if isinstance(x, list) else str(x)


def _cut(text: str, words: int) -> str:
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[:words]) + " ..."


def icl_prompt(prompt: Any, examples: Sequence[Example], max_example_words: int = 60) -> str:
    """The user turn of the ICL baseline (:data:`TEMPLATE`); the bare question without examples."""
    question = prompt if isinstance(prompt, str) else _text(prompt)
    if not examples:
        return question
    blocks = [TEMPLATE["intro"]]
    for i, (p, c, r) in enumerate(examples, 1):
        blocks.append(TEMPLATE["example"].format(i=i, prompt=_text(p), chosen=_cut(_text(c), max_example_words),
                                                 rejected=_cut(_text(r), max_example_words)))
    blocks += [TEMPLATE["outro"], TEMPLATE["question"].format(prompt=question)]
    return "\n\n".join(blocks)


@torch.no_grad()
def icl_logprobs(lm: torch.nn.Module, tokenizer: Any, prompts: Sequence[str], responses: Sequence[Any],
                 config: ICLConfig, progress: bool = True, groups: Sequence[Hashable] | None = None) -> torch.Tensor:
    """(N,) summed log pi(response | prompt) under ``lm`` for already-built (ICL) prompts
    (a progress bar: prompts of ~1,500 tokens make this tens of minutes on a CPU).

    ``groups``: one key per sequence. Sequences with the same key (one user's examples) share
    the longest common token prefix of their prompts, and that prefix goes through the model
    once; its keys and values are reused for every sequence of the group (:func:`_group_logprobs`).
    The result is the same as scoring each sequence whole up to float rounding (a test says
    so); it saves most of the work when k examples of ~170 tokens each precede every question.
    ``None``: every sequence scored whole (the reference path)."""
    seqs = [tokenize_pair(tokenizer, p, _text(r), max_length=config.max_length) for p, r in zip(prompts, responses)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(lm.parameters()).device
    if groups is not None and len(groups) != len(seqs):
        raise ValueError(f"{len(groups)} group keys for {len(seqs)} sequences")
    result = torch.empty(len(seqs))
    was_training = lm.training
    lm.eval()
    bar = tqdm(total=len(seqs), desc="ICL log-probs", disable=not progress, leave=False)
    if groups is None:
        _whole_logprobs(lm, seqs, list(range(len(seqs))), pad, config.batch_size, device, result, bar)
    else:
        by_key: dict[Hashable, list[int]] = {}
        for i, key in enumerate(groups):
            by_key.setdefault(key, []).append(i)
        for members in by_key.values():
            _group_logprobs(lm, seqs, members, pad, config.batch_size, device, result, bar)
    bar.close()
    lm.train(was_training)
    return result


def _whole_logprobs(lm: torch.nn.Module, seqs: Sequence[tuple[list[int], list[int]]], members: Sequence[int],
                    pad: int, batch_size: int, device: torch.device, result: torch.Tensor, bar: Any) -> None:
    """Score ``seqs[members]`` whole, into ``result[members]``."""
    # sort by length so a batch pads little
    order = sorted(members, key=lambda i: len(seqs[i][0]) + len(seqs[i][1]))
    for s in range(0, len(order), batch_size):
        chunk = order[s:s + batch_size]
        batch = collate_tokenized([seqs[i] for i in chunk], pad_token_id=pad, padding_side="left").to(device)
        result[torch.as_tensor(chunk, dtype=torch.long)] = sequence_logprobs(lm, batch).float().cpu()
        bar.update(len(chunk))


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


#: a shared prefix shorter than this is not worth a separate forward pass and a cache copy
MIN_SHARED_PREFIX = 16


def _group_logprobs(lm: torch.nn.Module, seqs: Sequence[tuple[list[int], list[int]]], members: Sequence[int],
                    pad: int, batch_size: int, device: torch.device, result: torch.Tensor, bar: Any) -> None:
    """Score ``seqs[members]`` with their shared prompt prefix computed once, into ``result``.

    The prefix stops at least one token before the shortest prompt, so every response token is
    predicted inside the suffix pass. Each suffix batch runs on a copy of the prefix's cache
    repeated over the batch, right-padded, with positions continuing after the prefix."""
    first = seqs[members[0]][0]
    shared = min(len(seqs[i][0]) for i in members) - 1
    for i in members[1:]:
        shared = min(shared, _common_prefix(first, seqs[i][0]))
    if shared < MIN_SHARED_PREFIX:
        _whole_logprobs(lm, seqs, members, pad, batch_size, device, result, bar)
        return
    prefix = lm(input_ids=torch.tensor([first[:shared]], device=device), use_cache=True, logits_to_keep=1)
    # transformers renamed past_key_values to cache (5.2x; the old name goes in 5.40)
    cache_arg = "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"
    cache = prefix["cache"] if "cache" in prefix else prefix["past_key_values"]
    order = sorted(members, key=lambda i: len(seqs[i][0]) + len(seqs[i][1]))
    for s in range(0, len(order), batch_size):
        chunk = order[s:s + batch_size]
        tails = [(seqs[i][0][shared:], seqs[i][1]) for i in chunk]
        batch = collate_tokenized(tails, pad_token_id=pad, padding_side="right").to(device)
        n, width = batch.input_ids.shape
        batch_cache = copy.deepcopy(cache)
        batch_cache.batch_repeat_interleave(n)
        attention = torch.cat([torch.ones(n, shared, dtype=batch.attention_mask.dtype, device=device),
                               batch.attention_mask], dim=1)
        positions = torch.arange(shared, shared + width, device=device).expand(n, width)
        first_resp = int(torch.nonzero(batch.response_mask.any(dim=0))[0])
        keep = width - max(first_resp - 1, 0)
        out = lm(input_ids=batch.input_ids, attention_mask=attention, position_ids=positions,
                 use_cache=True, logits_to_keep=keep, **{cache_arg: batch_cache})
        scores = summed_logprobs(out.logits, batch.input_ids, batch.response_mask)
        result[torch.as_tensor(chunk, dtype=torch.long)] = scores.float().cpu()
        bar.update(len(chunk))


def icl_pair_scores(lm: torch.nn.Module, tokenizer: Any, examples: Sequence[Sequence[Example]],
                    prompts: Sequence[Any], chosen: Sequence[Any], rejected: Sequence[Any],
                    config: ICLConfig, plain: torch.Tensor | None = None,
                    share_prefix: bool = True) -> dict[str, torch.Tensor]:
    """Per target pair i (its own ``examples[i]``): ``icl`` (2N,) log-probs under the ICL prompt,
    ``plain`` (2N,) without examples (pass a cached one to skip that pass), chosen rows first;
    ``raw_correct`` (N,) eq. 5.1 (log pi_ICL(y_c) > log pi_ICL(y_r)) and ``reward_correct`` (N,)
    on the implicit reward log pi_ICL - log pi_plain; ties count 1/2. ``share_prefix``: targets
    shown the same examples share one pass over them (:func:`icl_logprobs`' ``groups``)."""
    n = len(prompts)
    with_ex = [icl_prompt(p, ex, config.max_example_words) for p, ex in zip(prompts, examples)]
    keys = [tuple((_text(p), _text(c), _text(r)) for p, c, r in ex) for ex in examples]
    groups = keys + keys if share_prefix else None
    icl = icl_logprobs(lm, tokenizer, with_ex + with_ex, list(chosen) + list(rejected), config, groups=groups)
    if plain is None:
        bare = [icl_prompt(p, (), config.max_example_words) for p in prompts]
        plain = icl_logprobs(lm, tokenizer, bare + bare, list(chosen) + list(rejected), config,
                             groups=[()] * (2 * n) if share_prefix else None)

    def correct(margin: torch.Tensor) -> torch.Tensor:
        return (margin > 0).float() + 0.5 * (margin == 0).float()

    reward = icl - plain
    return {"icl": icl, "plain": plain, "raw_correct": correct(icl[:n] - icl[n:]),
            "reward_correct": correct(reward[:n] - reward[n:])}


@torch.no_grad()
def icl_generate(lm: torch.nn.Module, tokenizer: Any, prompts: Sequence[Any], examples: Sequence[Example], *,
                 max_new_tokens: int = 96, do_sample: bool = True, temperature: float = 0.7, top_p: float = 0.9,
                 repetition_penalty: float = 1.0, seed: int = 0, max_example_words: int = 60) -> list[str]:
    """Answers of ``lm`` to ``prompts``, each shown the same ``examples`` (one user's choices);
    seeded so two users' answers differ only through their examples."""
    texts = [prompt_text(tokenizer, icl_prompt(p, examples, max_example_words)) for p in prompts]
    enc = encode_prompts(tokenizer, texts, next(lm.parameters()).device)
    torch.manual_seed(seed)
    kw = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, pad_token_id=tokenizer.pad_token_id,
              eos_token_id=tokenizer.eos_token_id, repetition_penalty=repetition_penalty)
    if do_sample:
        kw.update(temperature=temperature, top_p=top_p)
    lm.eval()
    out = lm.generate(**enc, **kw)
    return tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
