"""The NP-DPO experiment end to end: data -> embeddings -> NP-DPO + BTL-DPO + per-type DPO ->
accuracy vs N^C per user type -> steered generations. Used by ``pluralign policy ...``.

Config YAML sections (all optional): ``data`` (:class:`~.prepare.PolicyDataConfig`), ``task``
(:class:`~.train.PolicyTaskConfig`), ``policy`` (:class:`~.policy.NPDPOConfig`), ``train``
(:class:`pluralign.train.config.TrainConfig`, used for NP-DPO), ``encoder_warmstart``
(:class:`~.encoder_warmstart.EncoderWarmStartConfig`; off by default, as the paper), ``baselines``
(:class:`BaselineConfig`), ``eval`` (:class:`~.evaluate.PolicyEvalConfig` + behaviour knobs).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...features.offline import load_base_model
from ...train.config import TrainConfig, check_types, config_from_dict, read_yaml
from ..icl import ICLConfig
from .encoder_warmstart import EncoderWarmStartConfig, warm_start_encoder
from .evaluate import PolicyEvalConfig, accuracy_vs_context, plot_accuracy_per_type, steered_behaviour
from .policy import NPDPOConfig, NPDPOPolicy
from .prepare import PolicyDataConfig, Prepared, prepare, type_names, warmstart_table
from .train import PolicyTaskConfig, train_policy


@dataclass
class BaselineConfig:
    """Steps of the unconditioned baselines (same learning rate and batch shape as NP-DPO)."""

    btl_dpo_steps: int = 100
    type_dpo_steps: int = 100

    def __post_init__(self) -> None:
        check_types(self)
        if self.btl_dpo_steps < 0 or self.type_dpo_steps < 0:
            raise ValueError("baseline steps must be >= 0 (0 skips the baseline)")


@dataclass
class BehaviourConfig:
    """Steered generations: k context pairs per new user, users_per_type users, n_prompts
    held-out prompts, max_new_tokens, scored by ``attribute``."""

    k: int = 4
    users_per_type: int = 2
    n_prompts: int = 6
    max_new_tokens: int = 96
    attribute: str = "length"
    seed: int = 0

    def __post_init__(self) -> None:
        check_types(self)


@dataclass
class SelectionConfig:
    """What the select step tunes on validation users (issue 16). ``grid``: dotted config keys ->
    candidate values (e.g. ``policy.film_gain: [1.0, 2.0, 4.0]``); every combination is trained
    and scored on the validation users' tasks drawn by the ``eval`` section. ``metric``:
    ``final`` (mean over user types of the accuracy at the largest N^C) or ``mean`` (also over N^C).
    The checkpoint inside each training run is chosen on validation by ``train`` as before."""

    grid: dict[str, list[Any]] = field(default_factory=dict)
    metric: str = "final"

    def __post_init__(self) -> None:
        check_types(self)
        if self.metric not in ("final", "mean"):
            raise ValueError(f"selection.metric must be 'final' or 'mean', got {self.metric!r}")
        for key, values in self.grid.items():
            # only what training changes: the grid is scored by validation accuracy of np-dpo, which
            # behaviour (decoding), icl, eval, report and selection itself do not affect
            if "." not in key or key.split(".", 1)[0] in ("report", "selection", "eval", "behaviour", "icl"):
                raise ValueError(f"selection.grid key {key!r}: want 'section.field' of a training section "
                                 f"(data, task, policy, train, encoder_warmstart, baselines)")
            if not values:
                raise ValueError(f"selection.grid.{key}: give at least one candidate")


@dataclass
class ReportConfig:
    """The report step's test evaluation: ``n_tasks`` tasks per user type drawn with ``seed`` (the
    tuning path never sees this section), N^C points and N^T from ``eval``; ``icl``: also score
    the in-context-learning baseline (``icl`` section); the steered answers use ``behaviour``
    with this seed."""

    seed: int = 20261130
    n_tasks: int = 32
    icl: bool = True

    def __post_init__(self) -> None:
        check_types(self)
        if self.n_tasks < 1:
            raise ValueError("report.n_tasks must be >= 1")


@dataclass
class ExperimentConfig:
    data: PolicyDataConfig = field(default_factory=PolicyDataConfig)
    task: PolicyTaskConfig = field(default_factory=PolicyTaskConfig)
    policy: NPDPOConfig = field(default_factory=lambda: NPDPOConfig(base_model="smollm2"))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        metric_for_best_model="reward_accuracy", greater_is_better=True))
    encoder_warmstart: EncoderWarmStartConfig = field(default_factory=EncoderWarmStartConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    eval: PolicyEvalConfig = field(default_factory=PolicyEvalConfig)
    behaviour: BehaviourConfig = field(default_factory=BehaviourConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    icl: ICLConfig = field(default_factory=lambda: ICLConfig(max_length=1536))

    @classmethod
    def from_yaml(cls, path: str | Path | None) -> "ExperimentConfig":
        raw = read_yaml(path) if path else {}
        return config_from_dict(cls, raw, str(path or "defaults"))

    def to_dict(self) -> dict[str, Any]:
        from ..selection import public_dict

        return public_dict(self) if not dataclasses.is_dataclass(self.report) else asdict(self)


def prepare_experiment(config: ExperimentConfig,
                       splits: tuple[str, ...] = ("train", "validation", "test")) -> Prepared:
    """:func:`~.prepare.prepare` with the experiment's data, base model and task settings."""
    return prepare(config.data, config.policy.base_model, config.task.max_length,
                   with_validation=bool(config.task.val_tasks), splits=splits)


