"""``pluralign bench synthetic``: the NP paper's synthetic experiments and VPL's didactic mixture.

* **Example 4.1** (NP paper §4.1, App. C.1, Fig. 1b): 1-D options on [0, 1], two user types that
  disagree on half the pairs. BTL, DPL, NP-BTL and VPL, accuracy on unseen targets at
  N^C ∈ {0, 1, 3, 5, 10} beside the Bayes-optimal 1 - 0.25·0.5^N^C and the paper's NP-BTL row.
* **Example 4.3** (§4.3, App. C.3, Fig. 4): 2-D Gaussian options with correlation ρ; one model
  per ρ ∈ {-1, -0.7, 0, 0.7}. The *single-context error* is the error on conflicting unseen
  target pairs given one context pair — for a predictor that picks a user type from the context
  this is its error of identifying z, whose Bayes-optimal value is 1/4 + arcsin(ρ)/(2π).
* **VPL didactic mixture** (VPL App. D.1, Fig. 6): M annotators with Gaussian-bump rewards and
  Bradley–Terry choices; learned reward curves per annotator (SPO-scaled, VPL App. A) against
  the ground truth.

Every task trains through :func:`pluralign.train.rewards.train_reward_model` (one loop for all
models) and is scored by :func:`pluralign.eval.results.evaluate_models`, so the files follow the
results schema of issue 3. Presets are those of ``pluralign train``
(:mod:`pluralign.train.presets`): ``paper`` is App. C.1 (Adam, lr 1e-4, 64 tasks a batch, MLPs
2×256 GELU, DeepSet with mean pooling); ``tuned`` changes what measurement showed matters (sum
pooling, lr 1e-3, an antisymmetric pair encoder, VPL β_max 0.01; see docs/rewards.md and
docs/defaults.md); ``tuned-plain`` is ``tuned`` without the antisymmetric encoder. Here every
model trains a fixed number of steps (2,000; ``--quick`` 300) and keeps its best checkpoint by
validation accuracy, so the tables stay comparable with earlier runs.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..data.splits import by_split
from ..data.synthetic import example41, example43, vpl_didactic
from ..data.tasks import TaskItem, TaskSampler, collate
from ..data.users import gaussian_bump_users
from ..train.config import TrainConfig
from ..train.presets import PRESETS
from ..train.rewards import RewardTrainConfig, TaskConfig, train_reward_model
from .bayes import (example41_bayes_accuracy, example43_bayes_accuracy, example43_single_context_error,
                    likelihood_from_users)
from .metrics import EvalConfig, EvalData, batches, correctness, predict, sample_eval_tasks
from .plots import plot_accuracy
from .results import evaluate_models, format_table, write_csv, write_json

#: NP paper Figure 1b, NP-BTL accuracy (%) by N^C.
PAPER_NP_BTL_41 = {"0": 0.752, "1": 0.800, "3": 0.882, "5": 0.936, "10": 0.972}
MODELS_41 = ("btl", "dpl", "np-btl", "vpl")

#: training steps of every model when neither --steps nor --quick is given
SYNTHETIC_STEPS = 2000


@dataclass
class SyntheticBenchConfig:
    """What ``pluralign bench synthetic`` runs.

    preset: ``paper`` or ``tuned`` (see :data:`PRESETS`). quick: few steps, fewer evaluation
    tasks and fewer models (a few minutes on 2 CPU cores). max_steps / learning_rate: override
    the preset. n_pairs: pairs per data set (paper: 20k, split 10k/5k/5k). n_eval_tasks: test
    tasks per N^C. tasks: which experiments (``example-4.1``, ``example-4.3``,
    ``vpl-didactic``). rhos: Example 4.3 correlations. vpl_latent_dim / vpl_beta_max: VPL's
    latent size and the KL weight β reaches (None: the preset's — ``paper`` 1 as VPL Table 2,
    ``tuned`` 0.01; VPL Table 4: 1e-4 or 0). models: restrict every task to these
    models (default: each task's own list; ``--quick`` trains fewer). n_hidden_layers: hidden
    layers of every MLP of every model (None: the model configs' default).
    """

    preset: str = "tuned"
    quick: bool = False
    max_steps: int | None = None
    learning_rate: float | None = None
    n_pairs: int = 20000
    n_tasks: int = 64
    eval_steps: int = 200
    n_eval_tasks: int = 1000
    context_sizes: tuple[int, ...] = (0, 1, 3, 5, 10)
    rhos: tuple[float, ...] = (-1.0, -0.7, 0.0, 0.7)
    tasks: tuple[str, ...] = ("example-4.1", "example-4.3", "vpl-didactic")
    models: tuple[str, ...] | None = None
    vpl_latent_dim: int = 8
    vpl_beta_max: float | None = None
    n_hidden_layers: int | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        unknown = set(self.tasks) - {"example-4.1", "example-4.3", "vpl-didactic"}
        if unknown:
            raise ValueError(f"unknown task(s) {sorted(unknown)}; choose from example-4.1, "
                             "example-4.3, vpl-didactic")
        bad = set(self.models or ()) - set(MODELS_41)
        if bad:
            raise ValueError(f"unknown model(s) {sorted(bad)}; choose from {MODELS_41}")
        if (self.vpl_beta_max is not None and self.vpl_beta_max < 0) or self.vpl_latent_dim < 1:
            raise ValueError("vpl_beta_max must be >= 0 and vpl_latent_dim >= 1")
        if any(not -1.0 <= r <= 1.0 for r in self.rhos):
            raise ValueError(f"rhos must lie in [-1, 1], got {self.rhos}")
        if self.n_pairs < 200 or self.n_tasks < 1 or self.n_eval_tasks < 1 or self.eval_steps < 1:
            raise ValueError("n_pairs must be >= 200 and n_tasks, n_eval_tasks, eval_steps >= 1")
        if self.quick:
            self.n_eval_tasks = min(self.n_eval_tasks, 300)
            self.n_pairs = min(self.n_pairs, 8000)

    def pick(self, full: tuple[str, ...], quick: tuple[str, ...]) -> tuple[str, ...]:
        """The models a task trains: those of its list named in ``models`` when given (the
        whole list if none is), else its list (``quick``: a shorter one)."""
        default = quick if self.quick else full
        if self.models is None:
            return default
        return tuple(n for n in full if n in self.models) or default

    @property
    def steps(self) -> int:
        p = PRESETS[self.preset]
        return self.max_steps or (p.quick_steps if self.quick else (p.max_steps or SYNTHETIC_STEPS))

    @property
    def lr(self) -> float:
        return self.learning_rate or PRESETS[self.preset].learning_rate


def model_fields(name: str, cfg: SyntheticBenchConfig) -> dict[str, Any]:
    """Config fields of model ``name`` under the preset (App. C.1 defaults otherwise)."""
    fields = PRESETS[cfg.preset].model_fields(name)
    if cfg.n_hidden_layers is not None:
        fields["n_hidden_layers"] = cfg.n_hidden_layers
    if name == "vpl":
        fields.update(latent_dim=cfg.vpl_latent_dim, anneal_steps=cfg.steps)
        if cfg.vpl_beta_max is not None:
            fields["beta_max"] = cfg.vpl_beta_max
    return fields


def train_models(names, records, cfg: SyntheticBenchConfig, out: Path, log: Callable[[str], None]
                 ) -> tuple[dict[str, torch.nn.Module], dict[str, Any]]:
    """Train every model in ``names`` on ``records`` (with splits); returns models and run info."""
    models, info = {}, {}
    for name in names:
        eval_steps = min(cfg.eval_steps, cfg.steps)
        train = TrainConfig(learning_rate=cfg.lr, max_steps=cfg.steps, eval_steps=eval_steps,
                            save_steps=cfg.steps, logging_steps=max(1, eval_steps // 2),
                            metric_for_best_model="accuracy", greater_is_better=True,
                            load_best_model_at_end=True, resume_from_checkpoint=False,
                            seed=cfg.seed, disable_tqdm=not cfg.progress, mixed_precision="auto",
                            prefetch_batches=True)
        rtc = RewardTrainConfig(model=model_fields(name, cfg), tasks=TaskConfig(n_tasks=cfg.n_tasks, seed=cfg.seed),
                                train=train, preset=None)  # model_fields already applied the preset
        t0 = time.perf_counter()
        model, result = train_reward_model(records, name, rtc, out / "runs" / name)
        seconds = time.perf_counter() - t0
        models[name] = model.eval()
        info[name] = {"steps": result.step, "best_step": result.best_step,
                      "best_val": result.best_metrics, "train_seconds": round(seconds, 1),
                      "model_config": model.config.to_dict()}
        log(f"  trained {name}: {result.step} steps in {seconds:.0f}s, best validation accuracy "
            f"{100 * result.best_metrics.get('accuracy', float('nan')):.1f}% at step {result.best_step}")
    return models, info


def _bench_meta(cfg: SyntheticBenchConfig, task_info: dict, runs: dict) -> dict[str, Any]:
    return {"bench_config": dataclasses.asdict(cfg), "preset": dataclasses.asdict(PRESETS[cfg.preset]),
            "train_steps": cfg.steps, "learning_rate": cfg.lr, "data_info": task_info, "runs": runs}


def _finish(doc: dict, out: Path, stem: str, log: Callable[[str], None]) -> dict:
    write_json(doc, out / f"{stem}.json")
    write_csv(doc, out / f"{stem}.csv")
    plot_accuracy(doc, out / f"{stem}.png")
    log(format_table(doc))
    return doc


def run_example41(cfg: SyntheticBenchConfig, out: Path, log: Callable[[str], None] = print) -> dict:
    """Example 4.1 table (NP paper Fig. 1b) -> ``out/example-4.1.json`` (+ CSV, PNG)."""
    records, data_info = example41(n_pairs=cfg.n_pairs, seed=cfg.seed)
    names = cfg.pick(MODELS_41, ("btl", "np-btl"))
    log(f"Example 4.1: training {', '.join(names)} for {cfg.steps} steps each")
    models, runs = train_models(names, records, cfg, out / "example-4.1", log)
    test = EvalData.from_records(by_split(records)["test"])
    ecfg = EvalConfig(context_sizes=cfg.context_sizes, n_tasks=cfg.n_eval_tasks, seed=cfg.seed + 12345)
    bayes = {str(n): float(example41_bayes_accuracy(n)) for n in cfg.context_sizes}
    doc = evaluate_models(models, test, ecfg, task="example-4.1", bayes=bayes,
                          paper={"np-btl": PAPER_NP_BTL_41}, **_bench_meta(cfg, data_info, runs))
    return _finish(doc, out, "example-4.1", log)


def single_context_error(model: torch.nn.Module, data: EvalData, items, batch_size: int = 200
                         ) -> dict[str, float]:
    """Error on conflicting unseen target pairs given the tasks' context (N^C = 1 here)."""
    wrong = total = 0.0
    for batch in batches(items, data, batch_size, torch.device("cpu")):
        conf = data.conflicting[batch.target_index.clamp(min=0)] & batch.target_unseen
        wrong += float(((1 - correctness(predict(model, batch))) * conf).sum())
        total += float(conf.sum())
    err = wrong / total if total else float("nan")
    se = math.sqrt(err * (1 - err) / total) if total else float("nan")
    return {"error": err, "stderr": se, "n_conflicting_targets": int(total)}


def run_example43(rho: float, cfg: SyntheticBenchConfig, out: Path,
                  log: Callable[[str], None] = print) -> dict:
    """One correlation of Example 4.3 -> ``out/example-4.3-rho-<rho>.json`` (+ CSV, PNG)."""
    records, data_info = example43(n_pairs=cfg.n_pairs, rho=rho, seed=cfg.seed)
    names = cfg.pick(("btl", "np-btl", "vpl"), ("np-btl",))
    stem = f"example-4.3-rho-{rho:g}"
    log(f"Example 4.3, rho = {rho:g}: training {', '.join(names)} for {cfg.steps} steps each")
    models, runs = train_models(names, records, cfg, out / stem, log)
    test = EvalData.from_records(by_split(records)["test"])
    ecfg = EvalConfig(context_sizes=cfg.context_sizes, n_tasks=cfg.n_eval_tasks, seed=cfg.seed + 12345)
    bayes = {str(n): float(example43_bayes_accuracy(rho, n)) for n in cfg.context_sizes}
    one = sample_eval_tasks(test, dataclasses.replace(ecfg, context_sizes=(1,)))[1]
    errors = {name: single_context_error(m, test, one) for name, m in models.items()}
    doc = evaluate_models(models, test, ecfg, task=stem, bayes=bayes, rho=rho,
                          single_context_error={"bayes": example43_single_context_error(rho),
                                                "models": errors},
                          **_bench_meta(cfg, data_info, runs))
    _finish(doc, out, stem, log)
    ref = example43_single_context_error(rho)
    log("  single-context error (conflicting targets, N^C = 1): Bayes "
        f"{100 * ref:.1f}%; " + ", ".join(f"{k} {100 * v['error']:.1f} ± {100 * v['stderr']:.1f}%"
                                          for k, v in errors.items()))
    return doc


def plot_example43(docs: list[dict], path: Path) -> Path:
    """Single-context error vs ρ per model, with the Bayes curve 1/4 + arcsin(ρ)/2π (Fig. 4)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    grid = np.linspace(-1, 1, 201)
    ax.plot(grid, [100 * example43_single_context_error(r) for r in grid], "k--", label="Bayes-optimal")
    rhos = [d["rho"] for d in docs]
    for name in docs[0]["single_context_error"]["models"]:
        e = [100 * d["single_context_error"]["models"][name]["error"] for d in docs]
        s = [100 * d["single_context_error"]["models"][name]["stderr"] for d in docs]
        ax.errorbar(rhos, e, yerr=s, marker="o", capsize=3, linestyle="none", label=name)
    ax.set_xlabel(r"correlation $\rho$")
    ax.set_ylabel("error with one context pair (%)")
    ax.set_title("Example 4.3: identifying the user from one choice")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def run_vpl_didactic(cfg: SyntheticBenchConfig, out: Path, log: Callable[[str], None] = print,
                     m: int = 4, n_context: int = 10) -> dict:
    """VPL's didactic mixture: accuracy table + reward curves per annotator -> ``out/vpl-didactic.*``."""
    sigma = 0.1
    records, data_info = vpl_didactic(n_pairs=cfg.n_pairs, m=m, sigma=sigma, seed=cfg.seed)
    names = cfg.pick(("btl", "dpl", "vpl"), ("vpl",))
    log(f"VPL didactic mixture ({m} annotators): training {', '.join(names)} for {cfg.steps} steps each")
    models, runs = train_models(names, records, cfg, out / "vpl-didactic", log)
    test = EvalData.from_records(by_split(records)["test"])
    users = gaussian_bump_users(m, sigma=sigma)
    # the Bayes line from the annotators' Bradley–Terry probabilities, not from the labels they
    # happened to draw (those make an oracle that knows every coin flip)
    test.likelihood = likelihood_from_users(users, test.chosen.numpy(), test.rejected.numpy())
    test.bayes_kind = "enumeration over the annotators with their Bradley-Terry choice probabilities"
    ecfg = EvalConfig(context_sizes=cfg.context_sizes, n_tasks=cfg.n_eval_tasks, seed=cfg.seed + 12345)
    curves = reward_curves(models, test, users, n_context, cfg.seed)
    doc = evaluate_models(models, test, ecfg, task="vpl-didactic", reward_curves=curves,
                          **_bench_meta(cfg, data_info, runs))
    _finish(doc, out, "vpl-didactic", log)
    plot_reward_curves(curves, out / "vpl-didactic-rewards.png")
    return doc


def reward_curves(models, data: EvalData, users, n_context: int, seed: int,
                  n_grid: int = 101) -> dict[str, Any]:
    """Per annotator: the true reward and each model's SPO-scaled reward on a grid of [0, 1],
    given ``n_context`` of that annotator's test pairs. Both are min-max scaled to [0, 1] so
    shapes can be compared (rewards are identified only up to a monotone map)."""
    from ..rewards import spo_scaled_reward

    grid = torch.linspace(0, 1, n_grid).unsqueeze(-1)
    sampler = TaskSampler(data.users, context_range=(n_context, n_context), n_target=1,
                          context_in_target=False, user_types=data.types, seed=seed + 7)
    out: dict[str, Any] = {"grid": grid.squeeze(-1).tolist(), "n_context": n_context, "annotators": {}}
    scale = lambda v: ((v - v.min()) / (v.max() - v.min() + 1e-12)).tolist()  # noqa: E731
    for user in users:
        idx = [i for i, u in enumerate(sampler.users) if sampler.types[i] == user.latent]
        if not idx:
            continue
        rng = np.random.default_rng(seed + user.latent)
        pool = sampler.pools[idx[0]]
        ctx = pool[rng.choice(len(pool), n_context, replace=False)]
        item = TaskItem(sampler.users[idx[0]], user.latent, ctx, ctx[:1], np.zeros(1, dtype=bool))
        batch = collate([item], data.chosen, data.rejected)
        entry = {"true": scale(torch.as_tensor(user.reward(grid.numpy())))}
        for name, model in models.items():
            with torch.no_grad():
                z = model.personalize(batch.context_chosen, batch.context_rejected, batch.context_mask)
                r = spo_scaled_reward(model, grid.unsqueeze(0), grid, z)[0]
            entry[name] = scale(r)
        out["annotators"][str(user.latent)] = entry
    return out


def plot_reward_curves(curves: dict[str, Any], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ann = curves["annotators"]
    fig = Figure(figsize=(3.2 * len(ann), 3.0))
    FigureCanvasAgg(fig)
    for i, (k, entry) in enumerate(ann.items()):
        ax = fig.add_subplot(1, len(ann), i + 1)
        ax.plot(curves["grid"], entry["true"], "k--", label="true")
        for name, ys in entry.items():
            if name != "true":
                ax.plot(curves["grid"], ys, label=name)
        ax.set_title(f"annotator {k} ({curves['n_context']} context pairs)", fontsize=9)
        ax.set_xlabel("option s")
        if i == 0:
            ax.set_ylabel("reward (SPO-scaled, min-max)")
            ax.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def run_synthetic_bench(cfg: SyntheticBenchConfig, out_dir: str | Path,
                        log: Callable[[str], None] = print) -> dict[str, dict]:
    """Run the configured tasks; returns ``{file stem: results document}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # the machine is shared; one thread is as fast for these sizes
    docs: dict[str, dict] = {}
    if "example-4.1" in cfg.tasks:
        docs["example-4.1"] = run_example41(cfg, out, log)
    if "example-4.3" in cfg.tasks:
        rho_docs = [run_example43(r, cfg, out, log) for r in cfg.rhos]
        docs.update({d["task"]: d for d in rho_docs})
        plot_example43(rho_docs, out / "example-4.3-error.png")
    if "vpl-didactic" in cfg.tasks:
        docs["vpl-didactic"] = run_vpl_didactic(cfg, out, log)
    return docs
