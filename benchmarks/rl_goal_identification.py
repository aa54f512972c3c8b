"""How well do n answered queries name a test user's goal in the maze, and how well does a
learned reward model's z? (issue 14)

The oracle of ``pluralign rl bench`` is told the goal; every learned policy is told a z inferred
from the user's n answers to random state pairs. This script asks how much n random answers can
say at all, with no model: the bench's test users (same seed, goals, query pool and answers as
``pluralign rl bench``) answer their n queries, and the exact posterior over the K goals (a uniform
prior; noise-free users answer by shortest-path distance, so a goal is kept when it orders every
answered pair the way the user did, strictly) leaves a set of candidate goals. A policy that
drives to one goal it picks from the answers reaches the user's goal at most as often as it picks
it: on average 1 / (number of candidates), the best any z from these answers can do for such a
policy. Printed per n: that identification rate and the mean number of candidates. Given a bench
run of the same seed (``--bench DIR``), also the oracle's success at the largest n scaled goal by
goal by that rate: what a policy as good as the oracle at driving, told only the answers, would
reach if it picked among the candidates at random.

``--ideal-active`` adds what questions chosen from the bench's active pool (the same 500 state
pairs its ``active`` strategy asks from) can tell: one at a time, the pair with the largest
expected information about the goal under the exact posterior over the goals still left (a goal
tied on a pair answers it either way), answered by the user. This questioner knows the K goals
and their shortest-path fields, which no learned model does: it is the ceiling of information-gain
querying from that pool, not a method. ``--active-pool N`` draws a pool of N pairs instead.

``--model vpl`` (or ``np-btl``, ``mix-btl``) first prints the Bayes-optimal accuracy on the reward models'
validation task (contexts of 2-8 random pairs, 10 targets; the goals that fit the context vote),
to set beside the model's validation accuracy, then asks the model the same question: under the z of a test
user's first n answers (random, the bench's ``active`` ones, or the ideal questioner's), is the
goal whose centre (at rest) gets the highest reward the user's own? The model is the ``--bench``
run's of the same seed, or, with ``--train KEY=VALUE``, one trained here with the bench's
defaults and those settings (users, reward steps, width, latent size, beta): a way to compare
reward-model settings on what the 10-goal policies lose (docs/rl.md) without training a policy.
``--particles P`` adds the same question answered with a particle posterior instead of the model's
own z: P training users' z (each from 8 of their pairs) vote for the goal their reward ranks
highest, weighted by the likelihood of the test user's answers.

    python benchmarks/rl_goal_identification.py --seed 4 --seed 5 --seed 6 --goals 2 --goals 10 \
        [--bench runs/bench-rl-iql-s4 ...] [--ideal-active] [--model vpl [--train n_users=5000]]

Seconds without --model; about a minute per seed and goal count with a trained model; a model
trained with --train takes its 4,000 steps first (several minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from pluralign.rl.bench import labelled_setting, runs_folder
from pluralign.rl.config import RLBenchConfig, reward_train_config
from pluralign.rl.dataset import get_dataset
from pluralign.rl.queries import Answers, latents
from pluralign.rl.setting import goal_setting, random_test_answers, test_answers
from pluralign.train.rewards import train_reward_model
from settings import parse_settings


BENCH_N = max(RLBenchConfig().context_sizes)


def identification(setting, answers, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per test user, 1/|candidates| and |candidates|, from their first n answers."""
    rates, sizes = [], []
    for i, g in enumerate(setting.test.goal_index):
        c, r = answers.chosen[i, :n], answers.rejected[i, :n]
        kept = [k for k, field in enumerate(setting.fields) if n == 0 or bool(np.all(field(c) < field(r)))]
        if g not in kept:  # a noise-free user's own goal always fits their answers
            raise AssertionError(f"test user {i}'s goal {g} does not fit their own answers")
        rates.append(1.0 / len(kept))
        sizes.append(len(kept))
    return np.array(rates), np.array(sizes)


