"""Which view of the state lets a one-goal reward order the maze's steps? (issue 14 diagnostic)

The learned rewards order 89-92 % of the dataset's steps right but only 64-78 % near the goals
(docs/rl.md). This script takes the bench's users of one goal only (no latent needed), trains the
bench's BTL reward on their pairs under a feature map of the state, and scores step signs as
``benchmarks/rl_reward_check.py`` does (every transition that moves the ball by half a sub-cell of
geodesic distance; near = within 1.5 cells of the goal):

* ``raw``: the 4-d observation (x, y, vx, vy), what the bench uses;
* ``pos``: the position (x, y) only (the users' choice depends on it alone);
* ``ffS``: the observation plus 32 random Fourier features sin/cos(2π B·(x, y)), B ~ N(0, S²)
  per cell (S = 1, 2, ...);
* ``cell``: the observation plus a one-hot of the maze cell the ball is in (free cells only), so
  the reward may jump at a wall between two cells instead of blurring across it;
* ``pcell``: the position plus that one-hot.

    python benchmarks/rl_state_features.py --seed 0 --view raw --view pos --view ff1
    python benchmarks/rl_state_features.py --seed 0 --view raw --users 1000 --pairs-per-user 80   # more labels

Besides step signs it prints where the goal's cell ranks among the free cells by the reward at
their centres (ball at rest; 1 = the reward peaks in the goal's cell) and the top cell.

~15-80 s per view and goal on two busy cores, after the dataset (~1 min).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from pluralign.rl.config import RLBenchConfig, reward_train_config
from pluralign.rl.dataset import get_dataset
from pluralign.rl.setting import goal_setting
from pluralign.rl.views import STATE_VIEWS, state_view, view_records
from pluralign.train.rewards import train_reward_model


def feature_map(view: str, maze, seed: int = 123):
    """The state -> reward-input map named ``view`` (module docstring)."""
    scale = maze.scale
    if view in STATE_VIEWS:  # raw and pcell: what `pluralign rl bench --state-view` offers
        return state_view(view, maze)
    if view == "cell":
        pcell = state_view("pcell", maze)
        return lambda s: np.concatenate([np.asarray(s, np.float32), pcell(s)[..., 2:]], -1)
    if view == "pos":
        return lambda s: np.asarray(s, np.float32)[..., :2]
    if view.startswith("ff"):
        b = np.random.default_rng(seed).normal(0, float(view[2:]) / scale, size=(2, 32)).astype(np.float32)

        def fourier(s):
            s = np.asarray(s, np.float32)
            proj = 2 * np.pi * s[..., :2] @ b
            return np.concatenate([s, np.sin(proj), np.cos(proj)], -1)

        return fourier
    raise ValueError(f"unknown view {view!r}: raw, pos, cell, pcell or ff<scale>")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--goals", type=int, default=2)
    ap.add_argument("--view", action="append", default=None, help="raw, pos, cell, pcell, ff1, ff2, ... (repeatable)")
    ap.add_argument("--users", type=int, default=RLBenchConfig.n_users)
    ap.add_argument("--pairs-per-user", type=int, default=20)  # the bench's default when this ran
    ap.add_argument("--reward-steps", type=int, default=1000, help="1,000: the bench's before the view was chosen")
    ap.add_argument("--dataset", type=Path, default=None, help="reuse a dataset (pluralign rl data)")
    ap.add_argument("--out", default="runs/rl-state-features")
    a = ap.parse_args()
    # the users' records as observations (state_view raw): this script applies its own views
    cfg = RLBenchConfig(seed=a.seed, goal_counts=(a.goals,), n_users=a.users, pairs_per_user=a.pairs_per_user,
                        refine_pairs=0, reward_steps=a.reward_steps, state_view="raw")
    sizes = "" if (a.users, a.pairs_per_user, a.reward_steps) == (500, 20, 1000) else \
        f"-u{a.users}-p{a.pairs_per_user}-r{a.reward_steps}"
    out = Path(a.out) / f"seed{a.seed}{sizes}"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    dataset = get_dataset(cfg, out, a.dataset)
    maze, before, after = dataset.maze, dataset.observations, dataset.next_observations
    setting = goal_setting(a.goals, dataset, cfg)
    cells = maze.free_cells()
    at_rest = np.concatenate([maze.cell_to_xy(np.array(cells)), np.zeros((len(cells), 2))], -1).astype(np.float32)
    print(f"{'view':<6} goal     val-acc  steps-right  near-goal  far    goal cell's rank  top cell")
    for view in a.view or ["raw", "pos", "ff1"]:
        f = feature_map(view, maze)
        for g, field in enumerate(setting.fields):
            records = view_records([r for r in setting.records if r.user_latent == g], f)
            t0 = time.time()
            model, result = train_reward_model(records, "btl", reward_train_config("btl", cfg), out / f"{view}-g{g}")
            model.eval()
            d0, d1 = field(before), field(after)
            progress = d0 - d1
            moved = np.abs(progress) >= 0.5 * field.sub
            near = np.minimum(d0, d1) < 1.5 * maze.scale
            with torch.no_grad():
                r0 = model.reward(torch.from_numpy(f(before)[None]))[0].numpy()
                r1 = model.reward(torch.from_numpy(f(after)[None]))[0].numpy()
                # the reward at every free cell's centre, ball at rest: is the goal's cell on top?
                at_cells = model.reward(torch.from_numpy(f(at_rest)[None]))[0].numpy()
            order = [cells[i] for i in np.argsort(-at_cells)]
            right = np.sign(r1 - r0) == np.sign(progress)
            row = {"view": view, "goal": list(map(int, setting.goals[g])),
                   "val_accuracy": (result.best_metrics or {}).get("accuracy"),
                   "steps_right": float(right[moved].mean()), "near_goal": float(right[moved & near].mean()),
                   "far": float(right[moved & ~near].mean()),
                   "goal_cell_rank": order.index(tuple(setting.goals[g])) + 1, "top_cells": order[:3],
                   "train_s": round(time.time() - t0)}
            (out / f"{view}-g{g}.json").write_text(json.dumps(row, indent=2) + "\n")
            print(f"{view:<6} {str(tuple(row['goal'])):<8} {row['val_accuracy']:.3f}    {row['steps_right']:.3f}"
                  f"        {row['near_goal']:.3f}      {row['far']:.3f}  {row['goal_cell_rank']:>16}  {order[0]}",
                  flush=True)


if __name__ == "__main__":
    main()
