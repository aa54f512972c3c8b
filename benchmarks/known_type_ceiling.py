"""How well can one user type's reward be learnt from its own pairs? (issue 11 diagnostic)

For a ``types-*`` population of ``pluralign bench defaults``, trains a BTL model with the default
settings (``RewardTrainConfig()``) on the pairs of one type only, for each type, and scores it on
that type's validation pairs. That is the best a context model can do on a target pair once the
context has told it the type, with this much data: the Bayes line, which knows the true rewards,
sits above it by the cost of learning a reward from the population's pairs.

Beside it, the same pairs fitted in the users' own reward family — a linear reward w·y by
logistic regression (full-batch L-BFGS, a tiny L2 term so that separable pairs keep w finite) —
separates what the data allow from what the MLP family costs. ``--mix-run`` also scores the
best component of a trained Mix-BTL run of the same population and seed (the ``best`` folder under
``pluralign bench defaults --split validation --seed S --population P``'s ``P/runs/mix-btl/``) on
each type's validation pairs: what the default model orders right once it knows the type.

    python benchmarks/known_type_ceiling.py --population types-k3-d6 --seed 2

Validation split only (the bench reports the test split). ~1-2 minutes per type on one core.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile

import numpy as np
import torch

from pluralign.data.populations import make_population
from pluralign.data.tables import option_vectors
from pluralign.eval.defaults_bench import POPULATIONS
from pluralign.rewards.mixture import MixBTLRewardModel
from pluralign.train.rewards import RewardTrainConfig, train_reward_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--population", default="types-k3-d6",
                    choices=[p.name for p in POPULATIONS if p.kind == "types"])
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mix-run", default=None, help="a Mix-BTL checkpoint folder of this population and seed")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    spec = next(p for p in POPULATIONS if p.name == a.population)
    records, _, _ = make_population(spec, seed=a.seed)
    accuracies, linear, mixture = {}, {}, {}
    mix = MixBTLRewardModel.from_pretrained(a.mix_run).eval() if a.mix_run else None
    for user in sorted({r.user_id for r in records}):  # one user per type in these populations
        own = [r for r in records if r.user_id == user]
        config = RewardTrainConfig(split_seed=a.seed)
        config.tasks.seed = a.seed
        config.train = dataclasses.replace(config.train, seed=a.seed, disable_tqdm=True)
        with tempfile.TemporaryDirectory() as run_dir:
            model, result = train_reward_model(own, "btl", config, run_dir)
        chosen, rejected = option_vectors([r for r in own if r.split == "validation"])
        with torch.no_grad():
            model.eval()
            right = model.reward(chosen.unsqueeze(0))[0] > model.reward(rejected.unsqueeze(0))[0]
        accuracies[user] = round(100 * float(right.float().mean()), 2)
        train_c, train_r = option_vectors([r for r in own if r.split == "train"])
        w = linear_reward(train_c - train_r)
        linear[user] = round(100 * float(((chosen - rejected).double() @ w > 0).double().mean()), 2)
        if mix is not None:
            with torch.no_grad():
                mixture[user] = round(100 * float((mix.component_probs(chosen, rejected) > 0.5).double()
                                                  .mean(1).max()), 2)
        print(f"{user}: {accuracies[user]:.2f} % of its validation pairs (stopped at step {result.step}, "
              f"best {result.best_step}); linear reward {linear[user]:.2f} %"
              + (f"; Mix-BTL's best component {mixture[user]:.2f} %" if mix is not None else ""), flush=True)
    print(json.dumps({"population": a.population, "seed": a.seed, "per_type": accuracies,
                      "mean": round(float(np.mean(list(accuracies.values()))), 2),
                      "linear_per_type": linear, "linear_mean": round(float(np.mean(list(linear.values()))), 2),
                      **({"mix_btl_best_component_per_type": mixture} if mix is not None else {})}))


def linear_reward(diffs: torch.Tensor, l2: float = 1e-6) -> torch.Tensor:
    """w of the Bradley-Terry model P(a > b) = sigmoid(w·(a - b)) fitted to chosen-minus-rejected
    differences (N, D) by full-batch L-BFGS (Adam on this convex but ill-conditioned loss stops
    short of its optimum)."""
    x = diffs.double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.softplus(-(x @ w)).mean() + l2 * (w @ w)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


if __name__ == "__main__":
    main()
