"""``pluralign rl bench``: Maze-Navigation with 2 and 10 user goals (VPL §4, Fig. 2, App. D.2,
D.3): success rate per user goal against the number of answered queries, for policies trained
on BTL, DPL, NP-BTL, VPL and VPL + SPO rewards, and the goal-conditioned oracle (true reward).

Per goal count K: users label pairs of dataset states (:mod:`.users`) -> the library's reward
models train on them through ``train_reward_model`` (context sets of 2–8 pairs) -> the offline
dataset is relabelled with z from the prior per episode (:mod:`.relabel`, Alg. 2/3) -> d3rlpy IQL
learns π(a | s, z) (:mod:`.iql`; several policies at once, in worker processes: :mod:`.workers`)
-> new users answer n queries, random or chosen actively by information gain (:mod:`.queries`,
``pluralign.active``), z comes from the encoder (VPL: by default a particle posterior of training
users' z, ``vpl_posterior``), and the policy drives the ball (:mod:`.rollout`). A policy's curve with active queries is reported as
model ``<policy>/active`` (latent models only; the policy is the same, only z differs). z for
relabelling: NP-BTL and VPL use the encoder's z (VPL: posterior mean) of a random training
user's 2–8 pairs, the z a test user gets (``vpl_relabel_z="prior"``: Alg. 2's samples of VPL's
learned prior p(z)); Mix-BTL, beside the paper's models, by default one of its rewards drawn
from its prior (``mix_relabel_z``); BTL and DPL have no z; the oracle gets the goal (a
one-hot of its index, or its position: ``oracle_z``) and reward 1 − d/d_max.
The per-step reward IQL sees is the progress r(s_{t+1}, z) − r(s_t, z) (``reward_form``, see
:func:`.relabel.progress_rewards`) for every policy alike. The run's sizes and defaults, and what
each was chosen on, are :class:`.config.RLBenchConfig`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import RLBenchConfig, parse_policy, reward_train_config
from .dataset import MazeDataset, get_dataset
from .latents import (LATENT_MODELS, component_codes, oracle_latent, policy_latent, relabel_latents,
                      vpl_policy_reads)
from .relabel import oracle_rewards, progress_rewards, relabel
from .setting import GoalSetting, comparison_set, goal_setting, posterior_particles, test_answers
from .workers import (GUARD_HINT, InProcess, PolicyJob, PolicyResult, fit_and_drive, policy_pool, refuse_in_bootstrap,
                      resolve_jobs)

#: dataset states a second labelling round (``refine_pairs``) rates to pick its pairs from
REFINE_POOL = 4000


def _stats(successes: np.ndarray) -> dict[str, Any]:
    n = len(successes)
    p = float(np.mean(successes)) if n else float("nan")
    return {"success": p, "stderr": float(math.sqrt(p * (1 - p) / n)) if n else float("nan"), "n": int(n)}


def _curve_names(policy_name: str, base: str, cfg: RLBenchConfig) -> list[tuple[str, str]]:
    """(model key in the results, queries strategy) for one trained policy: active queries only
    for models with a latent (:data:`LATENT_MODELS`)."""
    out = []
    for q in cfg.query_strategies:
        if q == "random" or base in LATENT_MODELS:
            out.append((policy_name if q == "random" else f"{policy_name}/{q}", q))
    return out or [(policy_name, "random")]


def runs_folder(k: int, cfg: RLBenchConfig) -> str:
    """Where under the bench's ``--out`` K = ``k``'s reward models train: the seed, view and second
    round in the name, since ``train_reward_model`` resumes a run found in its folder."""
    return f"k{k}-seed{cfg.seed}-{cfg.state_view}" + (f"-refine{cfg.refine_pairs}" if cfg.refine_pairs else "")


def run_goal_count(k: int, dataset: MazeDataset, cfg: RLBenchConfig, out: Path, log=print,
                   pool: Executor | None = None) -> dict[str, Any]:
    """Everything for K = ``k`` goals -> the results document (module docstring). Each policy's
    data is relabelled here, in the order of ``cfg.policies``; its IQL training and rollouts
    (:func:`.workers.fit_and_drive`) go to ``pool`` (default: this process, one at a time)."""
    from ..train.rewards import train_reward_model
    from .queries import latents
    from .report import results_stem, write_results

    maze = dataset.maze
    runs = out / runs_folder(k, cfg)
    setting = labelled_setting(k, dataset, cfg, runs, log)
    goals, fields, goals_xy, records, test = (setting.goals, setting.fields, setting.goals_xy, setting.records,
                                              setting.test)
    states = dataset.observations
    comparison_np, rng = comparison_set(states, cfg)
    comparison = torch.from_numpy(setting.view(comparison_np))
    progress = cfg.reward_form == "progress"
    # state form: r_t = r(s_{t+1}, z) by default, Alg. 2's alternative (the action at t changes it)
    episodes_np = dataset.episodes(dataset.next_observations if cfg.next_state or progress else states)
    before_np = dataset.episodes(states)
    n_ep, L = episodes_np.shape[:2]
    # what the reward models relabel: the episodes through the view (the oracle reads positions)
    episodes, before = torch.from_numpy(setting.view(episodes_np)), torch.from_numpy(setting.view(before_np))
    actions = np.tile(dataset.actions, (cfg.relabel_copies, 1))
    models: dict[str, Any] = {}
    answers: dict = {}
    doc: dict[str, Any] = {"task": f"maze-{cfg.maze}-{k}goals", "context_sizes": list(cfg.context_sizes),
                           "models": {}, "per_goal": {}, "goals": [list(g) for g in goals],
                           "reward_val_accuracy": {}, "timing_s": {}, "paths": {},
                           "test_goal_index": test.goal_index.tolist()}
    pool = pool or InProcess()
    running: dict[str, tuple[Future, float]] = {}

    def write() -> None:
        # the document lists the policies in the list's order, whichever finished first
        for key in ("models", "per_goal", "paths"):
            doc[key] = {c: doc[key][c] for p in cfg.policies for c, _ in _curve_names(p, parse_policy(p)[0], cfg)
                        if c in doc[key]}
        doc["timing_s"] = {p: doc["timing_s"][p] for p in cfg.policies if p in doc["timing_s"]}
        write_results(doc, out / results_stem(k))  # so far: a stopped run keeps what it measured

    def collect(until_all: bool) -> None:
        """Record the finished jobs as they finish (with ``until_all``, until none is left)."""
        while running:
            if until_all:  # block until one finishes, whichever it is
                wait([f for f, _ in running.values()], return_when=FIRST_COMPLETED)
            finished = [name for name, (future, _) in running.items() if future.done()]
            if not finished:
                return
            for name in finished:
                future, prep_s = running.pop(name)
                _record(doc, name, future.result(), prep_s, test, k, log)
            write()

    for policy_name in cfg.policies:
        t0 = time.time()
        base, scaling = parse_policy(policy_name)
        curves: dict[str, dict[int, np.ndarray]] = {}
        if base == "oracle":
            dmax = max(float(f.table[np.isfinite(f.table)].max()) for f in fields)
            z_parts, r_parts = [], []
            for c in range(cfg.relabel_copies):
                g = rng.integers(k, size=n_ep)
                r = oracle_rewards(np.stack([fields[gi](episodes_np[e]) for e, gi in enumerate(g)]), dmax)
                if progress:
                    r = r - oracle_rewards(np.stack([fields[gi](before_np[e]) for e, gi in enumerate(g)]), dmax)
                r_parts.append(r.reshape(-1))
                z_parts.append(np.repeat(oracle_latent(g, goals_xy, cfg.oracle_z), L, axis=0))
            z_rows, rewards = np.concatenate(z_parts), np.concatenate(r_parts)
            for name, _ in _curve_names(policy_name, base, cfg):
                curves[name] = {n: oracle_latent(test.goal_index, goals_xy, cfg.oracle_z) for n in cfg.context_sizes}
        else:
            if base not in models:
                models[base], result = train_reward_model(records, base, reward_train_config(base, cfg),
                                                          runs / "rewards" / base)
                doc["reward_val_accuracy"][base] = (result.best_metrics or {}).get("accuracy")
                log(f"[K={k}] reward model {base}: best validation accuracy "
                    f"{doc['reward_val_accuracy'][base]}")
            model = models[base]
            components = (component_codes(model, cfg.mix_policy_z, states, setting.view)
                          if base == "mix-btl" and cfg.mix_relabel_z == "prior" else None)
            # its own generator (seed + 10), so the bench's other draws stay as they were before it
            reads = (vpl_policy_reads(cfg.vpl_policy_z, model, states, setting.view, cfg.seed + 10)
                     if base == "vpl" else None)
            z_parts, r_parts = [], []
            for c in range(cfg.relabel_copies):
                z = relabel_latents(base, model, records, n_ep, rng, cfg.vpl_relabel_z, cfg.relabel_context,
                                     cfg.mix_relabel_z)
                r = (progress_rewards(model, before, episodes, z, scaling, comparison) if progress
                     else relabel(model, episodes, z, scaling, comparison))
                r_parts.append(r.reshape(-1).numpy())
                z_parts.append(np.repeat(policy_latent(base, z.numpy(), components, reads), L, axis=0))
            z_rows, rewards = np.concatenate(z_parts), np.concatenate(r_parts)
            for name, strategy in _curve_names(policy_name, base, cfg):
                given = test_answers(base, strategy, model, setting, cfg, answers)
                # NP-BTL's particles choose its questions only: its z is its encoder's
                particles = posterior_particles(base, model, setting, cfg, answers) if base == "vpl" else None
                curves[name] = {n: policy_latent(base, latents(model, *given.first(n), particles), components, reads)
                                for n in cfg.context_sizes}
        job = PolicyJob(np.tile(states, (cfg.relabel_copies, 1)), z_rows.astype(np.float32), actions, rewards, L,
                        cfg.iql_for(k), cfg.seed, curves, maze, dataset.config.action_repeat, test, goals_xy,
                        cfg.horizon, cfg.radius, max(cfg.context_sizes))
        if not isinstance(pool, InProcess):
            log(f"[K={k}] {policy_name}: data relabelled; IQL ({cfg.iql_for(k).steps} steps) and rollouts "
                f"in a worker")
        running[policy_name] = (pool.submit(fit_and_drive, job), time.time() - t0)
        collect(until_all=False)
    collect(until_all=True)
    return doc


def _record(doc: dict[str, Any], policy_name: str, result: PolicyResult, prep_s: float, test, k: int,
            log) -> None:
    """One finished policy's curves into the results document, and its line in the log."""
    for name, by_n in result.success.items():
        doc["models"][name] = {str(n): _stats(ok) for n, ok in by_n.items()}
        doc["per_goal"][name] = {str(n): [float(ok[test.goal_index == g].mean()) for g in range(k)]
                                 for n, ok in by_n.items()}
        doc["paths"][name] = result.paths[name]
        log(f"[K={k}] {name}: " + ", ".join(f"n={n} {100 * s['success']:.0f}%" for n, s in doc["models"][name].items())
            + f" ({round(prep_s + result.seconds, 1)} s)")
    # the policy's own work: relabelling (and its reward model) here, IQL and rollouts where they ran
    doc["timing_s"][policy_name] = round(prep_s + result.seconds, 1)


