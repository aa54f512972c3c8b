"""Which z should a particle posterior give VPL's policy? (issue 14; benchmarks/results/rl_particles/)

For a ``pluralign rl bench`` run of one seed (its VPL reward model, users and test users' random
answers), per number n of answers: how often the goal whose centre gets the highest reward under a
z is the test user's own, for four z: the mean of VPL's q(z | answers) (the paper's), the heaviest
of 512 training users' particles (``RLBenchConfig.vpl_posterior="particles"``' first form), the
posterior-weighted medoid of the particles (its form now), and the goal the particles vote for
(weights summed per goal; a goal, not a z). Beside them: how many particles fit the answers within
0.1 nat of the best, the effective number of particles, and the median |z| of the heaviest and the
medoid against a median particle's (the policy was trained on typical z). No IQL; seconds.

    python benchmarks/rl_particle_z.py --bench runs/rl-particles/s20-variational --goals 2 --goals 10
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from pluralign.rl.bench import labelled_setting
from pluralign.rl.config import RLBenchConfig, reward_train_config
from pluralign.rl.dataset import get_dataset
from pluralign.rl.queries import latents
from pluralign.rl.setting import posterior_particles, test_answers
from pluralign.train.rewards import train_reward_model
from rl_goal_identification import goal_centres, model_config


def bench_config(bench: Path, k: int) -> tuple[RLBenchConfig, Path]:
    """The run's settings and its K's folder (``rl_goal_identification.model_config``), with the
    particle posterior."""
    seed = json.loads((bench / f"maze-{k}goals.json").read_text())["config"]["seed"]
    cfg, folder = model_config([bench], seed, k, None, bench)
    return dataclasses.replace(cfg, vpl_posterior="particles"), folder


@torch.no_grad()
def rows(bench: Path, k: int, ns: list[int], dataset: Path | None = None, strategy: str = "random") -> list[dict]:
    """One row per n in ``ns`` for K = ``k`` (module docstring), the test users' answers those of
    the bench's ``strategy`` (random, or active: information gain under the particles)."""
    cfg, folder = bench_config(bench, k)
    setting = labelled_setting(k, get_dataset(cfg, bench, dataset), cfg, folder, log=lambda *_: None)
    model, _ = train_reward_model(setting.records, "vpl", reward_train_config("vpl", cfg),
                                  folder / "rewards" / "vpl")  # loads the finished run
    cache: dict = {}
    particles = posterior_particles("vpl", model.eval(), setting, cfg, cache)
    centres, goal = goal_centres(setting), setting.test.goal_index
    top = particles.rewards(model, centres).argmax(1)  # (P,) each particle's goal
    answers = test_answers("vpl", strategy, model, setting, dataclasses.replace(cfg, context_sizes=tuple(ns)), cache)
    out = []
    for n in ns:
        chosen, rejected = answers.first(n)
        zq = torch.from_numpy(latents(model, chosen, rejected))
        by_q = model.reward(centres.unsqueeze(0).expand(len(zq), -1, -1), zq).argmax(1).numpy()
        heaviest, medoid, vote, close, ess = [], [], [], [], []
        for c, r in zip(chosen, rejected):
            lw = particles.log_weights(model, c, r)
            heaviest.append(int(lw.argmax()))
            medoid.append(particles.medoid(lw))
            vote.append(int(torch.zeros(k).index_add_(0, top, torch.softmax(lw, 0)).argmax()))
            close.append(int((lw > lw.max() - 0.1).sum()))
            ess.append(particles.effective_size(lw))
        norm = particles.z.norm(dim=1)
        out.append({"n": n, "q_mean": float(np.mean(by_q == goal)),
                    "heaviest": float(np.mean(top[heaviest].numpy() == goal)),
                    "medoid": float(np.mean(top[medoid].numpy() == goal)),
                    "medoid_per_goal": [float(np.mean(top[medoid].numpy()[goal == g] == g)) for g in range(k)],
                    "vote": float(np.mean(np.array(vote) == goal)),
                    "within_0.1_nat": float(np.median(close)), "ess": float(np.median(ess)),
                    "norm_heaviest": float(norm[heaviest].median()), "norm_medoid": float(norm[medoid].median()),
                    "norm_particles": float(norm.median())})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", type=Path, required=True, help="a `pluralign rl bench` --out folder with VPL trained")
    ap.add_argument("--dataset", type=Path, default=None, help="the run's --dataset, if it was given one")
    ap.add_argument("--goals", type=int, action="append", default=None)
    ap.add_argument("--queries", type=int, action="append", default=None)
    ap.add_argument("--strategy", choices=["random", "active"], default="random",
                    help="the test users' answers: the bench's random or active ones")
    ap.add_argument("--out", type=Path, default=None, help="write the rows here as JSON")
    a = ap.parse_args()
    result = {}
    for k in a.goals or [2, 10]:
        result[str(k)] = rows(a.bench, k, a.queries or [1, 2, 4, 8], a.dataset, a.strategy)
        print(f"{k} goals: the goal named (% of test users) by q's mean / heaviest particle / medoid / vote; "
              "particles within 0.1 nat; ESS; median |z| heaviest / medoid (particles)")
        for r in result[str(k)]:
            print(f"  n={r['n']}: {100 * r['q_mean']:.0f} / {100 * r['heaviest']:.0f} / {100 * r['medoid']:.0f} / "
                  f"{100 * r['vote']:.0f}; {r['within_0.1_nat']:.0f}; {r['ess']:.0f}; "
                  f"{r['norm_heaviest']:.1f} / {r['norm_medoid']:.1f} ({r['norm_particles']:.1f}); "
                  f"medoid per goal {[round(100 * x) for x in r['medoid_per_goal']]}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