def new_policy(config: ExperimentConfig, option_dim: int, film: bool) -> NPDPOPolicy:
    cfg = dataclasses.replace(config.policy, option_dim=option_dim, film=film,
                              context_embedder=config.data.embedder)
    return NPDPOPolicy(load_base_model(cfg.base_model), cfg)


def train_method(config: ExperimentConfig, prep: Prepared, method: str, out_dir: str | Path,
                 user_type: int | None = None, max_steps: int | None = None, log=print) -> NPDPOPolicy:
    """Train one policy (``np-dpo``, ``btl-dpo`` or ``type-dpo`` for ``user_type``) into
    ``out_dir`` (resuming from ``out_dir/last``); returns it with its final weights."""
    film = method == "np-dpo"
    # initial weights (LoRA A, encoder) from the run's seed, not from whatever consumed the global
    # RNG before (loading the embedder or not, depending on its cache, changed them)
    torch.manual_seed(config.train.seed)
    policy = new_policy(config, prep.train.option_dim, film)
    task = dataclasses.replace(config.task, method=method, user_type=user_type,
                               val_tasks=config.task.val_tasks if film else 0)
    train_cfg = config.train
    if not film:  # baselines: no validation, one checkpoint at the end
        steps = max_steps or (config.baselines.btl_dpo_steps if method == "btl-dpo" else config.baselines.type_dpo_steps)
        train_cfg = dataclasses.replace(train_cfg, max_steps=steps, eval_steps=10 ** 6, save_steps=10 ** 6)
    elif max_steps:
        train_cfg = dataclasses.replace(train_cfg, max_steps=max_steps)
    warm = config.encoder_warmstart
    info = None
    if film and warm.steps and not (Path(out_dir) / "last").exists():  # a resumed run has its encoder
        t0 = time.time()
        table = warmstart_table(config.data, warm, prep)
        info = warm_start_encoder(policy, table, task, warm, Path(out_dir) / "encoder-warmstart", val=prep.val)
        log(f"encoder warm start (NP-BTL on {len(set(table.users))} users, {len(table.users)} pairs, "
            f"{info['steps']} steps, best step {info['best_step']}, {time.time() - t0:.0f} s): "
            f"train {({k: round(v, 3) for k, v in info['train'].items()})}, validation "
            f"{({k: round(v, 3) for k, v in info['validation'].items()})}")
    result = train_policy(policy, prep.train, task, train_cfg, out_dir, val=prep.val if film else None)
    # what the checkpoint was chosen on, for selection.json (protocol.py)
    summary = {"steps": result.step, "best_step": result.best_step, "best_metrics": result.best_metrics,
               "split": "validation" if film and prep.val is not None else None}
    if info is not None:
        summary["encoder_warmstart"] = {"best_step": info.get("best_step"), "validation": info.get("validation")}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "fit_summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    log(f"{method}{'' if user_type is None else f' (type {user_type})'}: {result.step} steps, "
        f"train {({k: round(v, 4) for k, v in result.train_metrics.items()})}, best val {result.best_metrics}")
    return policy


def load_run_policies(run_dir: str | Path) -> dict[str, Any]:
    """The policies of an experiment folder: ``np-dpo/best``, ``btl-dpo/best``, ``type-dpo-*/best``."""
    run = Path(run_dir)
    models: dict[str, Any] = {}
    if (run / "np-dpo" / "best").exists():
        models["np-dpo"] = NPDPOPolicy.from_pretrained(run / "np-dpo" / "best")
    if (run / "btl-dpo" / "best").exists():
        models["btl-dpo"] = NPDPOPolicy.from_pretrained(run / "btl-dpo" / "best")
    oracle = {int(d.name.rsplit("-", 1)[1]): NPDPOPolicy.from_pretrained(d / "best")
              for d in sorted(run.glob("type-dpo-*")) if (d / "best").exists()}
    if oracle:
        models["type-dpo (oracle)"] = oracle
    if "np-dpo" not in models:
        raise FileNotFoundError(f"{run} has no np-dpo/best policy")
    return models


