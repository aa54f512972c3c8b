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

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from ..train.config import check_types
from .logprobs import collate_tokenized, encode_prompts, prompt_text, sequence_logprobs, tokenize_pair

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
                 config: ICLConfig, progress: bool = True) -> torch.Tensor:
    """(N,) summed log pi(response | prompt) under ``lm`` for already-built (ICL) prompts
    (a progress bar: prompts of ~1,500 tokens make this tens of minutes on a CPU)."""
    seqs = [tokenize_pair(tokenizer, p, _text(r), max_length=config.max_length) for p, r in zip(prompts, responses)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(lm.parameters()).device
    out = []
    was_training = lm.training
    lm.eval()
    # sort by length so a batch pads little; the result goes back in the caller's order
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]) + len(seqs[i][1]))
    for s in tqdm(range(0, len(order), config.batch_size), desc="ICL log-probs", disable=not progress, leave=False):
        chunk = order[s:s + config.batch_size]
        batch = collate_tokenized([seqs[i] for i in chunk], pad_token_id=pad, padding_side="left").to(device)
        out.append(sequence_logprobs(lm, batch).float().cpu())
    lm.train(was_training)
    flat = torch.cat(out) if out else torch.zeros(0)
    result = torch.empty(len(seqs))
    result[torch.as_tensor(order, dtype=torch.long)] = flat
    return result


def icl_pair_scores(lm: torch.nn.Module, tokenizer: Any, examples: Sequence[Sequence[Example]],
                    prompts: Sequence[Any], chosen: Sequence[Any], rejected: Sequence[Any],
                    config: ICLConfig, plain: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per target pair i (its own ``examples[i]``): ``icl`` (2N,) log-probs under the ICL prompt,
    ``plain`` (2N,) without examples (pass a cached one to skip that pass), chosen rows first;
    ``raw_correct`` (N,) eq. 5.1 (log pi_ICL(y_c) > log pi_ICL(y_r)) and ``reward_correct`` (N,)
    on the implicit reward log pi_ICL - log pi_plain; ties count 1/2."""
    n = len(prompts)
    with_ex = [icl_prompt(p, ex, config.max_example_words) for p, ex in zip(prompts, examples)]
    icl = icl_logprobs(lm, tokenizer, with_ex + with_ex, list(chosen) + list(rejected), config)
    if plain is None:
        bare = [icl_prompt(p, (), config.max_example_words) for p in prompts]
        plain = icl_logprobs(lm, tokenizer, bare + bare, list(chosen) + list(rejected), config)

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
