"""The multilayer perceptron every model here is built from.

NP paper App. C: "all mentions of MLPs are implemented as two-layer neural networks with a
hidden dimension of 256 and GELU activation" — the default here: two hidden layers of 256, GELU.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU,
               "tanh": nn.Tanh}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}") from None


class MLP(nn.Module):
    """``in_dim -> hidden[0] -> ... -> hidden[-1] -> out_dim``, activation between layers.

    Args:
        in_dim, out_dim: input and output features.
        hidden: widths of the hidden layers (default two of 256).
        act: activation name (``gelu``, ``relu``, ``leaky_relu``, ``silu``, ``tanh``).
        dropout: dropout after each hidden activation.
        linear_skip: add a linear map of the input to the output (``net(x) + W·x``): the MLP
            then only has to learn what a linear function of the features does not explain.

    Shapes: ``(..., in_dim) -> (..., out_dim)``.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256),
                 act: str = "gelu", dropout: float = 0.0, linear_skip: bool = False):
        super().__init__()
        if in_dim < 1 or out_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"MLP sizes must be positive: in={in_dim}, hidden={list(hidden)}, "
                             f"out={out_dim}")
        dims = [in_dim, *hidden, out_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(activation(act))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)
        self.skip = nn.Linear(in_dim, out_dim, bias=False) if linear_skip else None
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) if self.skip is None else self.net(x) + self.skip(x)