def evaluate_policies(config: ExperimentConfig, prep: Prepared, models: dict[str, Any], out_dir: str | Path,
                      log=print, timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Accuracy vs N^C per type + steered generations; writes results.json, results.csv and
    accuracy_per_type.png into ``out_dir``."""
    from ...eval.results import format_table, write_csv, write_json

    out = Path(out_dir)
    t0 = time.time()
    doc = accuracy_vs_context(models, prep.test, config.eval)
    names = type_names(prep.splits["test"])
    if names:
        doc["type_names"] = names
    t_acc = time.time() - t0
    log(format_table({**doc, "per_type": {}}))
    for name, per in doc["per_type"].items():
        for t, curve in per.items():
            label = names[int(t)] if names else t
            log(f"  {name:<18} type {t} ({label}): " + ", ".join(
                f"N^C={n}: {100 * s['accuracy']:.1f}±{100 * s['stderr']:.1f}" for n, s in curve.items()))
    b = config.behaviour
    prompts = list(dict.fromkeys(str(r.prompt) for r in prep.splits["test"]))[: b.n_prompts]
    baselines = {k: v for k, v in models.items() if k != "np-dpo" and not isinstance(v, dict)}
    behaviour = steered_behaviour(models["np-dpo"], prep.tokenizer, prep.test, prompts, k=b.k,
                                  users_per_type=b.users_per_type, baselines=baselines,
                                  attribute=b.attribute, seed=b.seed, max_new_tokens=b.max_new_tokens)
    for row in behaviour["table"]:
        label = "-" if row["user_type"] is None else (names[row["user_type"]] if names else row["user_type"])
        log(f"  {row['model']:<18} user type {label:<9}: mean {b.attribute} {row['mean']:.1f} "
            f"± {row['stderr']:.1f} (n={row['n']})")
    doc["behaviour"] = behaviour
    doc["timing_s"] = {**(timings or {}), "accuracy_vs_context": round(t_acc, 1),
                       "steered_generations": round(time.time() - t0 - t_acc, 1)}
    write_json(doc, out / "results.json")
    write_csv(doc, out / "results.csv")
    plot_accuracy_per_type(doc, out / "accuracy_per_type.png")
    return doc


def done_checks(doc: dict[str, Any]) -> dict[str, Any]:
    """The issue's "done when" checks, computed from a results document (never asserted here):
    per user type, NP-DPO accuracy at the largest N^C vs N^C = 0 and vs BTL-DPO, whether the
    curve never drops by more than one standard error, and the steered attribute per type."""
    out: dict[str, Any] = {"per_type": {}}
    sizes = [str(n) for n in doc["context_sizes"]]
    np_curves = doc["per_type"].get("np-dpo", {})
    btl = doc["per_type"].get("btl-dpo", {})
    for t, curve in np_curves.items():
        acc = [curve[n]["accuracy"] for n in sizes]
        se = [curve[n]["stderr"] for n in sizes]
        row = {"np_dpo_first": acc[0], "np_dpo_last": acc[-1], "rises": acc[-1] > acc[0],
               "no_drop_beyond_1se": all(acc[i + 1] >= acc[i] - max(se[i], se[i + 1]) for i in range(len(acc) - 1))}
        if t in btl:
            row["btl_dpo"] = btl[t][sizes[-1]]["accuracy"]
            row["above_btl_dpo"] = acc[-1] > row["btl_dpo"]
        out["per_type"][t] = row
    beh = doc.get("behaviour")
    if beh:
        steered = {r["user_type"]: r["mean"] for r in beh["table"] if r["user_type"] is not None}
        out["behaviour_mean_by_type"] = steered
    return out


def run_experiment(config: ExperimentConfig, out_dir: str | Path, log=print) -> dict[str, Any]:
    """One seed of the protocol: :func:`.protocol.select` (train + validation only, the test split
    sealed) then :func:`.protocol.report` (the test split, ``report`` section). Each training run
    resumes from its ``last/``; returns the results document."""
    from ..selection import sealed
    from .protocol import config_digest, report, select, tuning_view

    t0 = time.time()
    sel_path = Path(out_dir) / "selection.json"
    # select writes selection.json last, so one of this config means the whole select is done:
    # a resumed seed goes straight to its report instead of re-scoring every candidate
    if sel_path.is_file() and json.loads(sel_path.read_text()).get("config_digest") == config_digest(sealed(config)):
        log(f"select: kept ({sel_path} was made under this config)")
    else:
        select(sealed(config), tuning_view(config), out_dir, log=log)
    t_select = time.time() - t0
    doc = report(config, out_dir, log=log)
    doc["wall_s"] = round(time.time() - t0, 1)
    doc.setdefault("timing_s", {})["select"] = round(t_select, 1)
    log(f"checks: {json.dumps(doc['checks'])}")
    from ...eval.results import write_json

    write_json(doc, Path(out_dir) / "results.json")
    log(f"[{doc['wall_s']:7.1f}s] finished; results in {out_dir}")
    return doc
