"""Trained policies steered per person: one interface for NP-DPO and CMPO, used by the service.

A :class:`SteeredNPDPO` or :class:`SteeredCMPO` holds loaded objects only (:mod:`.runs` reads
run folders); both offer what :class:`pluralign.Personalizer` offers a reward model, plus
generation:

- ``user(choices)`` -> a :class:`PolicyUser`: the person's steering from their choices. NP-DPO
  (NP paper §3.2): z = set_encoder(embedded context pairs), exactly as in training
  (:meth:`NPDPOPolicy.encode`). CMPO (thesis §3.2.1 + :mod:`.cmpo.fewshot`): lambda inferred by
  the few-shot encoder from the per-head implicit rewards of the choices; with no choices (or a
  run without that encoder) the run's default, the uniform mixture of the heads.
- ``score(prompt, candidates, users)`` -> (U, N) implicit rewards log pi(y | x, steering) -
  log pi_ref(y | x) (DPO's reward up to its factor beta > 0, which orders candidates alike;
  NP paper eq. 24, thesis eq. 2.9).
- ``generate(prompt, steering, ...)`` -> :class:`Generated` (text and token count).

Steering is model state while a call runs (FiLM's z, CMPO's lambda hook): callers serialise calls
on one object (the service holds a lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from .logprobs import encode_prompts, prompt_text, tokenize_responses

MAX_SCORE_LENGTH = 512  # tokens of prompt + candidate when ranking by implicit reward


@dataclass
class PolicyUser:
    """One person's steering: ``z`` (NP-DPO: (1, z_dim); CMPO: lambda (1, k)) and where it came
    from: ``"choices"`` (inferred from them) or ``"none"`` (no choices: N^C = 0 / the default)."""

    n_choices: int
    z: torch.Tensor
    steered_by: str


@dataclass
class Generated:
    text: str
    tokens: int  # new tokens, the end-of-sequence token not counted
    finish_reason: str  # "stop" (end of sequence) or "length" (max_new_tokens reached)


def _choice_texts(choices: Sequence[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    prompts, chosen, rejected = [], [], []
    for i, c in enumerate(choices):
        if not isinstance(c, Mapping):
            c = {"prompt": getattr(c, "prompt", None), "chosen": getattr(c, "chosen", None),
                 "rejected": getattr(c, "rejected", None)}
        for name in ("chosen", "rejected"):
            if not isinstance(c.get(name), str) or not c[name].strip():
                raise ValueError(f"choice {i}: field {name!r} must be non-empty text")
        prompts.append(c.get("prompt") or "")
        chosen.append(c["chosen"])
        rejected.append(c["rejected"])
    return prompts, chosen, rejected


class _SteeredLM:
    """What both methods share: the tokenizer, prompt encoding, decoding and scoring."""

    name = ""

    def __init__(self, tokenizer: Any, lm: Any, device: torch.device):
        self.tokenizer, self._lm, self.device = tokenizer, lm, device
        self.model_name = self.name
        config = getattr(lm, "config", None)
        self.max_positions = int(getattr(config, "max_position_embeddings", 0)
                                 or getattr(config, "n_positions", 0) or 2048)

    # subclasses: the steered log-probs and generate(), and the reference log-probs
    def _logprobs(self, batch: Any, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _reference(self, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def _generate(self, enc: dict[str, torch.Tensor], z: torch.Tensor | None, **kw: Any) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def score(self, prompt: Any, candidates: Sequence[str], users: Sequence[PolicyUser]) -> torch.Tensor:
        """Implicit rewards (U, N): log pi(y | x, user's steering) - log pi_ref(y | x)."""
        candidates = list(candidates)
        if not candidates:
            raise ValueError("no candidates")
        batch = tokenize_responses(self.tokenizer, [prompt or ""] * len(candidates), candidates,
                                   max_length=MAX_SCORE_LENGTH).to(self.device)
        ref = self._reference(batch)
        return torch.stack([self._logprobs(batch, u.z) - ref for u in users]).float().cpu()

    @torch.no_grad()
    def generate(self, prompt: str, z: torch.Tensor | None, *, max_new_tokens: int = 64,
                 do_sample: bool = False, temperature: float = 0.7, top_p: float = 1.0,
                 seed: int = 0) -> Generated:
        """One answer to ``prompt`` (rendered with the chat template) under steering ``z``;
        greedy unless ``do_sample`` (then seeded, so a request is reproducible)."""
        if not prompt.strip():
            raise ValueError("prompt: must not be empty")
        enc = encode_prompts(self.tokenizer, [prompt_text(self.tokenizer, prompt)], self.device)
        n_prompt = enc["input_ids"].shape[1]
        if n_prompt + max_new_tokens > self.max_positions:
            raise ValueError(f"prompt: {n_prompt} tokens + max_new_tokens {max_new_tokens} exceed the model's "
                             f"{self.max_positions} positions; shorten the prompt")
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        kw: dict[str, Any] = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, pad_token_id=pad,
                                  eos_token_id=tok.eos_token_id)
        if do_sample:
            kw.update(temperature=temperature, top_p=top_p)
            torch.manual_seed(seed)
        new = self._generate(enc, z, **kw)[0, n_prompt:].tolist()
        stopped = tok.eos_token_id is not None and tok.eos_token_id in new
        if stopped:
            new = new[:new.index(tok.eos_token_id)]
        while new and new[-1] == pad:
            new.pop()
        return Generated(tok.decode(new, skip_special_tokens=True), len(new), "stop" if stopped else "length")


