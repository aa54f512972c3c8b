"""``pluralign rl bench``: Maze-Navigation with 2 and 10 user goals (VPL §4, Fig. 2, App. D.2,
D.3): success rate per user goal against the number of answered queries, for policies trained
on BTL, DPL, NP-BTL, VPL and VPL + SPO rewards, and the goal-conditioned oracle (true reward).

Per goal count K: users label pairs of dataset states (:mod:`.users`) -> the library's reward
models train on them through ``train_reward_model`` (context sets of 2–8 pairs) -> the offline
dataset is relabelled with z from the prior per episode (:mod:`.relabel`, Alg. 2/3) -> d3rlpy IQL
learns π(a | s, z) (:mod:`.iql`) -> new users answer n queries, random or chosen actively by
information gain (:mod:`.queries`, ``pluralign.active``), z comes from the encoder (VPL: by
default a particle posterior of training users' z, ``vpl_posterior``), and the
policy drives the ball (:mod:`.rollout`). A policy's curve with active queries is reported as
model ``<policy>/active`` (latent models only; the policy is the same, only z differs). z for
relabelling: NP-BTL and VPL use the encoder's z (VPL: posterior mean) of a random training
user's 2–8 pairs, the z a test user gets (``vpl_relabel_z="prior"``: Alg. 2's samples of VPL's
learned prior p(z)); Mix-BTL, beside the paper's models, by default one of its rewards drawn
from its prior (``mix_relabel_z``); BTL and DPL have no z; the oracle gets the goal's position
and reward 1 − d/d_max.
The per-step reward IQL sees is the progress r(s_{t+1}, z) − r(s_t, z) (``reward_form``, see
:func:`.relabel.progress_rewards`) for every policy alike.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..train.config import TrainConfig
from .dataset import MazeDataConfig, MazeDataset, get_dataset
from .iql import IQLSettings, train_iql
from .latents import LATENT_MODELS, VPL_POLICY_Z, component_codes, policy_latent, relabel_latents, vpl_policy_reads
from .maze import Maze
from .queries import STRATEGIES
from .relabel import SCALINGS, oracle_rewards, progress_rewards, relabel
from .setting import GoalSetting, comparison_set, goal_setting, posterior_particles, test_answers
from .views import STATE_VIEWS

REWARD_MODELS = ("btl", "dpl", "np-btl", "vpl", "mix-btl")
#: the paper's policies, the oracle, and the library's best with 10 goals (Mix-BTL + max-norm
#: on the second round's labels, docs/rl.md; Mix-BTL + SPO before 2026-12-02) last, so that the
#: others draw what they drew before it joined
DEFAULT_POLICIES = ("btl", "dpl", "np-btl", "vpl", "vpl+spo", "oracle", "mix-btl+maxnorm")
REWARD_FORMS = ("progress", "state")
#: dataset states a second labelling round (``refine_pairs``) rates to pick its pairs from
REFINE_POOL = 4000


def parse_policy(name: str) -> tuple[str, str]:
    """``"vpl+spo"`` -> ("vpl", "spo"); ``"btl"`` -> ("btl", "none"); ``"oracle"`` as is."""
    base, _, scaling = name.partition("+")
    scaling = scaling or "none"
    if name != "oracle" and (base not in REWARD_MODELS or scaling not in SCALINGS):
        raise ValueError(f"unknown policy {name!r}: use oracle or <model>[+<scaling>] with model in "
                         f"{REWARD_MODELS} and scaling in {SCALINGS[1:]}")
    return base, scaling


@dataclass
class RLBenchConfig:
    """Sizes of one bench run; ``quick()`` gives the CI form. See docs/rl.md for the scale-down
    from the paper (4M dataset steps). reward_form: ``progress`` (r(s_{t+1}, z) − r(s_t, z),
    :func:`.relabel.progress_rewards`) or ``state`` (Alg. 2's r(s_{t+1}, z) if next_state, else
    r(s_t, z)). mix_components: Mix-BTL's M (``--policy mix-btl``; not one of the paper's
    models: M rewards with the exact posterior over them, z the log posterior weights,
    :func:`policy_latent` says what the policy reads); mix_lapse: its lapse ε fixed at this
    value instead of learnt; mix_relabel_z: the z it relabels with, ``posterior`` (log weights
    of a training user's pairs, as NP-BTL and VPL; the policy reads weights) or ``prior`` (one
    component per episode drawn from its learnt prior π: Alg. 2's z from the prior, which for a
    mixture is one of its rewards; the policy reads the most probable component). ``prior``
    chosen on the tuning seeds 0 and 20: Mix-BTL + SPO at 8 answers, K = 10, 65 / 66 % random
    and 74 / 68 % active against 53 / 57 and 56 / 39 %, K = 2 (seed 20) 100 / 100 % (docs/rl.md,
    "Mix-BTL + SPO relabelled with one of its rewards"). mix_policy_z: with ``prior``, what the
    policy reads of a component (:func:`component_codes`). query_strategies: how test users'
    queries are chosen (``random``, ``active``); active_pool: the pairs of dataset states active
    selection chooses from. vpl_relabel_z: the z
    VPL relabels with (module docstring). vpl_posterior: how a test user's answers become VPL's z
    and choose its active questions: ``variational``, the paper's q(z | answers) (its mean; App. B's
    information gain under it), or ``particles``, 512 training users' z reweighted by the answers
    (:func:`.setting.posterior_particles`; z their weighted medoid, :func:`.queries.latents`).
    ``particles`` chosen on the tuning seeds 0, 20 and 21 by a rule written before the runs:
    VPL + SPO at 8 answers, K = 10, 49.7 / 60.0 % random / active against 37.0 / 48.7, K = 2
    98.3 / 98.3 % for both (benchmarks/results/rl_particles/). vpl_policy_z: what the policy
    reads of VPL's z, ``latent`` (z itself, the paper's), ``profile`` (its reward at 128 dataset
    states) or ``peak`` (where that reward is highest) (:func:`.latents.vpl_policy_reads`);
    ``profile`` and ``peak`` failed their rule on the same tuning seeds
    (benchmarks/results/rl_profile/). vpl_beta_max: VPL's KL weight after annealing; 0.05 chosen
    on validation accuracy (0.95 vs 0.59 for Table 2's 1.0 after 400 steps, 2 goals, seed 1).
    relabel_context: (min, max) pairs of the training user whose z relabels an episode (NP-BTL,
    VPL with ``vpl_relabel_z="posterior"``), drawn uniformly per episode and capped at the user's
    own pairs. (8, 8), the pairs behind each particle's z (was (2, 8), the reward models' own
    training context range), chosen on the tuning seeds 0, 20 and 21 by a rule written before the
    runs: VPL + SPO at 8 answers, K = 10, 54.7 / 65.0 % random / active against 49.7 / 60.0, K = 2
    96.7 / 96.7 against 98.3 / 98.3 (benchmarks/results/rl_particles_relabel8/).
    local_pairs: the fraction of each user's labelled pairs drawn a few steps apart (up to
    ``local_span``) within one episode instead of at random (:func:`.users.draw_pairs`; 0 is the
    paper's random pairs). refine_pairs: how many of each user's ``pairs_per_user`` pairs come in
    a second round, drawn among the ``refine_top`` fraction of a pool of dataset states that
    ``refine_model``, trained on everyone's first-round pairs and personalised with the user's
    own, rates highest (:mod:`.refine`; 0 is the paper's one round of random pairs). 28 pairs
    per user with 8 of them in a second round (were 20 random pairs) and ``mix-btl+maxnorm`` as
    the default list's Mix-BTL policy (was ``mix-btl+spo``) chosen on the tuning seeds 24-26
    after a rule written on seeds 0 and 20-22: Mix-BTL's policy at 8 answers, K = 10, 60.0 /
    78.3 % random / active against 59.3 / 71.3 (the previous defaults), 60.0 / 69.3 (max-norm on
    20 random pairs) and 60.3 / 69.7 (max-norm on 28 random pairs) (docs/rl.md, "A second
    labelling round near each user's goal").
    state_view: what the reward models see of a state (:mod:`.views`: ``raw``, the paper's
    observation, or ``pcell``, position + the cell's one-hot); the policy always sees the
    observation. ``pcell`` and 4,000 reward steps (were ``raw`` and 1,000) chosen
    on the tuning seeds 0 and 20: VPL + SPO's success at 8 answers, mean over 2 and 10 goals and
    both seeds, 57 % against 26 % (docs/rl.md, "The reward models' view of the state"). IQL
    6,000 steps (was 2,000, chosen on the oracle) on the same tuning seeds: VPL + SPO at 8
    answers 100 / 100 % with 2 goals and 41 / 40 % with 10, against 90 / 95 and 25 / 18 % (docs/rl.md,
    "IQL steps for the z-conditioned policy")."""

    maze: str = "medium"
    goal_counts: tuple[int, ...] = (2, 10)
    policies: tuple[str, ...] = DEFAULT_POLICIES
    context_sizes: tuple[int, ...] = (0, 1, 2, 4, 8)
    data: MazeDataConfig = field(default_factory=lambda: MazeDataConfig(n_episodes=800, episode_len=50))
    n_users: int = 500
    pairs_per_user: int = 28
    local_pairs: float = 0.0
    local_span: int = 10
    refine_pairs: int = 8
    refine_top: float = 0.03
    refine_model: str = "mix-btl"
    label_noise: float = 0.0
    query_noise: float = 0.0
    reward_steps: int = 4000
    reward_hidden: int = 128
    latent_dim: int = 8
    mix_components: int = 16
    mix_lapse: float | None = None
    mix_relabel_z: str = "prior"
    mix_policy_z: str = "component"
    vpl_beta_max: float = 0.05
    relabel_copies: int = 1
    comparison_size: int = 500
    iql: IQLSettings = field(default_factory=lambda: IQLSettings(steps=6000, hidden=128))
    eval_per_goal: int = 10
    horizon: int = 80
    radius: float = 0.45
    reward_form: str = "progress"
    vpl_relabel_z: str = "posterior"
    vpl_posterior: str = "particles"
    vpl_policy_z: str = "latent"
    relabel_context: tuple[int, int] = (8, 8)
    next_state: bool = True
    query_strategies: tuple[str, ...] = ("random", "active")
    active_pool: int = 500
    state_view: str = "pcell"
    seed: int = 0

    def __post_init__(self) -> None:
        for p in self.policies:
            parse_policy(p)
        if not 0.0 <= self.local_pairs <= 1.0 or self.local_span < 1:
            raise ValueError(f"local_pairs must be in [0, 1] and local_span >= 1, got {self.local_pairs}, "
                             f"{self.local_span}")
        first = self.pairs_per_user - self.refine_pairs  # bench.second_round: contexts of 2 or more, as many targets
        if self.refine_pairs < 0 or (self.refine_pairs and first < 4) or not 0.0 < self.refine_top <= 1.0:
            raise ValueError(f"refine_pairs must leave at least 4 first-round pairs of pairs_per_user "
                             f"({self.pairs_per_user}) and refine_top be in (0, 1], got {self.refine_pairs}, "
                             f"{self.refine_top}")
        if self.refine_model not in LATENT_MODELS:
            raise ValueError(f"refine_model must be one of {LATENT_MODELS}, got {self.refine_model!r}")
        if self.n_users < 2 or self.pairs_per_user < 1:  # here too: fail before the dataset is made
            raise ValueError(f"need at least 2 users and 1 pair per user, got {self.n_users} users "
                             f"and {self.pairs_per_user} pairs per user")
        if not self.goal_counts or min(self.goal_counts) < 2:
            raise ValueError(f"goal_counts must be >= 2 each, got {self.goal_counts}")
        if min(self.context_sizes, default=0) < 0:
            raise ValueError("context sizes (answered queries) must be >= 0")
        if len(self.relabel_context) != 2 or not 1 <= self.relabel_context[0] <= self.relabel_context[1]:
            raise ValueError(f"relabel_context must be (min, max) pairs with 1 <= min <= max, got "
                             f"{self.relabel_context}")
        if self.vpl_posterior not in ("variational", "particles"):
            raise ValueError(f"vpl_posterior must be variational or particles, got {self.vpl_posterior!r}")
        if self.vpl_policy_z not in VPL_POLICY_Z:
            raise ValueError(f"vpl_policy_z must be one of {VPL_POLICY_Z}, got {self.vpl_policy_z!r}")
        for name in ("vpl_relabel_z", "mix_relabel_z"):
            if getattr(self, name) not in ("prior", "posterior"):
                raise ValueError(f"{name} must be prior or posterior, got {getattr(self, name)!r}")
        if self.mix_policy_z not in ("component", "peak"):
            raise ValueError(f"mix_policy_z must be component or peak, got {self.mix_policy_z!r}")
        if self.reward_form not in REWARD_FORMS:
            raise ValueError(f"unknown reward form {self.reward_form!r}; choose one of {REWARD_FORMS}")
        if self.state_view not in STATE_VIEWS:
            raise ValueError(f"unknown state view {self.state_view!r}; choose one of {STATE_VIEWS}")
        for q in self.query_strategies:
            if q not in STRATEGIES:
                raise ValueError(f"unknown queries strategy {q!r}; choose one of {STRATEGIES}")
        Maze.named(self.maze)

    @classmethod
    def quick(cls, **changes: Any) -> "RLBenchConfig":
        base = dict(goal_counts=(2,), context_sizes=(0, 4), n_users=120, pairs_per_user=20,
                    data=MazeDataConfig(n_episodes=400, episode_len=50), reward_steps=400,
                    reward_hidden=64, comparison_size=200, iql=IQLSettings(steps=1500, hidden=128),
                    eval_per_goal=4, horizon=80, active_pool=200)
        base.update(changes)
        return cls(**base)


def reward_train_config(name: str, cfg: RLBenchConfig):
    """How the bench trains reward model ``name`` (also what the diagnostics in benchmarks/ use)."""
    from ..train.rewards import RewardTrainConfig, TaskConfig

    fields: dict[str, Any] = {"hidden_dim": cfg.reward_hidden}
    if name in ("np-btl", "vpl"):
        fields.update(embed_dim=cfg.reward_hidden)
    if name == "np-btl":  # the policy sees z: keep it as small as VPL's
        # plain Bradley-Terry, as measured here (the default preset's late lapse was chosen on
        # `pluralign bench defaults` populations, not on state preferences)
        fields.update(z_dim=cfg.latent_dim, lapse=0.0, lapse_start=0)
    if name == "vpl":
        fields.update(latent_dim=cfg.latent_dim, anneal_steps=cfg.reward_steps, beta_max=cfg.vpl_beta_max)
    if name == "mix-btl":  # one start (the preset would train two), components >= the goals
        fields.update(n_components=cfg.mix_components, init_scale=1.0)
        if cfg.mix_lapse is not None:  # fixed, not learnt
            fields.update(lapse=cfg.mix_lapse, learn_lapse=False)
    every = max(50, cfg.reward_steps // 5)
    train = TrainConfig(learning_rate=3e-4, max_steps=cfg.reward_steps, eval_steps=every, save_steps=every,
                        metric_for_best_model="accuracy", greater_is_better=True,
                        load_best_model_at_end=True, disable_tqdm=True, logging_steps=every,
                        seed=cfg.seed)
    tasks = TaskConfig(n_tasks=32, context_min=2, context_max=8, n_target=10, val_tasks=64, seed=cfg.seed)
    return RewardTrainConfig(model=fields, tasks=tasks, train=train)


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


def run_goal_count(k: int, dataset: MazeDataset, cfg: RLBenchConfig, out: Path, log=print) -> dict[str, Any]:
    """Everything for K = ``k`` goals -> the results document (module docstring)."""
    from ..train.rewards import train_reward_model
    from .env import MazeSim
    from .queries import latents
    from .report import results_stem, write_results
    from .rollout import rollout

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
    sim = MazeSim(maze, len(test.goal_index), dataset.config.action_repeat)
    models: dict[str, Any] = {}
    answers: dict = {}
    doc: dict[str, Any] = {"task": f"maze-{cfg.maze}-{k}goals", "context_sizes": list(cfg.context_sizes),
                           "models": {}, "per_goal": {}, "goals": [list(g) for g in goals],
                           "reward_val_accuracy": {}, "timing_s": {}, "paths": {},
                           "test_goal_index": test.goal_index.tolist()}
    for policy_name in cfg.policies:
        t0 = time.time()
        base, scaling = parse_policy(policy_name)
        if base == "oracle":
            dmax = max(float(f.table[np.isfinite(f.table)].max()) for f in fields)
            z_parts, r_parts = [], []
            for c in range(cfg.relabel_copies):
                g = rng.integers(k, size=n_ep)
                r = oracle_rewards(np.stack([fields[gi](episodes_np[e]) for e, gi in enumerate(g)]), dmax)
                if progress:
                    r = r - oracle_rewards(np.stack([fields[gi](before_np[e]) for e, gi in enumerate(g)]), dmax)
                r_parts.append(r.reshape(-1))
                z_parts.append(np.repeat(goals_xy[g], L, axis=0))
            z_rows, rewards = np.concatenate(z_parts), np.concatenate(r_parts)
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
        policy = train_iql(np.tile(states, (cfg.relabel_copies, 1)), z_rows.astype(np.float32), actions,
                           rewards, L, cfg.iql, seed=cfg.seed)
        for name, strategy in _curve_names(policy_name, base, cfg):
            curve, per_goal = {}, {}
            if base != "oracle":
                given = test_answers(base, strategy, models[base], setting, cfg, answers)
                # NP-BTL's particles choose its questions only: its z is its encoder's
                particles = posterior_particles(base, models[base], setting, cfg, answers) if base == "vpl" else None
            for n in cfg.context_sizes:
                z = (goals_xy[test.goal_index].astype(np.float32) if base == "oracle"
                     else policy_latent(base, latents(models[base], *given.first(n), particles), components, reads))
                ok, paths = rollout(policy, z, sim, test, goals_xy, cfg.horizon, cfg.radius)
                curve[str(n)] = _stats(ok)
                per_goal[str(n)] = [float(ok[test.goal_index == g].mean()) for g in range(k)]
                if n == max(cfg.context_sizes):
                    doc["paths"][name] = paths[:, ::2].round(3).tolist()
            doc["models"][name] = curve
            doc["per_goal"][name] = per_goal
            log(f"[K={k}] {name}: " + ", ".join(f"n={n} {100 * s['success']:.0f}%" for n, s in curve.items())
                + f" ({round(time.time() - t0, 1)} s)")
        doc["timing_s"][policy_name] = round(time.time() - t0, 1)
        write_results(doc, out / results_stem(k))  # so far: a stopped run keeps what it measured
    return doc


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


def run_bench(cfg: RLBenchConfig, out: str | Path, dataset_dir: Path | None = None, log=print) -> list[dict]:
    """Run every goal count; write ``maze-{K}goals.json``/``.csv``/``.png`` and print the tables."""
    from .report import format_table, plot_rollouts, results_stem, summary_lines, write_results

    torch.manual_seed(cfg.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    dataset = get_dataset(cfg, out, dataset_dir)
    log(f"dataset: {len(dataset.observations)} steps in {dataset.n_episodes} episodes ({time.time() - t0:.0f} s)")
    docs = []
    for k in cfg.goal_counts:
        doc = run_goal_count(k, dataset, cfg, out, log)
        doc["config"] = json.loads(json.dumps(dataclasses.asdict(cfg)))
        write_results(doc, out / results_stem(k))
        plot_rollouts(doc, dataset.maze, out / f"{results_stem(k)}.png")
        log(format_table(doc))
        for line in summary_lines(doc):
            log(line)
        docs.append(doc)
    log(f"total {time.time() - t0:.0f} s")
    return docs