def labelled_setting(k: int, dataset: MazeDataset, cfg: RLBenchConfig, runs: Path, log=print) -> GoalSetting:
    """:func:`.setting.goal_setting` with, when ``cfg.refine_pairs``, the users' second round
    (:func:`second_round`, its model trained in or loaded from ``runs``/rewards): the users and
    labels every reward model of the bench (and the diagnostics in benchmarks/) trains on."""
    setting = goal_setting(k, dataset, cfg)
    if not cfg.refine_pairs:
        return setting
    return second_round(setting, dataset.observations, cfg, runs / "rewards" / f"{cfg.refine_model}-round1", log)


def second_round(setting: GoalSetting, states: np.ndarray, cfg: RLBenchConfig, run_dir: Path, log=print
                 ) -> GoalSetting:
    """``setting`` with each labelling user's ``cfg.refine_pairs`` second-round pairs added
    (:mod:`.refine`), chosen by ``cfg.refine_model`` trained in ``run_dir`` on the first round."""
    from ..train.rewards import train_reward_model
    from .refine import refine_records

    config = reward_train_config(cfg.refine_model, cfg)
    # a task's context and targets are one user's pairs (context <= targets): a shorter first round
    # of m pairs trains on contexts of up to m // 2 pairs and m - m // 2 targets
    first = cfg.pairs_per_user - cfg.refine_pairs
    context = min(config.tasks.context_max, first // 2)
    tasks = dataclasses.replace(config.tasks, context_max=context,
                                n_target=min(config.tasks.n_target, first - context))
    config = dataclasses.replace(config, tasks=tasks)
    model, result = train_reward_model(setting.records, cfg.refine_model, config, run_dir)
    pool = states[np.random.default_rng(cfg.seed + 7).choice(len(states), min(REFINE_POOL, len(states)), replace=False)]
    records = refine_records(setting.records, model, pool, setting.view, setting.fields, cfg.refine_pairs,
                             cfg.refine_top, cfg.label_noise, seed=cfg.seed + 8)
    log(f"second round: {cfg.refine_pairs} pairs per user near the goal {cfg.refine_model} infers "
        f"(first round: validation accuracy {(result.best_metrics or {}).get('accuracy')})")
    return dataclasses.replace(setting, records=records)


def bench_jobs(cfg: RLBenchConfig) -> tuple[int, str | None]:
    """How many policies train at once (:func:`.workers.resolve_jobs`), and a line for the log
    when that is more than one or when ``cfg.jobs`` could not be honoured."""
    jobs = resolve_jobs(cfg.jobs, len(cfg.policies))
    if jobs > 1 and cfg.vpl_relabel_z == "prior" and any(parse_policy(p)[0] == "vpl" for p in cfg.policies):
        # Alg. 2's prior samples come from torch's global generator, which each IQL run reseeds:
        # one policy at a time, they are the draws a run before workers made
        return 1, ("vpl_relabel_z=prior: policies train one at a time (jobs=1), so VPL's prior draws follow "
                   "each IQL run's reseeding as they always have")
    return jobs, (f"{jobs} policies train at once, in worker processes (jobs={cfg.jobs})" if jobs > 1 else None)


def run_bench(cfg: RLBenchConfig, out: str | Path, dataset_dir: Path | None = None, log=print) -> list[dict]:
    """Run every goal count; write ``maze-{K}goals.json``/``.csv``/``.png`` and print the tables."""
    from .report import format_table, plot_rollouts, results_stem, summary_lines, write_results

    from .env import require

    refuse_in_bootstrap()
    for module in ("mujoco", "gymnasium_robotics", "d3rlpy"):  # before hours of work, not in a worker
        require(module)
    torch.manual_seed(cfg.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    dataset = get_dataset(cfg, out, dataset_dir)
    log(f"dataset: {len(dataset.observations)} steps in {dataset.n_episodes} episodes ({time.time() - t0:.0f} s)")
    docs = []
    jobs, why = bench_jobs(cfg)
    if why:
        log(why)
    with policy_pool(jobs) as pool:
        for k in cfg.goal_counts:
            try:
                doc = run_goal_count(k, dataset, cfg, out, log, pool)
            except BrokenProcessPool as err:
                raise RuntimeError(f"{err} ({GUARD_HINT})") from err
            doc["config"] = json.loads(json.dumps(dataclasses.asdict(cfg)))
            write_results(doc, out / results_stem(k))
            plot_rollouts(doc, dataset.maze, out / f"{results_stem(k)}.png")
            log(format_table(doc))
            for line in summary_lines(doc):
                log(line)
            docs.append(doc)
    log(f"total {time.time() - t0:.0f} s")
    return docs