class SteeredNPDPO(_SteeredLM):
    """An NP-DPO policy with the embedder of its context options (``embedder=None`` for an
    unconditioned policy, film=False: BTL-DPO, steered by nothing)."""

    name = "np-dpo"

    def __init__(self, policy: Any, tokenizer: Any, embedder: Any | None):
        super().__init__(tokenizer, policy.lm.get_base_model(), next(policy.parameters()).device)
        self.policy = policy.eval()
        self.embedder = embedder
        self.has_latent = policy.film is not None
        if not self.has_latent:
            self.model_name = "dpo"  # an unconditioned LoRA-DPO policy (film=False): one for everyone
        if self.has_latent and embedder is None:
            raise ValueError("an NP-DPO policy with FiLM needs the embedder of its context options")
        self.attributes: list[str] = []

    @torch.no_grad()
    def user(self, choices: Sequence[Any] = ()) -> PolicyUser:
        """z = encoder(context) from the person's choices (N^C = 0: the empty context's z)."""
        choices = list(choices)
        if not self.has_latent:
            return PolicyUser(len(choices), torch.zeros(1, 0), "none")
        d = self.policy.config.option_dim
        if choices:
            prompts, chosen, rejected = _choice_texts(choices)
            v = self.embedder.embed([p for p in prompts for _ in (0, 1)],
                                    [o for pair in zip(chosen, rejected) for o in pair]).float()
            if v.shape[1] != d:
                raise ValueError(f"the choices embed to {v.shape[1]} features, the policy expects {d} "
                                 f"(embedder {self.policy.config.context_embedder!r})")
            cc, cr = v[0::2][None].to(self.device), v[1::2][None].to(self.device)
        else:
            cc = cr = torch.zeros(1, 0, d, device=self.device)
        mask = torch.ones(1, cc.shape[1], dtype=torch.bool, device=self.device)
        return PolicyUser(len(choices), self.policy.encode(cc, cr, mask), "choices" if choices else "none")

    def _steer(self, z: torch.Tensor | None) -> torch.Tensor | None:
        return z if self.has_latent else None

    def _logprobs(self, batch: Any, z: torch.Tensor) -> torch.Tensor:
        return self.policy.logprobs(batch, self._steer(z))

    def _reference(self, batch: Any) -> torch.Tensor:
        return self.policy.reference_logprobs(batch)

    def _generate(self, enc: dict[str, torch.Tensor], z: torch.Tensor | None, **kw: Any) -> torch.Tensor:
        return self.policy.generate(enc["input_ids"], enc["attention_mask"], z=self._steer(z), **kw)


class SteeredCMPO(_SteeredLM):
    """A CMPO plural model, with its few-shot lambda encoder when the run has one
    (``fewshot``), and the ``beta`` / ``max_length`` that encoder's features were made with."""

    name = "cmpo"

    def __init__(self, model: Any, tokenizer: Any, fewshot: Any | None = None, *, beta: float = 0.5,
                 max_length: int = 96):
        super().__init__(tokenizer, model._causal, model.device)
        self.model = model.eval()
        self.fewshot = fewshot.eval() if fewshot is not None else None
        if self.fewshot is not None and self.fewshot.config.k != model.k:
            raise ValueError(f"the few-shot encoder infers {self.fewshot.config.k} weights, the model has "
                             f"{model.k} heads")
        self.beta, self.max_length = beta, max_length
        self.has_latent = self.fewshot is not None
        self.attributes: list[str] = model.attributes

    def default_weights(self) -> torch.Tensor:
        """The run's default lambda: every head alike (1/k each), (1, k)."""
        return torch.full((1, self.model.k), 1.0 / self.model.k)

    def weights(self, named: Mapping[str, float]) -> torch.Tensor:
        """lambda (1, k) from ``{attribute: weight}`` (missing: 0); unknown names, NaN or all
        zeros are a ValueError naming the fault."""
        lam = self.model.as_weights(dict(named))  # unknown names, NaN, inf -> ValueError
        if not bool(lam.any()):
            raise ValueError(f"weights: all zero; give at least one non-zero weight of {self.attributes}")
        return lam.reshape(1, -1).float().cpu()

    @torch.no_grad()
    def user(self, choices: Sequence[Any] = ()) -> PolicyUser:
        """lambda inferred from the choices by the few-shot encoder; the default without them."""
        choices = list(choices)
        if not choices or self.fewshot is None:
            return PolicyUser(len(choices), self.default_weights(), "none")
        from .cmpo.fewshot import head_rewards

        prompts, chosen, rejected = _choice_texts(choices)
        feats = head_rewards(self.model, self.tokenizer, prompts + prompts, chosen + rejected, beta=self.beta,
                             max_length=self.max_length, features=self.fewshot.config.features, progress=False)
        c = len(choices)
        mask = torch.ones(1, c, dtype=torch.bool)
        lam = self.fewshot.weights(feats[:c][None], feats[c:][None], mask)
        return PolicyUser(c, lam.float().cpu(), "choices")

    def _logprobs(self, batch: Any, z: torch.Tensor) -> torch.Tensor:
        return self.model.logprobs(batch, z.reshape(-1))

    def _reference(self, batch: Any) -> torch.Tensor:
        return self.model.reference_logprobs(batch)

    def _generate(self, enc: dict[str, torch.Tensor], z: torch.Tensor | None, **kw: Any) -> torch.Tensor:
        lam = (z if z is not None else self.default_weights()).reshape(-1)
        return self.model.generate(enc["input_ids"], enc["attention_mask"], weights=lam, **kw)