def _entropy(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return -(q * np.log2(q) + (1 - q) * np.log2(1 - q))


def ideal_active(setting, n_max: int, seed: int) -> tuple[np.ndarray, Answers]:
    """Per test user, the candidate-goal counts after 0..n_max questions (users, n_max + 1) from the
    active pool, each the pair of largest information gain about the goal under the exact posterior
    (module doc), and the answered pairs (observations, chosen first)."""
    a, b = setting.pool_pairs
    da = np.stack([field(a) for field in setting.fields])  # (K, pairs)
    db = np.stack([field(b) for field in setting.fields])
    p_yes = np.where(da < db, 1.0, np.where(da > db, 0.0, 0.5))  # goal k's answer "a is closer"
    rng = np.random.default_rng(seed)
    users = len(setting.test.goal_index)
    counts = np.zeros((users, n_max + 1), int)
    chosen = np.zeros((users, n_max, a.shape[1]), np.float32)
    rejected = np.zeros_like(chosen)
    for i, g in enumerate(setting.test.goal_index):
        left = np.ones(len(setting.fields), bool)
        asked = np.zeros(p_yes.shape[1], bool)
        counts[i, 0] = left.sum()
        for q in range(n_max):
            p = p_yes[left]
            gain = _entropy(p.mean(0)) - _entropy(p).mean(0)  # I(answer; goal | answers so far)
            gain[asked] = -np.inf
            j = int(np.argmax(gain))
            asked[j] = True
            yes = p_yes[g, j] == 1.0 or (p_yes[g, j] == 0.5 and rng.random() < 0.5)
            left &= p_yes[:, j] != (0.0 if yes else 1.0)  # drop the goals that answer the other way
            if not left[g]:
                raise AssertionError("a noise-free user's own goal always fits their answers")
            counts[i, q + 1] = left.sum()
            chosen[i, q], rejected[i, q] = (a[j], b[j]) if yes else (b[j], a[j])
    return counts, Answers(chosen, rejected)


def at_rest(setting, xy: np.ndarray) -> torch.Tensor:
    """(N, D) the ball at positions ``xy`` (N, 2), at rest, as the reward models read it (``setting.view``)."""
    obs = np.concatenate([xy, np.zeros_like(xy)], 1).astype(np.float32)
    return torch.from_numpy(setting.view(obs))


def goal_centres(setting) -> torch.Tensor:
    """(K, D) the goals' centres at rest, as the reward models read them."""
    return at_rest(setting, setting.goals_xy)


@torch.no_grad()
def named_goal(model, setting, answers: Answers, n: int) -> np.ndarray:
    """Per test user, whether the goal the learned reward ranks highest under the z of their first
    n answers is their own (reward at each goal's centre, at rest, through the model's view)."""
    z = torch.from_numpy(latents(model, *answers.first(n)))
    at_goals = goal_centres(setting)
    r = model.reward(at_goals.unsqueeze(0).expand(len(z), -1, -1), z)  # (users, K)
    return r.argmax(1).numpy() == setting.test.goal_index


def bayes_accuracy(setting, states: np.ndarray, seed: int, tasks: int = 2000, targets: int = 10,
                   sizes: tuple[int, int] = (2, 8)) -> float:
    """The Bayes-optimal accuracy on the reward models' own validation task: a user of a random goal
    labels 2-8 random pairs of dataset states (ties redrawn), and 10 more are predicted by the
    majority of the goals that fit the context (a goal tied on a pair counts half)."""
    rng = np.random.default_rng(seed)
    dist = np.stack([field(states) for field in setting.fields])  # (K, states)
    scores = []
    for _ in range(tasks):
        g = rng.integers(len(dist))

        def labelled(n: int) -> np.ndarray:  # (n, 2) state rows, the user's choice first
            rows = np.zeros((0, 2), int)
            while len(rows) < n:
                ij = rng.integers(len(states), size=(2 * n, 2))
                ij = ij[dist[g, ij[:, 0]] != dist[g, ij[:, 1]]]
                swap = dist[g, ij[:, 0]] > dist[g, ij[:, 1]]
                rows = np.concatenate([rows, np.where(swap[:, None], ij[:, ::-1], ij)])
            return rows[:n]

        ctx = labelled(int(rng.integers(sizes[0], sizes[1] + 1)))
        fits = (dist[:, ctx[:, 0]] < dist[:, ctx[:, 1]]).all(1)
        tgt = labelled(targets)
        dc, dr = dist[fits][:, tgt[:, 0]], dist[fits][:, tgt[:, 1]]
        p = np.where(dc < dr, 1.0, np.where(dc > dr, 0.0, 0.5)).mean(0)  # P(the user's choice)
        scores.append(np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, 0.5)))
    return float(np.concatenate(scores).mean())


