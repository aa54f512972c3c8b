"""Mix-BTL + SPO in the maze with the policy reading each component's reward peak (the position of
the dataset state its reward ranks highest: a goal estimate, as the oracle reads the goal) instead
of the component's one-hot (issue 14; docs/rl.md, "Mix-BTL + SPO relabelled with one of its
rewards"). Tuning seeds only: ``RLBenchConfig.mix_policy_z`` has no CLI flag.

    python benchmarks/rl_mix_peak.py 0 runs/rl-mix/peak-s0 10        # seed, output folder, goal counts...

A folder holding a finished run of the same seed reuses its reward model (about 4 min for K = 10).
"""

import sys

from pluralign.rl.bench import run_bench
from pluralign.rl.config import RLBenchConfig

if __name__ == "__main__":
    seed, out, goals = int(sys.argv[1]), sys.argv[2], tuple(int(k) for k in sys.argv[3:]) or (10,)
    # one round of 20 random pairs, the defaults when this ran (before 2026-12-02's second round)
    run_bench(RLBenchConfig(goal_counts=goals, policies=("mix-btl+spo",), mix_policy_z="peak", pairs_per_user=20,
                            refine_pairs=0, seed=seed), out)
