"""Do the learned maze rewards order the steps IQL learns from? (issue 14 diagnostic)

The oracle policy reaches 95 % of the goals and the VPL + SPO policy 25 % with the same data,
IQL and z-conditioning (docs/rl.md), so the gap is in the learned rewards. Random state pairs,
what the reward models are validated on, are mostly far apart; what IQL sees is the *progress*
r(s_{t+1}, z) − r(s_t, z) of single steps. This script trains the bench's reward models exactly
as ``pluralign rl bench`` does (same users, pairs, sizes and seed), gives each test goal's users
z from n random answers as in the bench, and scores, over every transition of the offline
dataset that moves the ball by a measurable amount of geodesic distance:

* step sign: how often sign(r(s', z) − r(s, z)) equals sign(d(s) − d(s')), the true progress
  towards that user's goal (the oracle's progress reward gets 100 % by construction);
* near-goal and far step sign: the same for transitions within 1.5 cells of the goal and the rest;
* pair accuracy: the same model on random state pairs (what validation measures);
* the reward map: SPO-scaled reward at every free cell's centre (at rest) under the mean z of
  the goal's test users — its top cell and the cells that beat all their free neighbours (local
  maxima a policy can get stuck at).

    python benchmarks/rl_reward_check.py --seed 1 --goals 2 --model vpl --model np-btl --model btl
    python benchmarks/rl_reward_check.py --seed 1 --reward-steps 3000 --pairs-per-user 40   # variants

Prints one table and writes JSON beside ``--out``. Slow parts: the dataset (~1 min, reused from
``--out``) and each reward model (1-3 min at the bench's sizes on 2 cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from pluralign.rl.config import RLBenchConfig, reward_train_config
from pluralign.rl.dataset import get_dataset
from pluralign.rl.queries import latents
from pluralign.rl.setting import comparison_set, goal_setting, random_test_answers
from pluralign.rewards.spo import spo_scaled_reward
from pluralign.rl.views import STATE_VIEWS
from pluralign.train.rewards import train_reward_model


@torch.no_grad()
def rewards(model, states: np.ndarray, z: np.ndarray) -> np.ndarray:
    """r(s, z) of (N, D) states for one user's z."""
    return model.reward(torch.from_numpy(states[None]).float(), torch.from_numpy(z[None]))[0].numpy()


@torch.no_grad()
def step_sign_agreement(model, z: np.ndarray, before: np.ndarray, after: np.ndarray,
                        true_progress: np.ndarray, min_progress: float) -> float:
    """Share of transitions (one user's z) whose learned progress has the true progress's sign."""
    keep = np.abs(true_progress) >= min_progress
    if not keep.any():
        return float("nan")
    learned = rewards(model, after[keep], z) - rewards(model, before[keep], z)
    return float(np.mean(np.sign(learned) == np.sign(true_progress[keep])))


@torch.no_grad()
def reward_map(model, maze, z: np.ndarray, comparison: np.ndarray, view=lambda s: s) -> dict[tuple[int, int], float]:
    """SPO reward of every free cell's centre, the ball at rest, for one z (``comparison``
    already through the model's ``view``)."""
    cells = [tuple(map(int, c)) for c in maze.free_cells()]
    xy = maze.cell_to_xy(np.array(cells))
    states = view(np.concatenate([xy, np.zeros_like(xy)], 1).astype(np.float32))
    r = spo_scaled_reward(model, torch.from_numpy(states)[None], torch.from_numpy(comparison).float(),
                          torch.from_numpy(z[None]))[0].numpy()
    return dict(zip(cells, r.tolist()))


