"""How well do n random answered queries name a test user's goal in the maze? (issue 14)

The oracle of ``pluralign rl bench`` is told the goal; every learned policy is told a z inferred
from the user's n answers to random state pairs. This script asks how much n random answers can
say at all, with no model: the bench's test users (same seed, goals, query pool and answers as
``pluralign rl bench``) answer their n queries, and the exact posterior over the K goals (a uniform
prior; noise-free users answer by shortest-path distance, so a goal is kept when it orders every
answered pair the way the user did, strictly) leaves a set of candidate goals. A policy that
drives to one goal it picks from the answers reaches the user's goal at most as often as it picks
it: on average 1 / (number of candidates), the best any z from these answers can do for such a
policy. Printed per n: that identification rate and the mean number of candidates. Given a bench
run of the same seed (``--bench DIR``), also the oracle's success at the largest n scaled goal by
goal by that rate: what a policy as good as the oracle at driving, told only the answers, would
reach if it picked among the candidates at random.

    python benchmarks/rl_goal_identification.py --seed 4 --seed 5 --seed 6 --goals 2 --goals 10 \
        [--bench runs/bench-rl-new-s4 ...]

No training; seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pluralign.rl.bench import RLBenchConfig, get_dataset
from pluralign.rl.setting import goal_setting, random_test_answers


BENCH_N = max(RLBenchConfig().context_sizes)


def identification(setting, answers, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per test user, 1/|candidates| and |candidates|, from their first n answers."""
    rates, sizes = [], []
    for i, g in enumerate(setting.test.goal_index):
        c, r = answers.chosen[i, :n], answers.rejected[i, :n]
        kept = [k for k, field in enumerate(setting.fields) if n == 0 or bool(np.all(field(c) < field(r)))]
        if g not in kept:  # a noise-free user's own goal always fits their answers
            raise AssertionError(f"test user {i}'s goal {g} does not fit their own answers")
        rates.append(1.0 / len(kept))
        sizes.append(len(kept))
    return np.array(rates), np.array(sizes)


def bench_oracle(dirs: list[Path], seed: int, k: int) -> list[float] | None:
    """The oracle's success per goal at the largest n in a bench run of this seed and K, if given."""
    for d in dirs:
        path = d / f"maze-{k}goals.json"
        if path.is_file():
            doc = json.loads(path.read_text())
            if doc.get("config", {}).get("seed") == seed and "oracle" in doc["per_goal"]:
                return doc["per_goal"]["oracle"][str(max(doc["context_sizes"]))]
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, action="append", default=None)
    ap.add_argument("--goals", type=int, action="append", default=None)
    ap.add_argument("--queries", type=int, action="append", default=None, help="n (repeatable; 0 1 2 4 8 16 32)")
    ap.add_argument("--dataset", type=Path, default=None, help="reuse a dataset (pluralign rl data)")
    ap.add_argument("--bench", type=Path, action="append", default=[],
                    help="a pluralign rl bench output folder (repeatable): scale its oracle by the rate")
    ap.add_argument("--out", type=Path, default=Path("runs/rl-goal-identification"))
    a = ap.parse_args()
    ns = a.queries or [0, 1, 2, 4, 8, 16, 32]
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"{'seed':>4} {'goals':>5}  " + "  ".join(f"n={n:<10}" for n in ns))
    for seed in a.seed or [4]:
        # the answers as the users give them (the view only changes what a model reads)
        cfg = RLBenchConfig(seed=seed, state_view="raw")
        dataset = get_dataset(cfg, a.out, a.dataset)
        for k in a.goals or [2, 10]:
            setting = goal_setting(k, dataset, cfg)
            # the bench draws max(n) = 8 answers per user; the first n of those are its n-answer
            # contexts, so n <= 8 reads exactly the bench's answers and larger n draws its own
            drawn = {size: random_test_answers(setting, size, cfg) for size in {max(n, BENCH_N) for n in ns}}
            cells = [identification(setting, drawn[max(n, BENCH_N)], n) for n in ns]
            row = {"seed": seed, "goals": k, "test_users": len(setting.test.goal_index),
                   "identified": {str(n): float(c[0].mean()) for n, c in zip(ns, cells)},
                   "candidates": {str(n): float(c[1].mean()) for n, c in zip(ns, cells)}}
            print(f"{seed:>4} {k:>5}  " + "  ".join(f"{100 * r.mean():5.1f}% ({s.mean():4.1f})" for r, s in cells),
                  flush=True)
            oracle = bench_oracle(a.bench, seed, k)
            if oracle is not None:
                goal = setting.test.goal_index
                row["oracle"] = float(np.mean(np.array(oracle)[goal]))
                row["oracle_times_identified"] = {str(n): float(np.mean(np.array(oracle)[goal] * c[0]))
                                                  for n, c in zip(ns, cells)}
                print(f"{'':>4} {'':>5}  oracle {100 * row['oracle']:.1f}% x rate: "
                      + "  ".join(f"n={n} {100 * v:.1f}%" for n, v in row["oracle_times_identified"].items()))
            rows.append(row)
    (a.out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("cells: the rate at which a policy that drives to one goal could pick the user's (mean of "
          "1/candidates), and the mean number of candidate goals left")


if __name__ == "__main__":
    main()
