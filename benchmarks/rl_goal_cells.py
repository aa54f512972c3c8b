"""Where does VPL + SPO's reward send each goal's test users? (issue 14; docs/rl.md, "The plain
command at width 256 on fresh seeds 42-44")

For a ``pluralign rl bench`` run of one seed: each test user's z is the one the bench's VPL
policies get (the particle posterior's medoid after n answers, random or active), and the SPO
reward the policy was relabelled with (Alg. 3: the mean probability of beating the bench's
comparison set) is read at the centre of every free cell, ball at rest. Per goal, over that goal's
test users: the cell with the highest mean reward, where the goal's own cell ranks among the free
cells, the reward there against the top cell's and the runner-up's, and the share of users whose own top cell is the
goal's. A goal whose cell ranks below a neighbour is one the relabelled reward does not ask the
policy to enter. No IQL; seconds.

    python benchmarks/rl_goal_cells.py --bench runs/rl-fresh-256/default-command-s42 [--strategy active] [--queries 8]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from pluralign.rewards.spo import spo_scaled_reward
from pluralign.rl.bench import labelled_setting
from pluralign.rl.config import reward_train_config
from pluralign.rl.dataset import get_dataset
from pluralign.rl.setting import comparison_set, posterior_particles, test_answers
from pluralign.train.rewards import train_reward_model
from rl_particle_z import bench_config  # benchmarks/ is on the path as a script


@torch.no_grad()
def goal_cells(bench: Path, k: int, n: int, strategy: str, dataset: Path | None = None) -> list[dict]:
    """One row per goal (module docstring) for K = ``k`` after ``n`` answers."""
    cfg, folder = bench_config(bench, k)
    data = get_dataset(cfg, bench, dataset)
    setting = labelled_setting(k, data, cfg, folder, log=lambda *_: None)
    model, _ = train_reward_model(setting.records, "vpl", reward_train_config("vpl", cfg),
                                  folder / "rewards" / "vpl")  # loads the finished run
    model = model.eval()
    cache: dict = {}
    particles = posterior_particles("vpl", model, setting, cfg, cache)
    answers = test_answers("vpl", strategy, model, setting, cfg, cache)
    chosen, rejected = answers.first(n)
    z = torch.stack([particles.z[particles.medoid(particles.log_weights(model, c, r))]
                     for c, r in zip(chosen, rejected)])  # (users, L): the policy's z
    maze = data.maze
    cells = np.array(maze.free_cells())
    xy = maze.cell_to_xy(cells)
    at_rest = torch.from_numpy(setting.view(np.concatenate([xy, np.zeros_like(xy)], 1).astype(np.float32)))
    comparison = torch.from_numpy(setting.view(comparison_set(data.observations, cfg)[0]))
    spo = spo_scaled_reward(model, at_rest.unsqueeze(0).expand(len(z), -1, -1), comparison, z).numpy()
    goal = setting.test.goal_index
    rows = []
    for g, cell in enumerate(setting.goals):
        users = spo[goal == g]  # (users of g, cells)
        mean = users.mean(0)
        own = int(np.flatnonzero((cells == np.array(cell)).all(1))[0])
        top, second = (int(i) for i in np.argsort(-mean)[:2])
        rows.append({"goal": list(map(int, cell)), "users": int(len(users)),
                     "top_cell": list(map(int, cells[top])), "goal_rank": int((mean > mean[own]).sum()) + 1,
                     "reward_goal": float(mean[own]), "reward_top": float(mean[top]),
                     "second_cell": list(map(int, cells[second])), "reward_second": float(mean[second]),
                     "users_topping_at_goal": float(np.mean(users.argmax(1) == own))})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", type=Path, action="append", required=True,
                    help="a `pluralign rl bench` --out folder with VPL trained (repeatable)")
    ap.add_argument("--dataset", type=Path, default=None, help="the runs' --dataset, if they were given one")
    ap.add_argument("--goals", type=int, default=10)
    ap.add_argument("--queries", type=int, default=8)
    ap.add_argument("--strategy", choices=["random", "active"], default="active")
    ap.add_argument("--out", type=Path, default=None, help="write the rows here as JSON")
    a = ap.parse_args()
    result = {}
    for bench in a.bench:
        rows = goal_cells(bench, a.goals, a.queries, a.strategy, a.dataset)
        result[str(bench)] = rows
        print(f"{bench}: {a.goals} goals, z of {a.queries} {a.strategy} answers; per goal: users, the top cell "
              "of the mean SPO reward, the goal cell's rank of the free cells, reward at goal / top, the runner-up cell "
              "and its reward, "
              "users whose own top cell is the goal's")
        for r in rows:
            print(f"  goal {tuple(r['goal'])}: {r['users']} users, top {tuple(r['top_cell'])}, rank {r['goal_rank']}, "
                  f"{r['reward_goal']:.3f} / {r['reward_top']:.3f}, then {tuple(r['second_cell'])} {r['reward_second']:.3f}, "
                  f"{100 * r['users_topping_at_goal']:.0f} %")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
