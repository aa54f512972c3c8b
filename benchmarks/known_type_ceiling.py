"""How well can one user type's reward be learnt from its own pairs? (issue 11 diagnostic)

For a ``types-*`` population of ``pluralign bench defaults``, trains a BTL model with the default
settings (``RewardTrainConfig()``) on the pairs of one type only, for each type, and scores it on
that type's validation pairs. That is the best a context model can do on a target pair once the
context has told it the type, with this much data: the Bayes line, which knows the true rewards,
sits above it by the cost of learning a reward from the population's pairs.

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
from pluralign.train.rewards import RewardTrainConfig, train_reward_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--population", default="types-k3-d6",
                    choices=[p.name for p in POPULATIONS if p.kind == "types"])
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    spec = next(p for p in POPULATIONS if p.name == a.population)
    records, _, _ = make_population(spec, seed=a.seed)
    accuracies = {}
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
        print(f"{user}: {accuracies[user]:.2f} % of its validation pairs (stopped at step {result.step}, "
              f"best {result.best_step})", flush=True)
    print(json.dumps({"population": a.population, "seed": a.seed, "per_type": accuracies,
                      "mean": round(float(np.mean(list(accuracies.values()))), 2)}))


if __name__ == "__main__":
    main()
