"""NP-DPO: a causal LM steered by a user's few choices (NP paper §3.2, App. C.2.2).

pi(y | x, D^C) = LM_{theta (+) LoRA, FiLM(z)}(y | x) with z = set_encoder(D^C): the context
pairs, as cached option embeddings, go through the NP set encoder (shared with NP-BTL,
:mod:`pluralign.nn`), z drives a FiLM hypernetwork over every decoder block
(:mod:`pluralign.policies.film`), and the base LM carries LoRA adapters (PEFT). Encoder,
hypernetwork and LoRA are trained jointly with the DPO objective; the reference policy is the
same LM with adapters and FiLM off (:mod:`pluralign.policies.reference`).

``film=False`` gives the unconditioned LoRA-DPO policy used by the BTL-DPO and per-user-type
DPO baselines, with the same code path.

Checkpoints (``save_pretrained``) hold only the trainable parts (LoRA, FiLM hypernetwork,
encoder) plus the base model's id/path; ``from_pretrained`` loads the base (local files only)
and puts them back.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...checkpoint import load_state, save_state
from ...features.offline import load_base_model
from ...nn import AttentionSetEncoder, DeepSetEncoder
from ..film import FiLM, decoder_layers_name, top_layers
from ..logprobs import TokenizedResponses, sequence_logprobs
from ..prefix import frozen_blocks, logprobs_from_block, supports_prefix_cache
from ..reference import reference_logprobs

ENCODERS = ("deepset", "attention")


@dataclass
class NPDPOConfig:
    """Architecture of an NP-DPO policy (training knobs live in the trainer's config).

    Paper values (App. C.2.2, gemma-2b): z_dim 256, LoRA rank 512 / alpha 1024. The defaults
    here are sized for SmolLM2-135M on a CPU.
    """

    base_model: str = ""  # HF id or local folder of the base LM, recorded for from_pretrained
    option_dim: int = 384  # D: size of one cached context-option embedding
    context_embedder: str = "minilm"  # which embedder made those vectors (recorded for generate)
    film: bool = True  # False: plain LoRA policy (BTL-DPO / per-type DPO baselines)
    z_dim: int = 64
    encoder: str = "deepset"
    encoder_hidden: int = 256
    # True: z(D) = (h(D) - h(flip D)) / 2, so flipping every context choice negates z and the
    # empty context gives z = 0, between opposite users. FiLM is linear in z, so with the paper's
    # encoder (False) z of the empty context can land beyond one type's users and N^C = 0 then
    # steers further than that type's own choices do (docs/np-dpo.md, run 6).
    encoder_odd: bool = False
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | str = "all-linear"
    # LoRA and FiLM on the top k decoder blocks only (None: all blocks, the paper). Blocks below
    # the lowest trainable one need no backward pass: on a CPU this is most of a step's cost.
    trainable_layers: int | None = None
    # FiLM output gain (1 = paper); under Adam, g x the FiLM learning rate (film.FiLMHypernetwork)
    film_gain: float = 1.0

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        for name in ("option_dim", "z_dim", "encoder_hidden", "lora_rank"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.trainable_layers is not None and self.trainable_layers < 1:
            raise ValueError(f"trainable_layers must be >= 1 or None, got {self.trainable_layers}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")


class OddSetEncoder(nn.Module):
    """z(D) = (h(D) - h(flip D)) / 2 for a set encoder h: flip D swaps chosen and rejected in
    every context pair, so z(flip D) = -z(D) and z(empty) = 0 exactly. ``outer`` is h's output
    MLP (z is linear in its last layer, which :func:`encoder_warmstart.rescale_z` scales)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.z_dim = inner.z_dim

    @property
    def outer(self) -> nn.Module:
        return self.inner.outer

    def forward(self, chosen: torch.Tensor, rejected: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.inner(chosen, rejected, mask) - self.inner(rejected, chosen, mask))


def build_encoder(config: NPDPOConfig) -> nn.Module:
    """The NP set encoder: context pairs (B, C, D) x2 + mask -> z (B, z_dim)."""
    h = config.encoder_hidden
    if config.encoder == "deepset":
        enc = DeepSetEncoder(config.option_dim, z_dim=config.z_dim, pair_dim=h, hidden=(h, h))
    else:
        enc = AttentionSetEncoder(config.option_dim, z_dim=config.z_dim, model_dim=h, n_heads=8, hidden=(h, h))
    return OddSetEncoder(enc) if config.encoder_odd else enc


def _linear_names(base: nn.Module, layers: list[int], wanted: list[str] | str) -> list[str]:
    """Full names of the linear layers inside decoder blocks ``layers`` (PEFT target list).

    ``wanted`` is ``"all-linear"`` or a list of leaf names (``q_proj``...) to keep.
    """
    from transformers.pytorch_utils import Conv1D

    prefix = decoder_layers_name(base)
    keep = tuple(f"{prefix}.{m}." for m in layers)
    names = [name for name, mod in base.named_modules()
             if isinstance(mod, (nn.Linear, Conv1D)) and name.startswith(keep)
             and (wanted == "all-linear" or name.rsplit(".", 1)[-1] in wanted)]
    if not names:
        raise ValueError(f"no LoRA target modules {wanted!r} in decoder blocks {layers}")
    return names


class NPDPOPolicy(nn.Module):
    """Set encoder + FiLM hypernetwork + LoRA'd causal LM.

    Args:
        base: a Hugging Face causal LM (its weights stay frozen).
        config: :class:`NPDPOConfig`.
    """

    def __init__(self, base: nn.Module, config: NPDPOConfig):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        self.config = config
        layers = top_layers(base, config.trainable_layers)
        targets = config.lora_target_modules
        if config.trainable_layers is not None:
            targets = _linear_names(base, layers, targets)
        lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha,
                          lora_dropout=config.lora_dropout, target_modules=targets,
                          task_type="CAUSAL_LM")
        self.lm = get_peft_model(base, lora)
        self.film = FiLM(self.lm, config.z_dim, layers, gain=config.film_gain) if config.film else None
        self.encoder = build_encoder(config) if config.film else None

    # --- conditioning ----------------------------------------------------------------------
    def encode(self, context_chosen: torch.Tensor, context_rejected: torch.Tensor,
               context_mask: torch.Tensor) -> torch.Tensor:
        """z (B, z_dim) from context option embeddings (B, C, D) x2 and mask (B, C).

        The one function that computes z, in training and at inference alike.
        """
        if self.encoder is None:
            raise RuntimeError("this policy has no set encoder (film=False)")
        return self.encoder(context_chosen, context_rejected, context_mask.bool())

    def conditioned(self, z: torch.Tensor | None):
        """Context manager: the LM is steered by ``z`` (N or 1, z_dim) inside the body."""
        if self.film is None:
            if z is not None:
                raise RuntimeError("this policy has no FiLM (film=False); pass z=None")
            from contextlib import nullcontext
            return nullcontext()
        return self.film.conditioned(z)

    # --- log-probs -------------------------------------------------------------------------
    @property
    def frozen_blocks(self) -> int:
        """Bottom blocks with neither LoRA nor FiLM whose outputs may be cached (prefix.py);
        0 when every block trains or the layout does not allow it."""
        base = self.lm.get_base_model()
        return frozen_blocks(base, self.config.trainable_layers) if supports_prefix_cache(base) else 0

    def logprobs(self, batch: TokenizedResponses, z: torch.Tensor | None = None,
                 prefix: torch.Tensor | None = None) -> torch.Tensor:
        """Summed response log-probs under pi(. | x, z): (N,). ``z`` is (N, z_dim), (1, z_dim) or
        None. ``prefix`` (N, L, H): cached states entering block :attr:`frozen_blocks`, so
        only the top blocks run."""
        with self.conditioned(z):
            if prefix is not None:
                if not self.frozen_blocks:
                    raise RuntimeError("this policy has no frozen prefix blocks to skip")
                return logprobs_from_block(self.lm, self.frozen_blocks, prefix, batch)
            return sequence_logprobs(self.lm, batch)

    def reference_logprobs(self, batch: TokenizedResponses) -> torch.Tensor:
        """log pi_ref (adapters and FiLM off, same weights): (N,), no gradient."""
        if self.film is not None and self.film.active:
            raise RuntimeError("reference log-probs requested inside a FiLM context")
        return reference_logprobs(self.lm, batch)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 z: torch.Tensor | None = None, **generate_kwargs: Any) -> torch.Tensor:
        """``lm.generate`` with FiLM(z) active for the whole decoding (z: (B or 1, z_dim))."""
        with self.conditioned(z):
            return self.lm.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kwargs)

    # --- checkpoints -----------------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """LoRA (``lora.*``), FiLM (``film.*``) and encoder (``encoder.*``) weights only."""
        from peft import get_peft_model_state_dict

        state = {f"lora.{k}": v for k, v in get_peft_model_state_dict(self.lm).items()}
        for prefix, module in (("film", self.film), ("encoder", self.encoder)):
            if module is not None:
                state.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})
        return state

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        parts: dict[str, dict[str, torch.Tensor]] = {"lora": {}, "film": {}, "encoder": {}}
        for key, value in state.items():
            prefix, _, rest = key.partition(".")
            if prefix not in parts:
                raise KeyError(f"unexpected checkpoint entry {key!r}")
            parts[prefix][rest] = value
        result = set_peft_model_state_dict(self.lm, parts["lora"])
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise KeyError(f"LoRA entries that fit no adapter: {unexpected[:5]}")
        for prefix, module in (("film", self.film), ("encoder", self.encoder)):
            if module is not None:
                module.load_state_dict(parts[prefix])
            elif parts[prefix]:
                raise KeyError(f"checkpoint has {prefix} weights but this policy has film=False")

    # The training loop checkpoints ``state_dict()``; for a policy that is its trainable part:
    # the base weights are frozen and identified by ``config.base_model``, so writing 135M+
    # frozen parameters into every resumable checkpoint would only cost disk and time.
    def state_dict(self, *args: Any, destination: dict | None = None, prefix: str = "",
                   keep_vars: bool = False) -> dict[str, torch.Tensor]:
        """Trainable weights only (``lora.*``, ``film.*``, ``encoder.*``); see the comment above."""
        out = destination if destination is not None else {}
        for k, v in self.trainable_state_dict().items():
            out[prefix + k] = v if keep_vars else v.detach()
        return out

    def load_state_dict(self, state_dict: dict[str, torch.Tensor], strict: bool = True,
                        assign: bool = False):
        """Inverse of :meth:`state_dict` (trainable weights only)."""
        if strict:
            want = set(self.trainable_state_dict())
            if set(state_dict) != want:
                raise KeyError(f"state dict keys differ: missing {sorted(want - set(state_dict))[:5]}, "
                               f"unexpected {sorted(set(state_dict) - want)[:5]}")
        self.load_trainable_state_dict(dict(state_dict))
        return None

    def save_pretrained(self, directory: str | os.PathLike, extra_config: dict | None = None) -> Path:
        """Atomically write ``model.safetensors`` (trainable parts) + ``config.json``."""
        config = {"kind": "np-dpo-policy", "policy": asdict(self.config), **(extra_config or {})}
        return save_state(directory, self.trainable_state_dict(), config)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, base: nn.Module | None = None,
                        torch_dtype: torch.dtype = torch.float32) -> "NPDPOPolicy":
        """Rebuild from ``save_pretrained`` output. ``base`` overrides loading ``config.base_model``
        (local files only; nothing is downloaded)."""
        raw, state = load_state(directory)
        if raw.get("kind") != "np-dpo-policy":
            raise ValueError(f"{directory} is not an NP-DPO policy checkpoint (kind={raw.get('kind')!r})")
        config = NPDPOConfig(**raw["policy"])
        if base is None:
            if not config.base_model:
                raise ValueError(f"{directory}: no base_model recorded; pass base=")
            base = load_base_model(config.base_model, torch_dtype)
        policy = cls(base, config)
        policy.load_trainable_state_dict(state)
        return policy.eval()
