"""Where does each Mix-BTL component's reward peak, against the goal it stands for? (issue 14;
docs/rl.md, "What the Mix-BTL policy misses: rewards that peak past the goal")

For each of the K goals of a ``pluralign rl bench`` run: the component whose reward ranks the
goal's centre (ball at rest) highest among the dataset's states; the fraction of dataset states
that component rates above the goal's centre; and the shortest-path distance from the goal to the
dataset state it rates highest, which a policy trained on that reward drives towards. A test
episode succeeds within ``RLBenchConfig.radius`` (0.45) of the goal, so a peak further away than
that is a reward whose policy can miss the goal it names. The oracle's reward peaks at the goal.
Also, on a 7 x 7 grid over the goal's cell (ball at rest, out to 0.45 of the cell's width from its
centre), where that reward is highest (its offset from the centre), and how many of the 20 dataset
states it rates highest lie in the goal's cell.

    python benchmarks/rl_reward_peaks.py --bench runs/rl-mixpol/s0/c1-i6000 --seed 0 [--goals 10] [--json F]

The run folder holds the bench's dataset, its results JSON (whose user and reward settings are
used, as by ``rl_goal_identification.py --model``) and its trained Mix-BTL; seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from pluralign.rl.bench import labelled_setting
from pluralign.rl.config import RLBenchConfig, reward_train_config
from pluralign.rl.dataset import get_dataset
from pluralign.train.rewards import train_reward_model
from rl_goal_identification import goal_centres, model_config  # benchmarks/ is on the path as a script


def peaks(bench: Path, seed: int, k: int) -> list[dict]:
    cfg, folder = model_config([bench], seed, k, None, bench)
    dataset = get_dataset(cfg, bench)
    setting = labelled_setting(k, dataset, cfg, folder)
    run_dir = folder / "rewards" / "mix-btl"
    if not (run_dir / "run.json").is_file():
        raise SystemExit(f"no trained mix-btl in {run_dir}: run the bench with --policy mix-btl+spo there first")
    model, _ = train_reward_model(setting.records, "mix-btl", reward_train_config("mix-btl", cfg), run_dir)
    states = dataset.observations
    with torch.no_grad():
        scores = model.eval().net(torch.from_numpy(setting.view(states)).float()).numpy()  # (S, M)
        at_goal = model.net(goal_centres(setting).float()).numpy()  # (K, M)
    half = dataset.maze.scale / 2
    steps = np.linspace(-0.9 * half, 0.9 * half, 7)
    offsets = np.array([(dx, dy) for dx in steps for dy in steps]).round(2)
    rows = []
    for g, field in enumerate(setting.fields):
        cell = np.concatenate([setting.goals_xy[g] + offsets, np.zeros_like(offsets)], axis=1)
        with torch.no_grad():
            grid = model.net(torch.from_numpy(setting.view(cell)).float()).numpy()  # (49, M)
        above = (scores > at_goal[g]).mean(axis=0)  # per component
        m = int(np.argmin(above))
        top = states[scores[:, m].argmax()][None]
        top20 = states[np.argsort(-scores[:, m])[:20], :2]
        in_cell = np.all(np.abs(top20 - setting.goals_xy[g]) <= half, axis=1).mean()
        rows.append({"goal": g, "component": m, "states_above_goal": float(above[m]),
                     "peak_distance": float(field(top)[0]), "cell_peak_offset": offsets[grid[:, m].argmax()].tolist(),
                     "top20_in_goal_cell": float(in_cell)})
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, action="append", required=True)
    parser.add_argument("--seed", type=int, action="append", required=True)
    parser.add_argument("--goals", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if len(args.bench) != len(args.seed):
        raise SystemExit("give one --seed per --bench")
    radius = RLBenchConfig().radius
    doc = {}
    for bench, seed in zip(args.bench, args.seed):
        rows = peaks(bench, seed, args.goals)
        doc[str(bench)] = {"seed": seed, "goals": rows}
        print(f"seed {seed}: goal  component  states rated above the goal  peak's distance from the goal"
              "  peak in the goal's cell (offset)  top 20 in the goal's cell")
        for r in rows:
            dx, dy = r["cell_peak_offset"]
            print(f"  {r['goal']:>4}  {r['component']:>9}  {100 * r['states_above_goal']:>27.1f} %  {r['peak_distance']:>32.2f}"
                  f"  {f'({dx:+.2f}, {dy:+.2f})':>32}  {100 * r['top20_in_goal_cell']:>21.0f} %")
        far = np.mean([r["peak_distance"] > radius for r in rows])
        print(f"  peaks further than the success radius ({radius}): {100 * far:.0f} % of the goals")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1))
