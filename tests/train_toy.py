"""A toy regression problem for the training-loop tests (imported by tests/test_train_*.py and
run as a script by the two-process test)."""

from __future__ import annotations

import torch
from torch import nn

GEN = torch.Generator().manual_seed(0)
X = torch.randn(256, 4, generator=GEN)
W_TRUE = torch.tensor([[1.5], [-2.0], [0.5], [1.0]])
Y = X @ W_TRUE + 0.05 * torch.randn(256, 1, generator=GEN)


class Toy(nn.Module):
    """Small MLP with dropout (so resume must restore RNG states) and a frozen parameter."""

    def __init__(self, seed: int = 0, dropout: float = 0.1):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(4, 16), nn.GELU(), nn.Dropout(dropout), nn.Linear(16, 1))
        self.frozen = nn.Parameter(torch.ones(1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.frozen


def batch_fn(step: int, stream: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(10_000 * stream + step)
    idx = torch.randint(len(X), (32,), generator=g)
    return {"x": X[idx], "y": Y[idx]}


def step_fn(model: nn.Module, batch: dict[str, torch.Tensor]):
    err = model(batch["x"]) - batch["y"]
    return (err ** 2).mean(), {"mae": float(err.detach().abs().mean())}


def val_fn(model: nn.Module) -> dict[str, float]:
    return {"loss": float(((model(X) - Y) ** 2).mean().detach())}


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
