"""Mix-BTL + SPO in the maze, K = 10, with the policy's data or training or the reward's data
changed, beside the oracle trained the same way (issue 14; docs/rl.md, "What the Mix-BTL policy
misses: rewards that peak past the goal"). With one-hot components a policy sees about 800 / 16
relabelled episodes per component where the oracle shares one goal input over all 800: each
episode can be relabelled ``COPIES`` times (a component drawn from π each time,
``RLBenchConfig.relabel_copies``, which has no CLI flag) and IQL run for more steps. Tuning seeds
only.

    python benchmarks/rl_mix_policy.py 0 runs/rl-mixpol/s0 1x6000 4x6000 4x12000   # seed, folder, COPIESxSTEPS...
    python benchmarks/rl_mix_policy.py 0 runs/rl-mixpol/s0 mix-btl@1x6000           # POLICY@...: that policy alone
    python benchmarks/rl_mix_policy.py 0 runs/rl-mixpol/s0 1x6000:gamma=0.97        # ...:KEY=VALUE,... IQL settings,
    python benchmarks/rl_mix_policy.py 0 runs/rl-mixpol/s0 1x6000:local_pairs=0.25  # or the bench's (BENCH_FIELDS)

Each variant writes ``<folder>/c<COPIES>-i<STEPS>[-POLICY][-<KEY><VALUE>...]/``. Variants that
keep the bench's settings share one reward model (trained by the first, about 4 min, or found in a
finished folder of the same seed) and one dataset; a variant with bench settings trains its own.
"""

import dataclasses
import shutil
import sys
from pathlib import Path

from pluralign.rl.bench import run_bench, runs_folder
from pluralign.rl.config import RLBenchConfig
from settings import typed_value

# RLBenchConfig fields a variant may set (they change the reward model's data); other keys are IQL's
BENCH_FIELDS = ("local_pairs", "reward_steps", "n_users", "pairs_per_user", "state_view", "refine_pairs", "refine_top")


def typed(key: str, text: str) -> int | float | str:
    """A KEY=VALUE setting typed as its default: the bench's for BENCH_FIELDS, IQL's for the rest."""
    default = RLBenchConfig() if key in BENCH_FIELDS else RLBenchConfig().iql_for(10)
    if not hasattr(default, key):
        raise SystemExit(f"unknown setting {key!r}: one of {BENCH_FIELDS} or an IQLSettings field")
    return typed_value(text, getattr(default, key))


if __name__ == "__main__":
    seed, root, variants = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:] or ["1x6000"]
    runs = runs_folder(10, RLBenchConfig(seed=seed))
    # a finished run of this seed with the bench's settings (its folder name sets none of them)
    shared = next((p for p in sorted(root.glob("c*"))
                   if (p / runs).is_dir() and not any(key in p.name for key in BENCH_FIELDS)), None)
    for v in variants:
        policy, _, rest = v.rpartition("@")
        size, _, settings = rest.partition(":")
        copies, steps = (int(x) for x in size.split("x"))
        given = {key: typed(key, text) for key, text in (kv.split("=") for kv in settings.split(",") if kv)}
        bench = {key: value for key, value in given.items() if key in BENCH_FIELDS}
        iql = {key: value for key, value in given.items() if key not in BENCH_FIELDS}
        base = RLBenchConfig(goal_counts=(10,), policies=(policy,) if policy else ("mix-btl+spo", "oracle"), seed=seed)
        cfg = dataclasses.replace(base.with_iql(steps=steps, **iql), relabel_copies=copies, **bench)
        out = root / (f"c{copies}-i{steps}" + (f"-{policy}" if policy else "")
                      + "".join(f"-{key}{value}" for key, value in given.items()))
        if shared is not None and not bench and not (out / runs).exists():
            shutil.copytree(shared / runs, out / runs)
        run_bench(cfg, out, dataset_dir=shared / "dataset" if shared else None)
        if shared is None and not bench:
            shared = out
