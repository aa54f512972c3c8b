"""FiLM conditioning of any Hugging Face causal LM on a user representation z.

NP paper §3.2 and App. C.2.2 (eq. 23): a hypernetwork maps z to (gamma_m, beta_m) for every
decoder block m; the block's output hidden state o_m becomes gamma_m * o_m + beta_m. gamma_m,
beta_m are linear maps of z (paper: R^256 -> R^4096), stored here as one Linear per kind whose
output is split by block; the Linear predicts the *offset* gamma - 1 and is zero-initialised, so
FiLM starts as the identity (gamma = 1, beta = 0) for every z.

Conditioning is installed with forward hooks on the decoder blocks (found generically, so
Llama/SmolLM2, Qwen2 and GPT-2 layouts all work) and switched on only inside
``with film.conditioned(z): ...`` around a forward pass or a ``generate`` call. Nothing is
threaded through model kwargs (the published code's mistake, DESIGN.md §4), the base model's
modules and state-dict keys are untouched, and outside the context the model is exactly the
base model, which is how reference log-probs are computed from the same weights.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


def _text_config(model: nn.Module):
    cfg = model.config
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


def num_decoder_layers(model: nn.Module) -> int:
    cfg = _text_config(model)
    for name in ("num_hidden_layers", "n_layer", "num_layers"):
        if getattr(cfg, name, None):
            return int(getattr(cfg, name))
    raise ValueError(f"cannot read the number of layers from {type(cfg).__name__}")


def hidden_size(model: nn.Module) -> int:
    cfg = _text_config(model)
    for name in ("hidden_size", "n_embd", "d_model"):
        if getattr(cfg, name, None):
            return int(getattr(cfg, name))
    raise ValueError(f"cannot read the hidden size from {type(cfg).__name__}")


def decoder_layers_name(model: nn.Module) -> str:
    """Dotted name of :func:`decoder_layers` inside ``model`` (e.g. ``model.layers``)."""
    layers = decoder_layers(model)
    return next(name for name, m in model.named_modules() if m is layers)


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder blocks: the ModuleList with ``num_hidden_layers`` entries.

    Works through wrappers (PEFT, ``*ForCausalLM``) because it searches all submodules;
    ``model.layers`` (Llama, Qwen2) and ``transformer.h`` (GPT-2) are both found this way.
    """
    n = num_decoder_layers(model)
    found = [(name, m) for name, m in model.named_modules()
             if isinstance(m, nn.ModuleList) and len(m) == n]
    # prefer the shallowest list named like a block list; LoRA adds ModuleDicts, not lists
    found.sort(key=lambda nm: (not nm[0].split(".")[-1] in ("layers", "h", "blocks", "layer"),
                               nm[0].count(".")))
    if not found:
        raise ValueError(f"no ModuleList of {n} decoder blocks in {type(model).__name__}")
    return found[0][1]


class FiLMHypernetwork(nn.Module):
    """z (B, z_dim) -> gamma, beta (B, n_layers, hidden_size), identity at initialisation.

    ``gain`` multiplies both maps' outputs (1 = the paper's plain linear maps). The maps start
    at zero, so under Adam a gain g trains them as if with g times the learning rate: a way to
    give FiLM a larger step than LoRA inside one optimiser (useful when only a few dozen steps
    fit the budget).
    """

    def __init__(self, z_dim: int, n_layers: int, hidden_size: int, gain: float = 1.0):
        super().__init__()
        if min(z_dim, n_layers, hidden_size) < 1:
            raise ValueError(f"z_dim, n_layers, hidden_size must be >= 1, got {z_dim}, {n_layers}, {hidden_size}")
        if not gain > 0:
            raise ValueError(f"gain must be > 0, got {gain}")
        self.z_dim, self.n_layers, self.hidden_size, self.gain = z_dim, n_layers, hidden_size, gain
        self.gamma = nn.Linear(z_dim, n_layers * hidden_size)  # predicts gamma - 1
        self.beta = nn.Linear(z_dim, n_layers * hidden_size)
        for lin in (self.gamma, self.beta):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be (B, {self.z_dim}), got {tuple(z.shape)}")
        shape = (z.shape[0], self.n_layers, self.hidden_size)
        return 1.0 + self.gain * self.gamma(z).view(shape), self.gain * self.beta(z).view(shape)


def top_layers(model: nn.Module, n: int | None) -> list[int]:
    """Indices of the last ``n`` decoder blocks (all of them for ``None``)."""
    total = num_decoder_layers(model)
    if n is None:
        return list(range(total))
    if not 1 <= n <= total:
        raise ValueError(f"the model has {total} decoder blocks; cannot take the top {n}")
    return list(range(total - n, total))


class FiLM(nn.Module):
    """A hypernetwork plus hooks installed on one model's decoder blocks.

    ``layers`` picks the blocks to modulate (default: all, as in the paper).

    ``FiLM(model, z_dim)`` registers the hooks (inactive); ``with film.conditioned(z):`` makes
    every block output o (N, L, H) into gamma[n] * o + beta[n] for the duration of the block,
    where z is (N, z_dim) with one row per sequence, or (1, z_dim) for all sequences. When a
    call expands the batch (``generate(num_return_sequences=k)``, beam search) the rows are
    repeated to match. The hypernetwork is this module's only parameter set: the base model is
    not registered as a submodule, so ``film.state_dict()`` holds FiLM weights only.
    """

    def __init__(self, model: nn.Module, z_dim: int, layers: list[int] | None = None, gain: float = 1.0):
        super().__init__()
        blocks = decoder_layers(model)
        self.layers = list(range(len(blocks))) if layers is None else sorted(set(layers))
        if not self.layers or not all(0 <= m < len(blocks) for m in self.layers):
            raise ValueError(f"FiLM layers must be a non-empty subset of 0..{len(blocks) - 1}, got {layers}")
        self.hypernetwork = FiLMHypernetwork(z_dim, len(self.layers), hidden_size(model), gain)
        self._active: tuple[torch.Tensor, torch.Tensor] | None = None
        self._handles = [blocks[m].register_forward_hook(self._hook(j)) for j, m in enumerate(self.layers)]

    @property
    def z_dim(self) -> int:
        return self.hypernetwork.z_dim

    def remove(self) -> None:
        """Uninstall the hooks (the model is the plain base model again)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    @contextmanager
    def conditioned(self, z: torch.Tensor | None) -> Iterator[None]:
        """Modulate every block by FiLM(z) inside the ``with`` body. ``None`` = no modulation."""
        if self._active is not None:
            raise RuntimeError("FiLM conditioning is already active; contexts do not nest")
        if z is not None:
            self._active = self.hypernetwork(z)
        try:
            yield
        finally:
            self._active = None

    @property
    def active(self) -> bool:
        return self._active is not None

    def _hook(self, m: int):
        def hook(module: nn.Module, args, output):
            if self._active is None:
                return None
            hidden = output[0] if isinstance(output, tuple) else output
            gamma, beta = self._active[0][:, m], self._active[1][:, m]  # (N, H)
            n = hidden.shape[0]
            if gamma.shape[0] not in (1, n):
                if n % gamma.shape[0]:
                    raise ValueError(f"FiLM got z for {gamma.shape[0]} sequences, the batch has {n}")
                rep = n // gamma.shape[0]
                gamma, beta = gamma.repeat_interleave(rep, 0), beta.repeat_interleave(rep, 0)
            hidden = gamma.unsqueeze(1).to(hidden.dtype) * hidden + beta.unsqueeze(1).to(hidden.dtype)
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden
        return hook
