"""Mix-BTL in the maze with its lapse fixed at 0.1 instead of learnt (issue 14, docs/rl.md,
"Mix-BTL as the reward model"): the bench at K = 10 with ``--policy mix-btl`` only.

    python benchmarks/rl_mix_lapse.py 0 runs/rl-mix/lapse01-s0      # seed, output folder; ~2 min

(``RLBenchConfig.mix_lapse`` has no CLI flag: it was tried on the tuning seeds only.)
"""

import sys

from pluralign.rl.bench import run_bench
from pluralign.rl.config import RLBenchConfig

if __name__ == "__main__":
    seed, out = int(sys.argv[1]), sys.argv[2]
    # relabelled with posterior weights on one round of 20 random pairs, as when it was run (the
    # defaults before 2026-12-02)
    run_bench(RLBenchConfig(goal_counts=(10,), policies=("mix-btl",), mix_lapse=0.1, mix_relabel_z="posterior",
                            pairs_per_user=20, refine_pairs=0, seed=seed), out)
