"""``pluralign bench active``: how many questions a new user must answer, by strategy (issue 12).

For each task — NP paper Example 4.1, Example 4.3 at ρ = 0.7 (mostly agreeing users), K-mode
users (K ≥ 4) and the built-in text corpus — NP-BTL and VPL are trained once with the ``tuned``
preset (:func:`pluralign.eval.synthetic_bench.train_models`; text: the text bench's
:func:`~pluralign.eval.text_bench.train_one`), then test users are asked 0..10 questions chosen at
random, by uncertainty sampling or by information gain (VPL App. B), beside the exact Bayes
posterior with random questions and the greedy Bayes-optimal questioner (``bayes-active``).
The robustness setting of VPL Fig. 9 flips 10/25/50% of the answers at test time.

Files per task: ``<task>.json`` (results schema, models keyed ``<model>/<strategy>``),
``<task>.csv``, ``<task>.png``; ``robustness.png`` and ``summary.json`` (questions to reach 95% of
converged accuracy, and the issue's targets).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..active import ParticlePosterior
from ..atomic import write_text_atomic
from ..data.records import PreferenceRecord
from ..data.splits import by_split
from ..data.tables import option_vectors, user_ids
from .active_eval import PairTable, SelectionConfig, bayes_curves, model_curves, sample_tasks
from .active_report import finish_task, plot_overview, plot_robustness, summarize_targets
from .metrics import summarize

TASKS = ("example-4.1", "example-4.3", "kmode", "text")
MODELS = ("np-btl", "vpl")
STRATEGIES = ("random", "uncertainty", "info-gain")


@dataclass
class ActiveBenchConfig:
    """What ``pluralign bench active`` runs.

    tasks: among :data:`TASKS`. rho: Example 4.3's correlation. kmode_k: K of the K-mode users.
    text_data: built-in text set. steps: training steps per model (``tuned`` preset otherwise).
    n_pairs: pairs per synthetic data set. n_eval_tasks: users per curve. pool_size: candidate
    questions per user. n_target: held-out target pairs per user. max_questions: N of the curve.
    noise_levels / robust_task: answers flipped at test time (VPL Fig. 9) and on which task.
    split: ``test`` (report) or ``validation`` (tuning). selection: the strategies' knobs.
    n_particles / particle_context: the NP-BTL particle posterior (contexts of training users).
    vpl_beta_max: VPL's KL weight on the synthetic tasks (the text task keeps the text bench's).
    reuse: load models a previous run saved (under ``models_dir``, default ``out``) instead of
    training.
    """

    tasks: tuple[str, ...] = TASKS
    models: tuple[str, ...] = MODELS
    strategies: tuple[str, ...] = STRATEGIES
    quick: bool = False
    steps: int | None = None
    rho: float = 0.7
    kmode_k: int = 4
    text_data: str = "corpus-2mode"
    n_pairs: int = 8000
    n_eval_tasks: int = 300
    pool_size: int = 100
    n_target: int = 20
    max_questions: int = 10
    noise_levels: tuple[float, ...] = (0.1, 0.25, 0.5)
    robust_task: str = "text"
    split: str = "test"
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    n_particles: int = 64
    particle_context: tuple[int, int] = (10, 10)
    vpl_beta_max: float = 1.0
    reuse: bool = False
    models_dir: str | None = None
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        for name, allowed in (("tasks", TASKS), ("models", MODELS), ("strategies", STRATEGIES)):
            bad = sorted(set(getattr(self, name)) - set(allowed))
            if bad:
                raise ValueError(f"unknown {name} {bad}; choose from {', '.join(allowed)}")
        if self.split not in ("test", "validation"):
            raise ValueError(f"split must be 'test' or 'validation', got {self.split!r}")
        if self.kmode_k < 4:
            raise ValueError(f"kmode_k must be >= 4 (issue 12: K-mode users with K >= 4), got {self.kmode_k}")
        if any(not 0 <= e <= 0.5 for e in self.noise_levels):
            raise ValueError(f"noise levels must lie in [0, 0.5], got {self.noise_levels}")
        if min(self.n_eval_tasks, self.pool_size, self.n_target, self.n_particles) < 1 or self.max_questions < 1:
            raise ValueError("n_eval_tasks, pool_size, n_target, n_particles and max_questions must be >= 1")
        if self.max_questions > self.pool_size:
            raise ValueError(f"max_questions ({self.max_questions}) exceeds the pool ({self.pool_size})")
        if self.quick:
            self.n_eval_tasks = min(self.n_eval_tasks, 60)
            self.n_pairs = min(self.n_pairs, 2000)
            self.n_particles = min(self.n_particles, 64)

    @property
    def train_steps(self) -> int:
        return self.steps or (40 if self.quick else 300)


def synthetic_records(task: str, cfg: ActiveBenchConfig) -> tuple[list[PreferenceRecord], dict]:
    from ..data.synthetic import example41, example43, kmode

    if task == "example-4.1":
        return example41(n_pairs=cfg.n_pairs, seed=cfg.seed)
    if task == "example-4.3":
        return example43(n_pairs=cfg.n_pairs, rho=cfg.rho, seed=cfg.seed)
    return kmode(n_pairs=cfg.n_pairs, k=cfg.kmode_k, seed=cfg.seed)


def _load_saved(names, run_root: Path) -> dict[str, torch.nn.Module] | None:
    from ..rewards import RewardModel

    paths = {n: run_root / n / "best" for n in names}
    if not all((p / "config.json").exists() for p in paths.values()):
        return None
    return {n: RewardModel.from_pretrained(p).eval() for n, p in paths.items()}


def prepare_task(task: str, cfg: ActiveBenchConfig, out: Path, log: Callable[[str], None]
                 ) -> tuple[str, list[PreferenceRecord], dict[str, torch.nn.Module], dict]:
    """(name, vector records with splits, trained models, run info) of one task."""
    root = Path(cfg.models_dir) if cfg.models_dir else out
    run_root = root / task / "runs"
    if task == "text":
        from .text_bench import TextBenchConfig, load_text_records, train_one
        from .text_features import featurize, vector_records

        tcfg = TextBenchConfig(data=cfg.text_data, models=cfg.models, oracle=False, max_steps=cfg.train_steps,
                               seed=cfg.seed, progress=cfg.progress)
        texts = load_text_records(tcfg)
        records = vector_records(texts, featurize(texts, tcfg, log=log))
        name, setting = f"text:{cfg.text_data}", "text-bench settings"
        train = lambda n: train_one(by_split(records)["train"] + by_split(records)["validation"], n,  # noqa: E731
                                    tcfg, run_root / n, log)
    else:
        from .synthetic_bench import SyntheticBenchConfig, train_models

        records, _ = synthetic_records(task, cfg)
        scfg = SyntheticBenchConfig(preset="tuned", max_steps=cfg.train_steps, n_pairs=max(cfg.n_pairs, 200),
                                    vpl_beta_max=cfg.vpl_beta_max, seed=cfg.seed, progress=cfg.progress)
        name = {"example-4.3": f"example-4.3-rho-{cfg.rho:g}", "kmode": f"kmode-{cfg.kmode_k}"}.get(task, task)
        setting = "tuned preset"
        train = lambda n: train_models([n], records, scfg, root / task, log)  # noqa: E731
    models = _load_saved(cfg.models, run_root) if cfg.reuse else None
    info: dict[str, Any] = {"reused": models is not None}
    if models is None:
        log(f"{name}: training {', '.join(cfg.models)} for {cfg.train_steps} steps each ({setting})")
        models = {}
        for n in cfg.models:
            model, run = train(n)
            if isinstance(model, dict):  # synthetic_bench.train_models returns dicts
                model, run = model[n], run[n]
            models[n] = model.eval()
            info[n] = run
    return name, records, models, info


def make_particles(model: torch.nn.Module, records: list[PreferenceRecord], cfg: ActiveBenchConfig
                   ) -> ParticlePosterior:
    """The particle posterior of a model: contexts of random training users."""
    train = by_split(records)["train"]
    chosen, rejected = option_vectors(train)
    return ParticlePosterior.from_pairs(model, chosen, rejected, user_ids(train), cfg.n_particles,
                                        cfg.particle_context, seed=cfg.seed + 3, lapse=cfg.selection.lapse)


def evaluate_task(name: str, records, models, cfg: ActiveBenchConfig, noise: float,
                  log: Callable[[str], None]) -> dict[str, Any]:
    """The results document of one task at one answer-noise level."""
    table = PairTable.from_records(by_split(records)[cfg.split])
    tasks = sample_tasks(table, cfg.n_eval_tasks, cfg.n_target, min(cfg.pool_size, len(table) - cfg.n_target),
                         noise, cfg.seed + 12345 + (0 if cfg.split == "test" else 1))
    sizes = list(range(cfg.max_questions + 1))
    curves: dict[str, Any] = {}
    timing: dict[str, float] = {}
    for mname, model in models.items():
        use_particles = mname == "np-btl" or cfg.selection.vpl_posterior == "particles"
        particles = make_particles(model, records, cfg) if use_particles else None
        for strategy in cfg.strategies:
            t0 = time.perf_counter()
            acc = model_curves(model, table, tasks, strategy, cfg.max_questions, cfg.selection,
                               particles, seed=cfg.seed)
            curves[f"{mname}/{strategy}"] = {str(n): summarize(acc[:, n]) for n in sizes}
            timing[f"{mname}/{strategy}"] = round(time.perf_counter() - t0, 2)
    for label, active in (("bayes/random", False), ("bayes/bayes-active", True)):
        acc = bayes_curves(table, tasks, cfg.max_questions, noise, active)
        curves[label] = {str(n): summarize(acc[:, n]) for n in sizes}
    doc = {"task": name if noise == 0 else f"{name}-noise-{noise:g}", "context_sizes": sizes,
           "bayes": {k: float(v["accuracy"]) for k, v in curves["bayes/random"].items()},
           "models": curves, "noise": noise, "split": cfg.split, "n_pairs_in_split": len(table),
           "n_types": table.n_types, "timing_s": timing}
    return doc


def run_active_bench(cfg: ActiveBenchConfig, out_dir: str | Path,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every configured task (and the robustness levels on ``robust_task``); returns the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # a shared machine; these sizes gain nothing from threads
    t_start = time.perf_counter()
    docs: dict[str, dict] = {}
    robust: list[dict] = []
    meta = {"bench_config": dataclasses.asdict(cfg)}
    for task in cfg.tasks:
        t0 = time.perf_counter()
        name, records, models, info = prepare_task(task, cfg, out, log)
        doc = evaluate_task(name, records, models, cfg, 0.0, log)
        docs[task] = finish_task({**doc, **meta, "runs": info}, out, task, log)
        if task == cfg.robust_task:
            robust.append(docs[task])
            for eps in cfg.noise_levels:
                if eps > 0:
                    nd = evaluate_task(name, records, models, cfg, eps, log)
                    robust.append(finish_task({**nd, **meta}, out, f"{task}-noise-{eps:g}", log))
        log(f"{name}: {time.perf_counter() - t0:.0f}s")
    if len(robust) > 1:
        plot_robustness(robust, out / "robustness.png")
    if docs:
        plot_overview(list(docs.values()), out / "overview.png")
    summary = summarize_targets(docs, robust, synthetic=[t for t in docs if t != "text"])
    summary["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    log(summary["text"])
    return summary
