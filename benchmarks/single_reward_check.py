"""Can a nonlinear reward beat the best linear one at following the majority of user types?

For the attribute populations of ``pluralign bench defaults`` (K linear user types over
D-dimensional correlated options), fit one reward to every type's labels pooled (N^C = 0: the
context says nothing) — a linear reward and a 2 x 256 GELU MLP — on many pairs, and print their
expected accuracy on held-out pairs beside the Bayes line (the posterior majority). The gap
between Bayes and the rewards is the Condorcet limit of one reward (pluralign.eval.single_reward);
equal linear and MLP accuracies are why that module fits linear rewards.

    python benchmarks/single_reward_check.py            # ~2-5 min on 1 thread
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from pluralign.data.populations import attribute_matrix
from pluralign.data.synthetic import correlated_gaussian


def fit(model: torch.nn.Module, a: torch.Tensor, b: torch.Tensor, q: np.ndarray, n_fit: int, steps: int,
        lr: float = 3e-3) -> float:
    """Bradley-Terry fit on soft labels q (share of types preferring a), then expected accuracy
    on the pairs after ``n_fit``."""
    target = torch.as_tensor(q, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        i = torch.randint(0, n_fit, (4096,), generator=gen)
        loss = torch.nn.functional.binary_cross_entropy_with_logits((model(a[i]) - model(b[i])).squeeze(-1), target[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = ((model(a[n_fit:]) - model(b[n_fit:])).squeeze(-1) > 0).numpy()
    qt = q[n_fit:]
    return float(np.where(pred, qt, 1 - qt).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    print("K  D  Bayes   linear reward   MLP reward   (expected accuracy on held-out pairs, N^C = 0, %)")
    for k, dim in ((2, 4), (3, 6), (5, 8)):
        rng = np.random.default_rng([args.seed, 7])
        A = attribute_matrix(k, dim, rng)
        y = correlated_gaussian(rng, 2 * args.pairs, dim, 0.3)
        a, b = y[: args.pairs], y[args.pairs:]
        q = ((a - b) @ A.T > 0).mean(axis=1)  # share of the K types preferring a
        n_fit = 3 * args.pairs // 4
        bayes = float(np.maximum(q, 1 - q)[n_fit:].mean())
        ta, tb = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
        linear = fit(torch.nn.Linear(dim, 1), ta, tb, q, n_fit, 1500)
        mlp = torch.nn.Sequential(torch.nn.Linear(dim, 256), torch.nn.GELU(), torch.nn.Linear(256, 256),
                                  torch.nn.GELU(), torch.nn.Linear(256, 1))
        nonlinear = fit(mlp, ta, tb, q, n_fit, 800)
        print(f"{k}  {dim}  {100 * bayes:5.1f}   {100 * linear:13.1f}   {100 * nonlinear:10.1f}", flush=True)


if __name__ == "__main__":
    main()
