"""CMPO plural model: one shared transformer trunk, k LM heads mixed by attribute weights.

CMPO thesis §3.2.1, eq. 3.1: P(y | x) = softmax(sum_j lambda_j · h W_j), where h is the trunk's
last hidden state and W_j the j-th linear LM head. Every head starts as a copy of the base LM
head (with tied embeddings the embedding matrix is copied, so the heads can move while the
embeddings stay frozen). The trunk is fine-tuned with LoRA on the attention projections
(thesis §5.2); the heads are trained in full.

Conditioning is explicit: every log-prob/generation call takes ``weights`` (lambda), or a
``steered(weights)`` context manager sets them for the body only, restoring the previous value
on exit — no state leaks between calls. Generation goes through the base model's own
``generate``: a forward hook on the base LM head replaces its logits by the mixture while a
lambda is set. With no lambda set the hook is inert, so the same object *is* the reference
policy "before the heads were split" once LoRA is switched off (:meth:`PluralLM.reference_logprobs`):
no copy of the base model is made (DESIGN.md §4).

Checkpoints hold only the trainable parts (LoRA + heads) plus the base model's id/path.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from ...checkpoint import load_state, save_state
from ..logprobs import TokenizedResponses, sum_token_logprobs
from ..reference import reference_mode
from .config import PluralConfig, attention_targets

WeightsLike = torch.Tensor | Sequence[float] | Sequence[Sequence[float]]


class PluralLM(nn.Module):
    """k LM heads on one (LoRA'd) causal-LM trunk; logits = sum_j lambda_j head_j(h) (eq. 3.1).

    Args:
        base: a Hugging Face causal LM; its own weights stay frozen.
        config: :class:`PluralConfig`.
    """

    def __init__(self, base: nn.Module, config: PluralConfig):
        super().__init__()
        self.config = config
        head = base.get_output_embeddings()
        if head is None or not hasattr(head, "weight"):
            raise ValueError(f"{type(base).__name__} has no linear output embedding to split")
        for p in base.parameters():
            p.requires_grad_(False)
        k = config.k
        weight = head.weight
        self.head_bias = None
        if config.head_rank is None:
            # (k, V, H): every head a copy of the base head (a copy, so tied embeddings stay put)
            self.heads = nn.Parameter(weight.detach().clone().unsqueeze(0).repeat(k, 1, 1),
                                      requires_grad=config.train_heads)
            bias = getattr(head, "bias", None)
            if bias is not None:
                self.head_bias = nn.Parameter(bias.detach().clone().unsqueeze(0).repeat(k, 1),
                                              requires_grad=config.train_heads)
        else:
            # low-rank heads (beyond the thesis): head_j = W + U_j V_j with W the frozen base head
            # (shared, not copied); U = 0 at the start, so every head starts as the base head
            if getattr(head, "bias", None) is not None:
                raise ValueError("head_rank is not supported for LM heads with a bias")
            r, (v, h) = config.head_rank, weight.shape
            self.heads = None
            g = torch.Generator().manual_seed(0)
            self.head_u = nn.Parameter(torch.zeros(k, v, r, dtype=weight.dtype), requires_grad=config.train_heads)
            self.head_v = nn.Parameter((torch.randn(k, r, h, generator=g) / h ** 0.5).to(weight.dtype),
                                       requires_grad=config.train_heads)
        self.__dict__["_base_head"] = head
        if config.lora:
            from peft import LoraConfig, get_peft_model

            targets = config.lora_target_modules or attention_targets(base)
            lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha,
                              lora_dropout=config.lora_dropout, target_modules=list(targets),
                              task_type="CAUSAL_LM")
            self.lm = get_peft_model(base, lora)
        else:
            self.lm = base
        # the plain HF model (PEFT injects LoRA in place, so it carries the adapters); kept out
        # of the module tree so its parameters are not registered twice
        self.__dict__["_causal"] = base
        self._weights: torch.Tensor | None = None
        self._hook = head.register_forward_hook(self._mix_hook)

    # --- lambda ----------------------------------------------------------------------------
    @property
    def k(self) -> int:
        return self.config.k

    @property
    def _ref_param(self) -> torch.Tensor:
        return self.heads if self.heads is not None else self.head_v

    @property
    def device(self) -> torch.device:
        return self._ref_param.device

    def head_weight(self, j: int) -> torch.Tensor:
        """The effective (V, H) weight of head j."""
        if self.heads is not None:
            return self.heads[j]
        return self._base_head.weight + self.head_u[j] @ self.head_v[j]

    @property
    def attributes(self) -> list[str]:
        return list(self.config.attributes)

    def as_weights(self, weights: WeightsLike | dict[str, float]) -> torch.Tensor:
        """lambda as a float tensor (k,) or (N, k) on the heads' device; a dict maps names to
        weights (missing names are 0). Errors name what is wrong."""
        if isinstance(weights, dict):
            unknown = sorted(set(weights) - set(self.attributes))
            if unknown:
                raise ValueError(f"unknown attribute(s) {unknown}; this model has {self.attributes}")
            weights = [float(weights.get(a, 0.0)) for a in self.attributes]
        lam = torch.as_tensor(weights, dtype=self._ref_param.dtype, device=self.device)
        if lam.dim() not in (1, 2) or lam.shape[-1] != self.k:
            raise ValueError(f"weights must be (k,) or (N, k) with k = {self.k}, got {tuple(lam.shape)}")
        if not torch.isfinite(lam).all():
            raise ValueError("weights contain NaN or inf")
        return lam

    def one_hot(self, attribute: str | int) -> torch.Tensor:
        """lambda = e_a for one attribute (name or index): (k,)."""
        j = self.attributes.index(attribute) if isinstance(attribute, str) else int(attribute)
        lam = torch.zeros(self.k, dtype=self._ref_param.dtype, device=self.device)
        lam[j] = 1.0
        return lam

    @contextmanager
    def steered(self, weights: WeightsLike | dict[str, float] | None) -> Iterator[None]:
        """Inside the body every forward of the LM uses the mixture ``weights``; ``None`` means
        the base head. The previous lambda is restored on exit (nesting is safe)."""
        previous = self._weights
        self._weights = None if weights is None else self.as_weights(weights)
        try:
            yield
        finally:
            self._weights = previous

    # --- the mixture ------------------------------------------------------------------------
    def mix_logits(self, hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sum_j lambda_j (h W_j^T + b_j).

        Args: ``hidden`` (N, ..., H); ``weights`` (k,) or (N, k). Returns (N, ..., V).
        Full heads are applied one at a time (peak memory two logit tensors, not k), and a head
        whose weight is zero in every row is skipped: one-hot lambda costs one projection, not k.
        """
        lam = weights.to(hidden.dtype)
        if lam.dim() == 2:
            if lam.shape[0] != hidden.shape[0]:
                if hidden.shape[0] % lam.shape[0]:
                    raise ValueError(f"{lam.shape[0]} weight rows for a batch of {hidden.shape[0]}")
                # generate() with num_return_sequences / beams repeats each row
                lam = lam.repeat_interleave(hidden.shape[0] // lam.shape[0], dim=0)
            lam = lam.reshape(lam.shape[0], *([1] * (hidden.dim() - 2)), self.k)
        def scaled(j: int, x: torch.Tensor) -> torch.Tensor:
            return lam[..., j] * x if lam.dim() == 1 else lam[..., j:j + 1] * x

        out = None
        if self.heads is None:
            # sum_j lambda_j (h W^T + (h V_j^T) U_j^T) = (sum_j lambda_j) h W^T + [lambda_j h V_j^T]_j [U_j^T]_j:
            # ONE vocabulary projection of width H plus one of width k·r (exact for any lambda)
            dt = hidden.dtype
            base = hidden @ self._base_head.weight.to(dt).T
            total = lam.sum(-1) if lam.dim() == 1 else lam.sum(-1, keepdim=True)
            k, v, r = self.head_u.shape
            z = torch.einsum("...h,jrh->...jr", hidden, self.head_v.to(dt))  # (N, ..., k, r)
            z = z * lam[..., None]
            u = self.head_u.to(dt).permute(0, 2, 1).reshape(k * r, v)  # (k·r, V)
            return total * base + z.reshape(*z.shape[:-2], k * r) @ u
        for j in range(self.k):
            if not bool(lam[..., j].any()):
                continue  # contributes 0 * logits
            logits_j = hidden @ self.heads[j].to(hidden.dtype).T
            if self.head_bias is not None:
                logits_j = logits_j + self.head_bias[j].to(hidden.dtype)
            term = scaled(j, logits_j)
            out = term if out is None else out + term
        return out if out is not None else hidden.new_zeros(*hidden.shape[:-1], self.heads.shape[1])

    def _mix_hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if self._weights is None:
            return None  # base head: the reference policy
        return self.mix_logits(inputs[0], self._weights).to(output.dtype)

    # --- log-probs ---------------------------------------------------------------------------
    def hidden_states(self, batch: TokenizedResponses) -> torch.Tensor:
        """Trunk output (N, L, H) (LoRA active unless inside :func:`reference_mode`)."""
        trunk = self._causal.base_model
        out = trunk(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                    position_ids=batch.position_ids, use_cache=False)
        return out.last_hidden_state

    def logprobs(self, batch: TokenizedResponses, weights: WeightsLike | dict[str, float]) -> torch.Tensor:
        """Summed response log-probs under pi_lambda(y | x): (N,). ``weights`` (k,) or (N, k).

        The trunk runs once; the heads are applied only where a response token is predicted.
        """
        return self.logprobs_from_hidden(self.hidden_states(batch), batch, self.as_weights(weights))

    def logprobs_from_hidden(self, hidden: torch.Tensor, batch: TokenizedResponses,
                             weights: torch.Tensor) -> torch.Tensor:
        """As :meth:`logprobs` from precomputed trunk states ``hidden`` (N, L, H).

        The trunk does not depend on lambda, so callers scoring many lambdas run it once.
        """
        mask = batch.response_mask[:, 1:]  # position t predicts token t+1
        labels = batch.input_ids[:, 1:][mask]
        rows = torch.nonzero(mask, as_tuple=True)[0]
        return self.logprobs_from_rows(hidden[:, :-1][mask], labels, rows, batch.input_ids.shape[0], weights)

    def logprobs_from_rows(self, hidden_rows: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor,
                           n: int, weights: torch.Tensor) -> torch.Tensor:
        """Summed log-probs (n,) from the trunk states that predict response tokens.

        Args: ``hidden_rows`` (M, H), ``labels`` (M,) the predicted tokens, ``rows`` (M,) the
        sequence of each row, ``weights`` (k,) or (n, k). Lets a frozen trunk be cached.
        """
        lam = weights if weights.dim() == 1 else weights[rows]
        return sum_token_logprobs(self.mix_logits(hidden_rows, lam), labels, rows, n)  # logits (M, V)

    def vertex_logprobs_from_rows(self, hidden_rows: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor,
                                  n: int) -> torch.Tensor:
        """Summed log-probs (n, k + 1) under the base head (column 0, the reference with a frozen
        trunk) and each one-hot lambda (columns 1..k), exact. With low-rank heads the base
        projection is computed once and shared by all k + 1 columns."""
        base = hidden_rows @ self._base_head.weight.to(hidden_rows.dtype).T
        if getattr(self._base_head, "bias", None) is not None:
            base = base + self._base_head.bias.to(hidden_rows.dtype)
        if self.heads is None:
            heads = [base + (hidden_rows @ self.head_v[j].to(hidden_rows.dtype).T) @ self.head_u[j].to(hidden_rows.dtype).T
                     for j in range(self.k)]
        else:
            heads = [self.mix_logits(hidden_rows, self.one_hot(j)) for j in range(self.k)]
        return torch.stack([sum_token_logprobs(logits, labels, rows, n) for logits in [base, *heads]], dim=1)

    def head_logprobs(self, batch: TokenizedResponses) -> torch.Tensor:
        """Log-probs under each one-hot lambda: (N, k), one trunk pass."""
        hidden = self.hidden_states(batch)
        return torch.stack([self.logprobs_from_hidden(hidden, batch, self.one_hot(j))
                            for j in range(self.k)], dim=1)

    @torch.no_grad()
    def reference_logprobs(self, batch: TokenizedResponses) -> torch.Tensor:
        """log pi_ref: the base model before the heads were split (base head, LoRA off): (N,)."""
        if self._weights is not None:
            raise RuntimeError("reference log-probs requested inside a steered() context")
        from ..logprobs import sequence_logprobs

        was_training = self.lm.training
        self.lm.eval()
        try:
            with self.reference():
                return sequence_logprobs(self._causal, batch)
        finally:
            self.lm.train(was_training)

    def reference(self):
        """Context manager: the base model (LoRA off; the head is the base one unless steered)."""
        return reference_mode(self.lm) if self.config.lora else nullcontext()

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 weights: WeightsLike | dict[str, float] | None = None, **generate_kwargs: Any) -> torch.Tensor:
        """``generate`` of the base model with the heads mixed by ``weights`` ((k,) or (B, k))
        for the whole decoding; ``weights=None`` decodes with the reference head (LoRA on)."""
        with self.steered(weights):
            return self._causal.generate(input_ids=input_ids, attention_mask=attention_mask,
                                         **generate_kwargs)

    # --- bookkeeping -------------------------------------------------------------------------
    def parameter_report(self) -> dict[str, int | float]:
        """Parameter counts: the plural model vs k separately fine-tuned models (thesis §3.2.1)."""
        base_params = sum(p.numel() for n, p in self._causal.named_parameters() if "lora_" not in n)
        lora_params = sum(p.numel() for n, p in self._causal.named_parameters() if "lora_" in n)
        if self.heads is not None:
            head_params = self.heads[0].numel() + (self.head_bias[0].numel() if self.head_bias is not None else 0)
        else:
            head_params = self.head_u[0].numel() + self.head_v[0].numel()
        plural = base_params + lora_params + self.k * head_params
        separate = self.k * (base_params + lora_params)
        return {"k": self.k, "base": base_params, "lora": lora_params, "per_head": head_params,
                "plural_total": plural, "k_separate_models": separate,
                "trainable": sum(p.numel() for p in self.parameters() if p.requires_grad),
                "plural_over_separate": plural / separate}

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """LoRA (``lora.*``) and heads (``heads``, ``head_bias``) only."""
        if self.heads is not None:
            state = {"heads": self.heads}
            if self.head_bias is not None:
                state["head_bias"] = self.head_bias
        else:
            state = {"head_u": self.head_u, "head_v": self.head_v}
        if self.config.lora:
            from peft import get_peft_model_state_dict

            state.update({f"lora.{k}": v for k, v in get_peft_model_state_dict(self.lm).items()})
        return state

    # The frozen base is not this module's state (the checkpoint records its id), so the training
    # loop's resumable checkpoints hold only LoRA + heads instead of the whole LM each time.
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """The trainable parts only (see :meth:`trainable_state_dict`)."""
        return {k: v.detach() for k, v in self.trainable_state_dict().items()}

    def load_state_dict(self, state_dict: dict[str, torch.Tensor], strict: bool = True,
                        assign: bool = False) -> Any:  # type: ignore[override]
        self.load_trainable_state_dict(dict(state_dict))
        return nn.modules.module._IncompatibleKeys([], [])

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        own = self.trainable_state_dict()
        for key in (k for k in own if not k.startswith("lora.")):
            if key not in state:
                raise KeyError(f"checkpoint has no {key!r} entry (full vs low-rank heads?)")
            if tuple(state[key].shape) != tuple(own[key].shape):
                raise ValueError(f"checkpoint {key} {tuple(state[key].shape)} do not fit this model "
                                 f"{tuple(own[key].shape)} (different base model or attributes?)")
        with torch.no_grad():
            for key in (k for k in own if not k.startswith("lora.")):
                own[key].copy_(state[key])
        lora = {k[5:]: v for k, v in state.items() if k.startswith("lora.")}
        unknown = [k for k in state if k not in own and not k.startswith("lora.")]
        if unknown:
            raise KeyError(f"unexpected checkpoint entries {unknown[:5]}")
        if lora and not self.config.lora:
            raise KeyError("checkpoint has LoRA weights but this model has lora=False")
        if self.config.lora:
            from peft import set_peft_model_state_dict

            result = set_peft_model_state_dict(self.lm, lora)
            if getattr(result, "unexpected_keys", []):
                raise KeyError(f"LoRA entries that fit no adapter: {result.unexpected_keys[:5]}")

    def save_pretrained(self, directory: str | os.PathLike, extra_config: dict | None = None) -> Path:
        """Atomically write ``model.safetensors`` (LoRA + heads) + ``config.json``."""
        config = {"kind": "cmpo-plural-policy", "policy": asdict(self.config), **(extra_config or {})}
        return save_state(directory, self.trainable_state_dict(), config)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, base: nn.Module | None = None,
                        torch_dtype: torch.dtype = torch.float32) -> "PluralLM":
        """Rebuild from ``save_pretrained`` output; ``base`` overrides loading ``base_model``
        (local files only, nothing is downloaded)."""
        raw, state = load_state(directory)
        if raw.get("kind") != "cmpo-plural-policy":
            raise ValueError(f"{directory} is not a CMPO checkpoint (kind={raw.get('kind')!r})")
        config = PluralConfig(**raw["policy"])
        if base is None:
            base = load_base(config.base_model, torch_dtype)
        model = cls(base, config)
        model.load_trainable_state_dict(state)
        return model.eval()


def load_base(name: str, torch_dtype: torch.dtype = torch.float32) -> nn.Module:
    """A base causal LM from a local folder (or the offline SmolLM2 alias); never downloads."""
    if not name:
        raise ValueError("no base_model recorded; pass base=")
    from ...features.offline import load_base_model

    return load_base_model(name, torch_dtype)
