"""Where does VPL + SPO lose to the oracle in the maze? Swap one ingredient at a time (issue 14).

The oracle and the VPL + SPO policy of ``pluralign rl bench`` share the dataset, IQL and the
rollouts; they differ in two things: the *reward* IQL learns from (the true 1 − d/d_max against
VPL's learned reward with SPO scaling) and the *conditioning* the policy sees (the goal's
position against VPL's posterior mean z of a user's answers). This script trains the bench's
VPL reward model (same users, sizes and seed) and four policies, each episode relabelled for one
training user (goal g, latent z_u = the posterior mean of 2–8 of that user's pairs):

    reward / conditioning    what IQL learns from             what the policy is told
    true / goal              1 − d_g/d_max (the oracle)       the goal's position
    learned / goal           SPO reward under z_u             the goal's position
    true / z                 1 − d_g/d_max                    z_u (test: z of 8 random answers)
    learned / z              SPO reward under z_u (vpl+spo)   z_u (test: z of 8 random answers)

All with the progress form r(s', ·) − r(s, ·) as in the bench. Success per goal over the bench's
test starts.

    python benchmarks/rl_gap_check.py --seed 1 --dataset runs/bench-rl/dataset --state-view raw --reward-steps 1000 --iql-steps 2000

~3-4 minutes per policy on 2 quiet cores.
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
from pluralign.rl.env import MazeSim
from pluralign.rl.iql import train_iql
from pluralign.rl.latents import oracle_latent
from pluralign.rl.queries import latents
from pluralign.rl.setting import (comparison_set, goal_setting, random_test_answers,
                                  training_contexts)
from pluralign.rl.relabel import oracle_rewards, progress_rewards
from pluralign.rl.rollout import rollout
from pluralign.rl.views import STATE_VIEWS
from pluralign.train.rewards import train_reward_model

VARIANTS = ("true/goal", "learned/goal", "true/z", "learned/z")


def user_latents(model, records, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """For n episodes: a random training user's posterior-mean z from 2-8 of their pairs (as the
    bench relabels), and the user's goal index."""
    chosen, rejected, mask, goal = training_contexts(records, n, rng)
    with torch.no_grad():
        return model.latent(model.eval().personalize(chosen, rejected, mask)).detach(), goal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--goals", type=int, default=2)
    ap.add_argument("--dataset", type=Path, default=None)
    ap.add_argument("--variant", action="append", choices=VARIANTS, default=None)
    ap.add_argument("--local-pairs", type=float, default=0.0,
                    help="fraction of the users' labelled pairs drawn a few steps apart (pluralign.rl.users.draw_pairs)")
    ap.add_argument("--state-view", default=RLBenchConfig.state_view, choices=STATE_VIEWS,
                    help="what the reward model sees of a state (pluralign.rl.views)")
    ap.add_argument("--reward-steps", type=int, default=RLBenchConfig.reward_steps)
    ap.add_argument("--iql-steps", type=int, default=None, help="IQL gradient steps per policy (default: the bench's)")
    ap.add_argument("--out", type=Path, default=Path("runs/rl-gap-check"))
    a = ap.parse_args()
    # one round of 20 random pairs, the defaults when this ran (before 2026-12-02's second round)
    cfg = RLBenchConfig(seed=a.seed, goal_counts=(a.goals,), local_pairs=a.local_pairs, state_view=a.state_view,
                        reward_steps=a.reward_steps, pairs_per_user=20, refine_pairs=0)
    cfg.iql = cfg.iql_for(a.goals)  # the bench's IQL for this many goals
    if a.iql_steps is not None:
        cfg.iql = dataclasses.replace(cfg.iql, steps=a.iql_steps)
    a.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    dataset = get_dataset(cfg, a.out, a.dataset)
    maze, states = dataset.maze, dataset.observations
    setting = goal_setting(a.goals, dataset, cfg)
    goals, fields, records, test = setting.goals, setting.fields, setting.records, setting.test
    goals_xy = setting.goals_xy.astype(np.float32)
    model, _ = train_reward_model(records, "vpl", reward_train_config("vpl", cfg),
                                  a.out / f"k{a.goals}-seed{cfg.seed}-{cfg.state_view}-r{cfg.reward_steps}" / "vpl")
    comparison_np, rng = comparison_set(states, cfg)
    comparison = torch.from_numpy(setting.view(comparison_np))
    after_np, before_np = dataset.episodes(dataset.next_observations), dataset.episodes(states)
    n_ep, length = after_np.shape[:2]
    z_u, goal = user_latents(model, records, n_ep, rng)
    dmax = max(float(f.table[np.isfinite(f.table)].max()) for f in fields)
    true = np.stack([oracle_rewards(fields[g](after_np[e]), dmax) - oracle_rewards(fields[g](before_np[e]), dmax)
                     for e, g in enumerate(goal)])
    seen_before, seen_after = torch.from_numpy(setting.view(before_np)), torch.from_numpy(setting.view(after_np))
    learned = progress_rewards(model, seen_before, seen_after, z_u, "spo", comparison).numpy()
    sim = MazeSim(maze, len(test.goal_index), dataset.config.action_repeat)
    answers = random_test_answers(setting, 8, cfg)
    z_test = latents(model, *answers.first(8))
    # how often the learned and true progress of a step agree in sign, for the episodes' users
    moving = np.abs(true) > 1e-3
    agree = float(np.mean(np.sign(learned[moving]) == np.sign(true[moving])))
    print(f"learned vs true progress: same sign on {100 * agree:.1f} % of the moving steps", flush=True)
    results = {"seed": cfg.seed, "goals": [list(map(int, g)) for g in goals], "step_sign_agreement": agree,
               "iql_steps": cfg.iql.steps}
    for variant in a.variant or VARIANTS:
        t0 = time.time()
        reward_kind, cond = variant.split("/")
        rewards = (true if reward_kind == "true" else learned).reshape(-1)
        cond_rows = oracle_latent(goal, goals_xy, "position") if cond == "goal" else z_u.numpy()
        policy = train_iql(states, np.repeat(cond_rows, length, axis=0).astype(np.float32), dataset.actions,
                           rewards.astype(np.float32), length, cfg.iql, seed=cfg.seed)
        z_rollout = oracle_latent(test.goal_index, goals_xy, "position") if cond == "goal" else z_test
        ok, _ = rollout(policy, z_rollout, sim, test, goals_xy, cfg.horizon, cfg.radius)
        per_goal = [float(ok[test.goal_index == g].mean()) for g in range(a.goals)]
        results[variant] = {"success": float(ok.mean()), "per_goal": per_goal, "seconds": round(time.time() - t0)}
        print(f"{variant:<13} success {100 * ok.mean():5.1f} %  per goal "
              + " / ".join(f"{100 * p:.0f}" for p in per_goal) + f"  ({time.time() - t0:.0f} s)", flush=True)
        (a.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
