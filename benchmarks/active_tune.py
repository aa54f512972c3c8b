"""Tune the active-selection knobs on validation users (issue 12): reuse the models a
``pluralign bench active`` run saved, evaluate information gain on the *validation* split under
each setting, and print the mean accuracy over 1..10 questions per task and model.

    .venv/bin/python benchmarks/active_tune.py --models runs/active --out runs/active-tune

Settings vary one knob at a time from the defaults (NP-BTL's particle posterior; VPL's q samples and
candidates, or VPL on particles). The chosen values become the defaults of the bench.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from pluralign.eval.active_bench import ActiveBenchConfig, run_active_bench
from pluralign.eval.active_eval import SelectionConfig

GRID = {
    "np-btl default": ({"models": ("np-btl",)}, {}),
    "vpl default": ({"models": ("vpl",)}, {}),
    "np-btl lapse 0.2": ({"models": ("np-btl",)}, {"lapse": 0.2}),
    "np-btl 256 particles": ({"models": ("np-btl",), "n_particles": 256}, {}),
    "np-btl particle contexts 1-10": ({"models": ("np-btl",), "particle_context": (1, 10)}, {}),
    "vpl 8 samples": ({"models": ("vpl",)}, {"n_samples": 8}),
    "vpl 64 candidates": ({"models": ("vpl",)}, {"n_candidates": 64}),
    "vpl on particles": ({"models": ("vpl",)}, {"vpl_posterior": "particles"}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", required=True, help="out folder of a bench run (its trained models)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--eval-tasks", type=int, default=100)
    ap.add_argument("--task", action="append", help="tasks (default all)")
    ap.add_argument("--setting", action="append", help=f"settings (default all): {list(GRID)}")
    args = ap.parse_args()
    rows = {}
    for name in args.setting or GRID:
        fields, sel = GRID[name]
        cfg = ActiveBenchConfig(**{"tasks": tuple(args.task or ActiveBenchConfig.tasks), **fields},
                                strategies=("info-gain",), split="validation", reuse=True,
                                models_dir=args.models, n_eval_tasks=args.eval_tasks, noise_levels=(),
                                selection=SelectionConfig(**{**dataclasses.asdict(SelectionConfig()), **sel}))
        out = f"{args.out}/{name.replace(' ', '_').replace(',', '')}"
        run_active_bench(cfg, out, log=lambda s: None)
        for task in cfg.tasks:
            doc = json.load(open(f"{out}/{task}.json"))
            for key, curve in doc["models"].items():
                if key.endswith("/info-gain"):
                    rows[(name, task, key.split("/")[0])] = np.mean([curve[str(n)]["accuracy"] for n in range(1, 11)])
        print(f"done: {name}", flush=True)
    print("mean validation accuracy (%) over 1..10 information-gain questions")
    for (name, task, model), v in rows.items():
        print(f"  {name:34s} {task:12s} {model:7s} {100 * v:.2f}")


if __name__ == "__main__":
    main()
