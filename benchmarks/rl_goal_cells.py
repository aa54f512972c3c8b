"""Where does VPL + SPO's reward send each goal's test users? (issue 14; docs/rl.md, "The plain
command at today's defaults on fresh seeds 42-44")

For a ``pluralign rl bench`` run of one seed: each test user's z is the one the bench's VPL
policies get (the particle posterior's medoid after n answers, random or active), and the SPO
reward the policy was relabelled with (Alg. 3: the mean probability of beating the bench's
comparison set) is read at the centre of every free cell, ball at rest. Per goal, over that goal's
test users: the cell with the highest mean reward, where the goal's own cell ranks among the free
cells, the reward there against the top cell's and the runner-up's, and the share of users whose
own top cell is the goal's. A goal whose cell ranks below a neighbour is one the relabelled reward does not ask the
policy to enter. Beside it, the same for the training users of each goal, each with the z of 8 of
their own pairs (the z a particle or a relabelled episode gets): whether the reward model can put
a goal's peak in its cell for the users who taught it. No IQL; seconds.

    python benchmarks/rl_goal_cells.py --bench runs/rl-fresh-256/default-command-s42 [--strategy active] [--queries 8]

``--train KEY=VALUE`` (repeatable; the reward-model settings of ``rl_goal_identification.py``'s
``--train``, and the labels' ``refine_pairs`` / ``local_pairs``) retrains the run's reward models
with those settings on its dataset and users, into ``--models`` (minutes), and reads that VPL
instead: a reward-side lever tried without IQL (benchmarks/results/rl_users_2000/).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from pluralign.active.posterior import point_latent
from pluralign.rewards.spo import spo_scaled_reward
from pluralign.rl.bench import labelled_setting, runs_folder
from pluralign.rl.config import RLBenchConfig, reward_train_config
from pluralign.rl.dataset import get_dataset
from pluralign.rl.queries import latents
from pluralign.rl.setting import comparison_set, posterior_particles, test_answers
from pluralign.train.rewards import train_reward_model
from rl_goal_identification import TRAINABLE, at_rest  # benchmarks/ is on the path as a script
from rl_particle_z import bench_config
from settings import parse_settings

SETTINGS = TRAINABLE + ("refine_pairs", "local_pairs")
MODELS = Path("runs/rl-goal-cells")  # where --train trains


def goal_cells(bench: Path, k: int, n: int, strategy: str, dataset: Path | None = None,
               train: dict | None = None, models: Path = MODELS) -> list[dict]:
    """One row per goal (module docstring) for K = ``k`` after ``n`` answers; with ``train``, the
    reward models retrained with those settings under ``models``."""
    cfg, folder = bench_config(bench, k)
    if train:
        cfg = dataclasses.replace(cfg, **train)
        tag = "-".join(f"{key}{v}" for key, v in sorted(train.items()))
        folder = models / f"seed{cfg.seed}-{tag}" / runs_folder(k, cfg)
    data = get_dataset(cfg, bench, dataset)
    setting = labelled_setting(k, data, cfg, folder, log=lambda *_: None)
    model, _ = train_reward_model(setting.records, "vpl", reward_train_config("vpl", cfg),
                                  folder / "rewards" / "vpl")  # loads the finished run
    return _rows(model.eval(), setting, data, cfg, n, strategy)  # not under no_grad: they may train above


@torch.no_grad()
def _rows(model, setting, data, cfg, n: int, strategy: str) -> list[dict]:
    cache: dict = {}
    particles = posterior_particles("vpl", model, setting, cfg, cache)
    answers = test_answers("vpl", strategy, model, setting, cfg, cache)
    z = torch.from_numpy(latents(model, *answers.first(n), particles))  # (users, L): the policy's z
    cells = np.array(data.maze.free_cells())
    centres = at_rest(setting, data.maze.cell_to_xy(cells))
    comparison = torch.from_numpy(setting.view(comparison_set(data.observations, cfg)[0]))
    spo = lambda zs: spo_scaled_reward(model, centres.unsqueeze(0).expand(len(zs), -1, -1), comparison, zs).numpy()
    test_spo, goal = spo(z), setting.test.goal_index
    train_z, train_goal = training_latents(model, setting.records)
    train_spo = spo(train_z)
    rows = []
    for g, cell in enumerate(setting.goals):
        users = test_spo[goal == g]  # (users of g, cells)
        mean = users.mean(0)
        own = int(np.flatnonzero((cells == np.array(cell)).all(1))[0])
        top, second = (int(i) for i in np.argsort(-mean)[:2])
        rows.append({"goal": list(map(int, cell)), "users": int(len(users)),
                     "top_cell": list(map(int, cells[top])), "goal_rank": int((mean > mean[own]).sum()) + 1,
                     "reward_goal": float(mean[own]), "reward_top": float(mean[top]),
                     "second_cell": list(map(int, cells[second])), "reward_second": float(mean[second]),
                     "users_topping_at_goal": float(np.mean(users.argmax(1) == own)),
                     "training_users": int((train_goal == g).sum()),
                     "training_users_topping_at_goal": float(np.mean(train_spo[train_goal == g].argmax(1) == own))})
    return rows


@torch.no_grad()
def training_latents(model, records, n_pairs: int = 8) -> tuple[torch.Tensor, np.ndarray]:
    """Each training user's z from their first ``n_pairs`` pairs (VPL's posterior mean) and goal."""
    by_user: dict[str, list] = {}
    for r in records:
        if r.split == "train":
            by_user.setdefault(r.user_id, []).append(r)
    users = [rs[:n_pairs] for rs in by_user.values() if len(rs) >= n_pairs]
    chosen = torch.tensor([[r.chosen for r in rs] for rs in users], dtype=torch.float32)
    rejected = torch.tensor([[r.rejected for r in rs] for rs in users], dtype=torch.float32)
    z = point_latent(model, chosen, rejected, torch.ones(chosen.shape[:2], dtype=torch.bool))
    return z, np.array([rs[0].user_latent for rs in users])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", type=Path, action="append", required=True,
                    help="a `pluralign rl bench` --out folder with VPL trained (repeatable)")
    ap.add_argument("--dataset", type=Path, default=None, help="the runs' --dataset, if they were given one")
    ap.add_argument("--goals", type=int, default=10)
    ap.add_argument("--queries", type=int, default=8)
    ap.add_argument("--strategy", choices=["random", "active"], default="active")
    ap.add_argument("--train", action="append", default=None, metavar="KEY=VALUE",
                    help=f"retrain the reward models with these settings ({', '.join(SETTINGS)}; repeatable)")
    ap.add_argument("--models", type=Path, default=MODELS, help="where --train trains")
    ap.add_argument("--out", type=Path, default=None, help="write the rows here as JSON")
    a = ap.parse_args()
    train = parse_settings(a.train or [], RLBenchConfig(), SETTINGS, "--train")
    result = {}
    for bench in a.bench:
        rows = goal_cells(bench, a.goals, a.queries, a.strategy, a.dataset, train, a.models)
        result[str(bench)] = rows
        print(f"{bench}: {a.goals} goals, z of {a.queries} {a.strategy} answers; per goal: users, the top cell "
              "of the mean SPO reward, the goal cell's rank of the free cells, reward at goal / top, the runner-up cell "
              "and its reward, users whose own top cell is the goal's (test; training users with z of 8 of their pairs)")
        for r in rows:
            print(f"  goal {tuple(r['goal'])}: {r['users']} users, top {tuple(r['top_cell'])}, rank {r['goal_rank']}, "
                  f"{r['reward_goal']:.3f} / {r['reward_top']:.3f}, then {tuple(r['second_cell'])} {r['reward_second']:.3f}, "
                  f"{100 * r['users_topping_at_goal']:.0f} %; {100 * r['training_users_topping_at_goal']:.0f} % "
                  f"of {r['training_users']}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