@torch.no_grad()
def named_goal_particles(model, setting, answers: Answers, n: int, particles) -> np.ndarray:
    """As :func:`named_goal`, with a particle posterior instead of the model's own z: each particle
    (a training user's z) votes for the goal its reward ranks highest, weighted by the likelihood of
    the test user's first n answers under it (``pluralign.active.ParticlePosterior``)."""
    top = particles.rewards(model, goal_centres(setting)).argmax(1)  # (P,)
    chosen, rejected = answers.first(n)
    named = []
    for c, r in zip(chosen, rejected):
        w = torch.softmax(particles.log_weights(model, c, r), 0)
        named.append(int(torch.zeros(len(setting.goals)).index_add_(0, top, w).argmax()))
    return np.array(named) == setting.test.goal_index


def viewed(answers: Answers, view) -> Answers:
    return Answers(view(answers.chosen), view(answers.rejected))


def bench_oracle(dirs: list[Path], seed: int, k: int) -> list[float] | None:
    """The oracle's success per goal at the largest n in a bench run of this seed and K, if given."""
    for d in dirs:
        path = d / f"maze-{k}goals.json"
        if path.is_file():
            doc = json.loads(path.read_text())
            if doc.get("config", {}).get("seed") == seed and "oracle" in doc["per_goal"]:
                return doc["per_goal"]["oracle"][str(max(doc["context_sizes"]))]
    return None


TRAINABLE = ("n_users", "pairs_per_user", "reward_steps", "reward_hidden", "latent_dim", "vpl_beta_max")


def model_config(benches: list[Path], seed: int, k: int, train: dict | None, out: Path) -> tuple[RLBenchConfig, Path]:
    """The config and model folder: a --bench run of this seed, or (``train``) the bench's defaults
    with those settings, trained here into ``out``."""
    if train is not None:
        # on one round of 20 random pairs, the defaults its records used (before 2026-12-02)
        cfg = RLBenchConfig(seed=seed, **{"pairs_per_user": 20, "refine_pairs": 0, **train})
        tag = "-".join(f"{key}{v}" for key, v in sorted(train.items())) or "defaults"
        return cfg, out / "models" / tag / runs_folder(k, cfg)
    for d in benches:
        doc = json.loads((d / f"maze-{k}goals.json").read_text()) if (d / f"maze-{k}goals.json").is_file() else {}
        if doc.get("config", {}).get("seed") == seed:
            # the run's user, reward and query settings (its dataset and IQL do not matter here)
            fields = {f.name for f in dataclasses.fields(RLBenchConfig)} - {"data", "iql", "iql_many_goals"}
            # runs from before the second round (refine_pairs) or VPL's particles (vpl_posterior) had none
            given = {key: tuple(v) if isinstance(v, list) else v for key, v in doc["config"].items() if key in fields}
            cfg = RLBenchConfig(**{"refine_pairs": 0, "vpl_posterior": "variational", **given})
            return cfg, d / runs_folder(k, cfg)
    raise SystemExit(f"--model needs a --bench folder of seed {seed} with maze-{k}goals.json, or --train")