def local_maxima(values: dict[tuple[int, int], float]) -> list[tuple[int, int]]:
    """Cells whose value beats every free 4-neighbour's."""
    out = []
    for (i, j), v in values.items():
        around = [values[n] for n in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)) if n in values]
        if around and v > max(around):
            out.append((i, j))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--goals", type=int, default=2)
    ap.add_argument("--model", action="append", default=None, help="btl, np-btl, vpl (repeatable)")
    ap.add_argument("--answers", type=int, default=8, help="random answers per test user")
    ap.add_argument("--reward-steps", type=int, default=None)
    ap.add_argument("--reward-hidden", type=int, default=None)
    ap.add_argument("--pairs-per-user", type=int, default=None)
    ap.add_argument("--n-users", type=int, default=None)
    ap.add_argument("--local-pairs", type=float, default=None)
    ap.add_argument("--state-view", default=None, choices=STATE_VIEWS,
                    help="what the reward models see of a state (default: the bench's)")
    ap.add_argument("--tag", default="bench", help="name of this variant in the output")
    ap.add_argument("--out", default="runs/rl-reward-check")
    a = ap.parse_args()
    changes = {k: v for k, v in dict(reward_steps=a.reward_steps, reward_hidden=a.reward_hidden,
                                     pairs_per_user=a.pairs_per_user, n_users=a.n_users,
                                     local_pairs=a.local_pairs, state_view=a.state_view).items()
               if v is not None}
    # one round of random pairs, the defaults when this ran (before 2026-12-02's second round)
    base = RLBenchConfig(seed=a.seed, goal_counts=(a.goals,), pairs_per_user=20, refine_pairs=0)
    cfg = dataclasses.replace(base, **changes)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    dataset = get_dataset(cfg, out)
    maze, states = dataset.maze, dataset.observations
    setting = goal_setting(a.goals, dataset, cfg)
    goals, fields, records, test = setting.goals, setting.fields, setting.records, setting.test
    given = random_test_answers(setting, a.answers, cfg)
    view = setting.view  # the reward models read states through it; the users' distances do not
    before, after = states, dataset.next_observations
    seen_before, seen_after = view(before), view(after)
    rng = np.random.default_rng(cfg.seed + 9)
    pa, pb = (states[rng.choice(len(states), 4000)] for _ in range(2))
    comparison = view(comparison_set(states, cfg)[0])
    rows = []
    for name in a.model or ["vpl", "np-btl", "btl"]:
        t0 = time.time()
        run_dir = out / f"{a.tag}-k{a.goals}-seed{cfg.seed}-{cfg.state_view}" / name
        model, result = train_reward_model(records, name, reward_train_config(name, cfg), run_dir)
        model.eval()
        z_all = (latents(model, *given.first(a.answers)) if name in ("np-btl", "vpl")
                 else np.zeros((len(test.goal_index), 0), np.float32))
        row = {"variant": a.tag, "model": name, "train_s": round(time.time() - t0),
               "val_accuracy": (result.best_metrics or {}).get("accuracy"), "goals": {}}
        with torch.no_grad():
            for g, field in enumerate(fields):
                d0, d1 = field(before), field(after)
                progress = d0 - d1
                near = np.minimum(d0, d1) < 1.5 * maze.scale
                da, db = field(pa), field(pb)
                decided = da != db
                scores = []
                for z in z_all[test.goal_index == g]:  # every test user of this goal, own z
                    ra, rb = rewards(model, view(pa), z), rewards(model, view(pb), z)
                    scores.append([step_sign_agreement(model, z, seen_before, seen_after, progress, 0.5 * field.sub),
                                   step_sign_agreement(model, z, seen_before[near], seen_after[near], progress[near],
                                                       0.5 * field.sub),
                                   step_sign_agreement(model, z, seen_before[~near], seen_after[~near],
                                                       progress[~near], 0.5 * field.sub),
                                   float(np.mean((ra > rb)[decided] == (da < db)[decided]))])
                m = np.mean(scores, axis=0)
                row["goals"][str(g)] = {"goal": list(map(int, goals[g])), "step_sign": m[0], "step_sign_near": m[1],
                                        "step_sign_far": m[2], "pair_accuracy": m[3]}
                if name in ("np-btl", "vpl"):
                    values = reward_map(model, maze, z_all[test.goal_index == g].mean(0), comparison, view)
                    top = max(values, key=values.get)
                    row["goals"][str(g)].update(top_cell=list(top), top_reward=round(values[top], 3),
                                                goal_reward=round(values[tuple(map(int, goals[g]))], 3),
                                                local_maxima=[list(c) for c in local_maxima(values)])
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{'variant':<12} {'model':<7} goal  steps-right  near-goal  far    random-pairs")
    for row in rows:
        for g, r in row["goals"].items():
            print(f"{row['variant']:<12} {row['model']:<7} {g:>4}  {100 * r['step_sign']:10.1f}  "
                  f"{100 * r['step_sign_near']:9.1f}  {100 * r['step_sign_far']:5.1f}  {100 * r['pair_accuracy']:8.1f}")
    for row in rows:
        for g, r in row["goals"].items():
            if "top_cell" in r:
                print(f"{row['model']} goal {r['goal']}: SPO reward {r['goal_reward']} at the goal, top cell "
                      f"{r['top_cell']} ({r['top_reward']}), local maxima {r['local_maxima']}")
    with open(out / "results.jsonl", "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
