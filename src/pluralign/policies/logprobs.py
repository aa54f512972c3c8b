"""Tokenising (prompt, response) pairs for a causal LM and summing response log-probs.

The prompt is rendered with the tokenizer's chat template (a user turn plus the generation
prompt) when it has one, otherwise used as plain text; the response is tokenised separately
and ends with the EOS token, so the model learns when to stop (TRL does the same). Prompt and
response ids are concatenated, so the boundary is exact whatever the template. ``response_mask``
is True on response tokens only; prompt and padding never count. Padding may be on either
side: explicit ``position_ids`` (cumulative attention mask) make left- and right-padded
batches give the same log-probs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Sequence

import torch
from torch import nn

Text = str | list[dict[str, str]]


@dataclass
class TokenizedResponses:
    """A padded batch of N prompt+response sequences of length L."""

    input_ids: torch.Tensor  # (N, L) long
    attention_mask: torch.Tensor  # (N, L) long, 1 on real tokens
    response_mask: torch.Tensor  # (N, L) bool, True on response tokens only

    @property
    def position_ids(self) -> torch.Tensor:
        """(N, L) positions counted over real tokens only (0 on left padding)."""
        return (self.attention_mask.cumsum(dim=1) - 1).clamp(min=0)

    def to(self, device: torch.device | str) -> "TokenizedResponses":
        return TokenizedResponses(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def prompt_text(tokenizer: Any, prompt: Text, *, use_chat_template: bool | None = None) -> str:
    """The prompt as the model sees it before the response.

    ``prompt`` is a string (one user turn) or a list of chat messages. With a chat template
    (``use_chat_template=None`` means "if the tokenizer has one") the generation prompt is
    appended; without one, messages are joined by newlines.
    """
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    template = bool(getattr(tokenizer, "chat_template", None)) if use_chat_template is None else use_chat_template
    if template:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n".join(m["content"] for m in messages) + ("\n" if messages and messages[-1]["content"] else "")


def encode_prompts(tokenizer: Any, prompts: Sequence[str], device: Any = "cpu") -> dict[str, torch.Tensor]:
    """Left-padded ``input_ids`` / ``attention_mask`` of already-rendered prompt texts, for
    ``generate`` (new tokens follow every prompt directly); the tokenizer's side is restored."""
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = old_side
    return {k: v.to(device) for k, v in enc.items()}


def response_text(response: Text) -> str:
    """A response given as text or as chat messages (the last assistant turn's content)."""
    if isinstance(response, str):
        return response
    turns = [m for m in response if m.get("role") == "assistant"]
    if not turns:
        raise ValueError("a conversational response needs an assistant message")
    return turns[-1]["content"]


def tokenize_pair(tokenizer: Any, prompt: Text, response: Text, *, max_length: int = 128,
                  use_chat_template: bool | None = None) -> tuple[list[int], list[int]]:
    """(prompt_ids, response_ids) for one sequence, response ending with EOS.

    When too long, the prompt is cut from the left (its end matters most), keeping at most
    half of ``max_length``, then the response is cut from the right.
    """
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}")
    p_ids = tokenizer(prompt_text(tokenizer, prompt, use_chat_template=use_chat_template),
                      add_special_tokens=False)["input_ids"]
    r_ids = tokenizer(response_text(response), add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos_token; responses need an end token")
    r_ids = list(r_ids) + [tokenizer.eos_token_id]
    if len(p_ids) + len(r_ids) > max_length:
        keep_prompt = min(len(p_ids), max(max_length - len(r_ids), max_length // 2))
        p_ids = p_ids[len(p_ids) - keep_prompt:]
        r_ids = r_ids[: max_length - len(p_ids)]
    if not p_ids:
        # a causal LM cannot score its first token; give the response a one-token prompt
        p_ids = [tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id]
        r_ids = r_ids[: max_length - 1]
    return list(p_ids), list(r_ids)


def collate_tokenized(pairs: Sequence[tuple[list[int], list[int]]], *, pad_token_id: int,
                      padding_side: str = "right") -> TokenizedResponses:
    """Pad (prompt_ids, response_ids) sequences into a :class:`TokenizedResponses`."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if not pairs:
        raise ValueError("no sequences to collate")
    width = max(len(p) + len(r) for p, r in pairs)
    n = len(pairs)
    ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    resp = torch.zeros((n, width), dtype=torch.bool)
    for i, (p, r) in enumerate(pairs):
        length = len(p) + len(r)
        start = 0 if padding_side == "right" else width - length
        ids[i, start:start + length] = torch.tensor(p + r, dtype=torch.long)
        attn[i, start:start + length] = 1
        resp[i, start + len(p):start + length] = True
    return TokenizedResponses(ids, attn, resp)


def tokenize_responses(tokenizer: Any, prompts: Sequence[Text], responses: Sequence[Text], *,
                       max_length: int = 128, padding_side: str = "right",
                       use_chat_template: bool | None = None) -> TokenizedResponses:
    """Tokenise and pad N (prompt, response) pairs. See :func:`tokenize_pair`."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pairs = [tokenize_pair(tokenizer, p, r, max_length=max_length, use_chat_template=use_chat_template)
             for p, r in zip(prompts, responses)]
    return collate_tokenized(pairs, pad_token_id=pad, padding_side=padding_side)


def summed_logprobs(logits: torch.Tensor, input_ids: torch.Tensor,
                    response_mask: torch.Tensor) -> torch.Tensor:
    """Sum over response tokens of log p(token | previous tokens).

    Args: ``logits`` (N, K, V) for the last K positions of the sequences (K = L for all),
    ``input_ids`` (N, L), ``response_mask`` (N, L) bool. Returns (N,).
    """
    n, k, _ = logits.shape
    length = input_ids.shape[1]
    if k > length:
        raise ValueError(f"{k} logit positions for sequences of length {length}")
    # logits at position t predict token t+1; the kept logits cover positions L-K .. L-1
    labels = input_ids[:, length - k + 1:]
    mask = response_mask[:, length - k + 1:]
    if (response_mask[:, : length - k + 1].any()):
        raise ValueError("logits_to_keep drops positions that predict response tokens")
    logits = logits[:, :-1]
    # log-softmax only where it counts: (M, V) rows instead of (N, K, V)
    return sum_token_logprobs(logits[mask], labels[mask], torch.nonzero(mask, as_tuple=True)[0], n)


def sum_token_logprobs(logits: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    """(n,) per-sequence sums of log p(label) over logit rows: ``logits`` (M, V) in any dtype
    (the log-softmax is taken in float32), ``labels`` (M,), ``rows`` (M,) the sequence of each row."""
    token_logps = torch.log_softmax(logits.float(), dim=-1).gather(1, labels.unsqueeze(1)).squeeze(1)
    return torch.zeros(n, dtype=token_logps.dtype, device=logits.device).index_add(0, rows, token_logps)


def sequence_logprobs(model: nn.Module, batch: TokenizedResponses) -> torch.Tensor:
    """Summed response log-probs of every sequence under ``model``. Returns (N,).

    Only the logits that predict response tokens are computed when the model supports
    ``logits_to_keep`` (saves the vocabulary projection over the prompt).
    """
    idx = torch.nonzero(batch.response_mask.any(dim=0))
    first = int(idx[0]) if len(idx) else batch.input_ids.shape[1] - 1
    keep = batch.input_ids.shape[1] - max(first - 1, 0)
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                position_ids=batch.position_ids, logits_to_keep=keep, use_cache=False)
    return summed_logprobs(out.logits, batch.input_ids, batch.response_mask)