def model_row(base: str, cfg: RLBenchConfig, folder: Path, k: int, dataset, ns: list[int],
              random: dict[int, Answers], ideal: Answers, n_particles: int = 0) -> dict:
    """Named-goal rates of reward model ``base`` (trained in ``folder``/rewards, or loaded from
    there) for random (``random[size]``: the draws of ``main``, the n-answer context being the
    first n of ``random[max(n, BENCH_N)]``, as for the exact posterior), the bench's active and the
    ideal questions, printed and returned {strategy: {n: rate}, "val_accuracy": ...}."""
    setting = labelled_setting(k, dataset, cfg, folder)  # with a second round where the run had one
    model, result = train_reward_model(setting.records, base, reward_train_config(base, cfg),
                                       folder / "rewards" / base)  # loads a finished run
    active, ideal = test_answers(base, "active", model, setting, cfg, {}), viewed(ideal, setting.view)
    # per strategy, the answers whose first n are each n-answer context (the bench asks actively
    # only up to its largest n)
    by_strategy = {"random": {n: viewed(random[max(n, BENCH_N)], setting.view) for n in ns},
                   "active": {n: active for n in ns if n <= active.chosen.shape[1]},
                   "ideal": {n: ideal for n in ns}}
    out = {"val_accuracy": (result.best_metrics or {}).get("accuracy")}
    for strategy, answers in by_strategy.items():
        out[strategy] = {str(n): float(named_goal(model, setting, given, n).mean()) for n, given in answers.items()}
        print(f"{'':>4} {'':>5}  {base} names the goal, {strategy} questions: "
              + "  ".join(f"n={n} {100 * v:5.1f}%" for n, v in out[strategy].items()), flush=True)
    if n_particles:
        from pluralign.active import ParticlePosterior

        train = [r for r in setting.records if r.split == "train"]
        particles = ParticlePosterior.from_pairs(model, torch.tensor([r.chosen for r in train]),
                                                 torch.tensor([r.rejected for r in train]), [r.user_id for r in train],
                                                 n_particles=n_particles, context_size=(8, 8), seed=cfg.seed)
        for strategy in ("random", "active"):
            cells = {str(n): float(named_goal_particles(model, setting, given, n, particles).mean())
                     for n, given in by_strategy[strategy].items()}
            out[f"{strategy}/particles"] = cells
            print(f"{'':>4} {'':>5}  {base} particles name the goal, {strategy} questions: "
                  + "  ".join(f"n={n} {100 * v:5.1f}%" for n, v in cells.items()), flush=True)
    print(f"{'':>4} {'':>5}  {base} validation accuracy {out['val_accuracy']}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, action="append", default=None)
    ap.add_argument("--goals", type=int, action="append", default=None)
    ap.add_argument("--queries", type=int, action="append", default=None, help="n (repeatable; 0 1 2 4 8 16 32)")
    ap.add_argument("--dataset", type=Path, default=None, help="reuse a dataset (pluralign rl data)")
    ap.add_argument("--bench", type=Path, action="append", default=[],
                    help="a pluralign rl bench output folder (repeatable): scale its oracle by the rate")
    ap.add_argument("--ideal-active", action="store_true",
                    help="also questions chosen by exact information gain from the active pool (module doc)")
    ap.add_argument("--model", action="append", default=[], choices=["vpl", "np-btl", "mix-btl"],
                    help="also the goal the bench's reward model (from --bench) ranks highest under z (module doc)")
    ap.add_argument("--particles", type=int, default=0,
                    help="with --model: also name the goal with a particle posterior over this many training "
                         "users' z (8 pairs each) instead of the model's own z (module doc)")
    ap.add_argument("--active-pool", type=int, default=None,
                    help="state pairs active and ideal questions are chosen from (default: the bench's)")
    ap.add_argument("--train", action="append", default=None, metavar="KEY=VALUE",
                    help=f"with --model: train the model here with the bench's defaults and these settings "
                         f"({', '.join(TRAINABLE)}; repeatable; --train defaults= for none) instead of --bench's")
    ap.add_argument("--out", type=Path, default=Path("runs/rl-goal-identification"))
    a = ap.parse_args()
    train = None if a.train is None else parse_settings([t for t in a.train if t != "defaults="], RLBenchConfig(),
                                                         TRAINABLE, "--train")
    ns = a.queries or [0, 1, 2, 4, 8, 16, 32]
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"{'seed':>4} {'goals':>5}  " + "  ".join(f"n={n:<10}" for n in ns))
    for seed in a.seed or [4]:
        # the answers as the users give them (the view only changes what a model reads)
        cfg = RLBenchConfig(seed=seed, state_view="raw", active_pool=a.active_pool or RLBenchConfig().active_pool)
        dataset = get_dataset(cfg, a.out, a.dataset)
        for k in a.goals or [2, 10]:
            setting = goal_setting(k, dataset, cfg)
            # the bench draws max(n) = 8 answers per user; the first n of those are its n-answer
            # contexts, so n <= 8 reads exactly the bench's answers and larger n draws its own
            drawn = {size: random_test_answers(setting, size, cfg) for size in {max(n, BENCH_N) for n in ns}}
            cells = [identification(setting, drawn[max(n, BENCH_N)], n) for n in ns]
            row = {"seed": seed, "goals": k, "test_users": len(setting.test.goal_index),
                   "identified": {str(n): float(c[0].mean()) for n, c in zip(ns, cells)},
                   "candidates": {str(n): float(c[1].mean()) for n, c in zip(ns, cells)}}
            print(f"{seed:>4} {k:>5}  " + "  ".join(f"{100 * r.mean():5.1f}% ({s.mean():4.1f})" for r, s in cells),
                  flush=True)
            if a.ideal_active or a.model:
                sizes, ideal = ideal_active(setting, max(ns), seed=cfg.seed + 7)  # (users, n + 1)
                row["ideal_active"] = {"identified": {str(n): float((1 / sizes[:, n]).mean()) for n in ns},
                                       "candidates": {str(n): float(sizes[:, n].mean()) for n in ns}}
                print(f"{'':>4} {'':>5}  ideal active: " + "  ".join(
                    f"n={n} {100 * (1 / sizes[:, n]).mean():5.1f}% ({sizes[:, n].mean():4.1f})" for n in ns), flush=True)
            if a.model:
                row["bayes_val_accuracy"] = bayes_accuracy(setting, dataset.observations, seed=cfg.seed + 8)
                print(f"{'':>4} {'':>5}  Bayes accuracy on the reward models' validation task: "
                      f"{row['bayes_val_accuracy']:.3f}", flush=True)
            for base in a.model:
                cfg_m, folder = model_config(a.bench, seed, k, train, a.out)
                if a.active_pool:
                    cfg_m = dataclasses.replace(cfg_m, active_pool=a.active_pool)
                row.setdefault("named_by_model", {})[base] = model_row(base, cfg_m, folder, k, dataset, ns, drawn,
                                                                       ideal, a.particles)
            oracle = bench_oracle(a.bench, seed, k)
            if oracle is not None:
                goal = setting.test.goal_index
                row["oracle"] = float(np.mean(np.array(oracle)[goal]))
                row["oracle_times_identified"] = {str(n): float(np.mean(np.array(oracle)[goal] * c[0]))
                                                  for n, c in zip(ns, cells)}
                print(f"{'':>4} {'':>5}  oracle {100 * row['oracle']:.1f}% x rate: "
                      + "  ".join(f"n={n} {100 * v:.1f}%" for n, v in row["oracle_times_identified"].items()))
            rows.append(row)
    (a.out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("cells: the rate at which a policy that drives to one goal could pick the user's (mean of "
          "1/candidates), and the mean number of candidate goals left")


if __name__ == "__main__":
    main()
