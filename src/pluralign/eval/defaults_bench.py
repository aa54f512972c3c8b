"""``pluralign bench defaults``: the plain default ``pluralign train`` on populations nobody tuned
it for, each beside its Bayes-optimal line.

Every population (:mod:`pluralign.data.populations`) is trained with exactly what ``pluralign
train`` does with no flags — the default model (:data:`~pluralign.train.presets.DEFAULT_MODEL`,
Mix-BTL) and ``RewardTrainConfig()``: the default preset (with its choice of Mix-BTL's
initial scale on validation), the data-scaled step budget, early stopping on the validation NLL, the best checkpoint by it — and
scored on unseen target pairs of its test split at N^C ∈ {0, 1, 3, 5, 10}. The Bayes line is the
expected accuracy of the posterior-majority predictor on the *same* test tasks
(:mod:`pluralign.eval.bayes`): exact enumeration over the K types (with the label-noise rate in
the likelihood), or a Monte Carlo posterior over ``mc_samples`` draws of Dirichlet users.

Target (issue 11): the default within 1 pp of Bayes at every N^C ≥ 1 and within 1.5 pp at
N^C = 0, on every population (``--model np-btl`` runs the earlier default beside it). ``summary.json`` / ``summary.csv`` hold the gaps and whether each is met.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..atomic import write_text_atomic
from ..data.populations import Population, PopulationSpec, make_population
from ..data.splits import by_split
from ..data.synthetic import correlated_gaussian
from ..data.tables import option_vectors, user_ids, user_types
from ..rewards.registry import MODELS
from ..train.presets import DEFAULT_MODEL
from ..train.rewards import RewardTrainConfig, train_reward_model
from .bayes import bayes_optimal_accuracy, sampled_likelihood
from .metrics import EvalConfig, EvalData, sample_eval_tasks
from .plots import plot_accuracy
from .results import evaluate_models, format_table, write_csv, write_json
from .single_reward import single_reward_accuracy

#: the populations of the full bench; none of them was used to choose a default
POPULATIONS: tuple[PopulationSpec, ...] = (
    PopulationSpec("types-k2-d4", "types", k=2, dim=4),
    PopulationSpec("types-k3-d6", "types", k=3, dim=6),
    PopulationSpec("types-k5-d8", "types", k=5, dim=8),
    PopulationSpec("types-k3-d6-noise10", "types", k=3, dim=6, noise=0.1),
    PopulationSpec("dirichlet-k3-d6", "dirichlet", k=3, dim=6, n_users=300, pairs_per_user=160),
    PopulationSpec("new-users-k3-d6", "new-users", k=3, dim=6, n_users=1500, pairs_per_user=30),
)
#: tolerated gap (model below Bayes, in accuracy) at N^C = 0 and at N^C >= 1
TARGET_GAP = {0: 0.015, "context": 0.01}


@dataclass
class DefaultsBenchConfig:
    """What ``pluralign bench defaults`` runs.

    populations: names from :data:`POPULATIONS` (default all). quick: a CI smoke run — small
    populations, ``quick_steps`` steps, 200 test tasks per N^C; it checks the plumbing, not the
    target. models: reward models trained with the default settings (the first is the one the
    target is about; default: the default model). seed: data, training and evaluation seed (the tuning never used 0).
    n_eval_tasks: test tasks per N^C. mc_samples: Dirichlet draws of the Monte Carlo posterior.
    max_steps: override the default step budget (then it is no longer the plain default).
    jobs: populations trained in parallel processes (each single-threaded). split: where the
    models are scored — ``test`` (the bench) or ``validation`` (tuning: choose settings there,
    with a seed other than the report's, and read the test split once). train_config: a
    ``pluralign train --config`` YAML file trained instead of the plain default (a candidate
    default under tuning; the bench's own runs use none).
    """

    populations: tuple[str, ...] = tuple(p.name for p in POPULATIONS)
    quick: bool = False
    quick_steps: int = 150
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    seed: int = 0
    n_eval_tasks: int = 500
    context_sizes: tuple[int, ...] = (0, 1, 3, 5, 10)
    mc_samples: int = 4000
    max_steps: int | None = None
    progress: bool = False
    jobs: int = 1
    split: str = "test"
    train_config: str | None = None

    def __post_init__(self) -> None:
        if self.split not in ("test", "validation"):
            raise ValueError(f"split must be test or validation, got {self.split!r}")
        known = {p.name for p in POPULATIONS}
        bad = set(self.populations) - known
        if bad:
            raise ValueError(f"unknown population(s) {sorted(bad)}; choose from {sorted(known)}")
        if not self.populations:
            raise ValueError("no population to run")
        bad_models = set(self.models) - set(MODELS)
        if bad_models or not self.models:
            raise ValueError(f"models must be among {', '.join(MODELS)}, got {self.models}")
        if self.jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {self.jobs}")
        if self.n_eval_tasks < 1 or self.mc_samples < 10 or (self.max_steps is not None and self.max_steps < 1):
            raise ValueError("n_eval_tasks >= 1, mc_samples >= 10 and max_steps >= 1 are required")
        if self.quick:
            self.n_eval_tasks = min(self.n_eval_tasks, 200)
            self.mc_samples = min(self.mc_samples, 1000)
            self.max_steps = self.max_steps or self.quick_steps

    def specs(self) -> list[PopulationSpec]:
        chosen = [p for p in POPULATIONS if p.name in self.populations]
        if not self.quick:
            return chosen
        # quick: a fifth of the pairs / users (new users keep their 30 pairs each)
        return [dataclasses.replace(p, n_pairs=max(600, p.n_pairs // 5), n_users=max(60, p.n_users // 5))
                for p in chosen]


def user_weights(pop: Population, mc_samples: int, seed: int) -> np.ndarray:
    """The users the Bayes line enumerates, as attribute weights (M, K): the one-hot rows of the
    finite types, or ``mc_samples`` Dirichlet draws (a Monte Carlo posterior)."""
    if pop.types is not None:
        return np.eye(pop.A.shape[0])
    return pop.sample_weights(mc_samples, np.random.default_rng([seed, 99]))


def eval_data(records, pop: Population, mc_samples: int, seed: int) -> EvalData:
    """The test pair table with the Bayes likelihood: one row per finite type (exact), or per
    Monte Carlo draw of a continuous user, from the users' choice rules and the noise rate."""
    chosen, rejected = option_vectors(records)
    weights = user_weights(pop, mc_samples, seed)
    L = sampled_likelihood(weights, pop.scores(chosen.numpy()), pop.scores(rejected.numpy()), pop.noise)
    kind = ("exact enumeration over the types" if pop.types is not None else
            f"Monte Carlo posterior over {mc_samples} Dirichlet draws")
    return EvalData(chosen, rejected, user_ids(records), user_types(records), likelihood=L,
                    bayes_kind=kind + (f", label noise {pop.noise:g}" if pop.noise else ""))


def single_reward_curve(data: EvalData, pop: Population, config: EvalConfig, mc_samples: int, seed: int,
                        n_diffs: int = 4000) -> dict[str, float]:
    """The single-reward line (:mod:`pluralign.eval.single_reward`) on the same test tasks as
    the models and the Bayes line: the best one linear reward per context can do."""
    weights = user_weights(pop, mc_samples, seed)
    rng = np.random.default_rng([seed, 101])
    diffs = (correlated_gaussian(rng, n_diffs, pop.A.shape[1], pop.spec.rho)
             - correlated_gaussian(rng, n_diffs, pop.A.shape[1], pop.spec.rho))
    target_diffs = (data.chosen - data.rejected).numpy().astype(np.float64)
    tasks = sample_eval_tasks(data, config)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # contexts no type explains: already warned by the Bayes line
        for n, items in tasks.items():
            res = bayes_optimal_accuracy(data.likelihood, items)
            out[str(n)] = single_reward_accuracy(res, items, weights @ pop.A, diffs, target_diffs, seed=seed)
    return out


def gaps(doc: dict[str, Any], model: str = DEFAULT_MODEL, line: str = "bayes",
         drawn_labels: bool = False) -> dict[str, float]:
    """Model accuracy minus a reference line (``bayes`` or ``single_reward``; negative: below
    it) per N^C. Both lines are accuracies in expectation under the true posterior, so the
    model's is too (:func:`pluralign.eval.metrics.expected_scores`) where the document has it;
    ``drawn_labels``: the model's accuracy on the labels the users drew instead (the same in
    expectation, with the label draws' spread on top)."""
    curve, ref = doc["models"][model], doc[line]
    key = "accuracy" if drawn_labels else "expected_accuracy"
    return {n: curve[n].get(key, curve[n]["accuracy"]) - ref[n] for n in ref if n in curve}


def meets_target(gap: dict[str, float]) -> bool:
    return all(g >= -(TARGET_GAP[0] if n == "0" else TARGET_GAP["context"]) - 1e-12 for n, g in gap.items())


def run_population(spec: PopulationSpec, cfg: DefaultsBenchConfig, out: Path,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the default models on one population and score them -> its results document."""
    records, info, pop = make_population(spec, seed=cfg.seed)
    models, runs = {}, {}
    for name in cfg.models:
        rtc = (RewardTrainConfig.from_yaml(cfg.train_config) if cfg.train_config else RewardTrainConfig())
        rtc.split_seed = cfg.seed
        rtc.tasks.seed = cfg.seed
        # an interrupted bench, run again on the same --out, continues its training runs
        rtc.train = dataclasses.replace(rtc.train, seed=cfg.seed, disable_tqdm=not cfg.progress)
        if cfg.max_steps is not None:
            rtc.train = dataclasses.replace(rtc.train, max_steps=cfg.max_steps,
                                            save_steps=min(rtc.train.save_steps, cfg.max_steps))
            rtc.step_budget = False
        t0 = time.perf_counter()
        model, result = train_reward_model(records, name, rtc, out / spec.name / "runs" / name)
        seconds = time.perf_counter() - t0
        models[name] = model.eval()
        runs[name] = {"steps": result.step, "best_step": result.best_step, "stopped_early": result.stopped_early,
                      "best_val": result.best_metrics, "train_seconds": round(seconds, 1),
                      "model_config": model.config.to_dict()}
        log(f"  {spec.name}: trained {name} for {result.step} steps in {seconds:.0f}s "
            f"(best step {result.best_step}{', stopped early' if result.stopped_early else ''})")
    test = eval_data(by_split(records)[cfg.split], pop, cfg.mc_samples, cfg.seed)
    ecfg = EvalConfig(context_sizes=cfg.context_sizes, n_tasks=cfg.n_eval_tasks, seed=cfg.seed + 12345,
                      flip_test=False, active_units="vpl" in cfg.models)
    doc = evaluate_models(models, test, ecfg, task=spec.name, population=dataclasses.asdict(spec),
                          data_info=info, runs=runs, bench_config=dataclasses.asdict(cfg))
    doc.pop("bayes_realised", None)  # against drawn labels; the expected line is the reference
    doc["single_reward"] = single_reward_curve(test, pop, ecfg, cfg.mc_samples, cfg.seed)
    write_json(doc, out / f"{spec.name}.json")
    write_csv(doc, out / f"{spec.name}.csv")
    plot_accuracy(doc, out / f"{spec.name}.png", title=f"{spec.name} (Bayes: {test.bayes_kind})")
    log(format_table(doc, expected=True))
    return doc


def _run_one(spec: PopulationSpec, cfg: DefaultsBenchConfig, out: Path,
             log: Callable[[str], None] | None = None) -> tuple[dict[str, Any], list[str]]:
    """One population (also in a worker process): its document and the lines it logged."""
    torch.set_num_threads(1)
    lines: list[str] = []
    emit = log or lines.append
    emit(f"population {spec.name} ({spec.kind}, K={spec.k}, D={spec.dim}, noise {spec.noise:g})")
    return run_population(spec, cfg, out, emit), lines


def summary_table(docs: dict[str, dict], model: str = DEFAULT_MODEL) -> tuple[str, list[dict[str, Any]]]:
    """Gap (pp) to the Bayes line and to the single-reward line per population and N^C, and
    whether the target is met against each."""
    rows = []
    for name, doc in docs.items():
        if model not in doc["models"]:
            continue
        g = gaps(doc, model)
        row = {"population": name, "model": model, **{f"gap_{n}": round(100 * v, 2) for n, v in g.items()},
               "meets_target": meets_target(g),
               **{f"drawn_labels_gap_{n}": round(100 * v, 2) for n, v in gaps(doc, model, drawn_labels=True).items()}}
        if doc.get("single_reward"):
            s = gaps(doc, model, "single_reward")
            row.update({f"single_reward_gap_{n}": round(100 * v, 2) for n, v in s.items()})
            row["meets_target_vs_single_reward"] = meets_target(s)
        rows.append({**row, "steps": doc["runs"][model]["steps"], "train_seconds": doc["runs"][model]["train_seconds"]})
    sizes = [str(n) for n in next(iter(docs.values()))["context_sizes"]] if docs else []
    lines = []
    for line, prefix, met in (("Bayes-optimal", "gap_", "meets_target"),
                              ("the best single reward", "single_reward_gap_", "meets_target_vs_single_reward")):
        part = [r for r in rows if met in r]
        if not part:
            continue
        head = ["population"] + [f"N^C={n}" for n in sizes] + ["target", "steps"]
        body = [[r["population"]] + [f"{r.get(prefix + n, float('nan')):+.1f}" for n in sizes]
                + ["met" if r[met] else "MISSED", str(r["steps"])] for r in part]
        widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
        lines += [f"{model} accuracy minus {line}, both in expectation under the true posterior "
                  f"(pp; target >= -1.5 at N^C=0, >= -1.0 at N^C>=1)",
                  fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in body] + [""]
    return "\n".join(lines).rstrip(), rows


def run_defaults_bench(cfg: DefaultsBenchConfig, out_dir: str | Path,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every configured population -> ``<out>/<population>.{json,csv,png}`` and
    ``<out>/summary.{json,csv}``; returns the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # the machine is shared; one thread is as fast for these sizes
    t0 = time.perf_counter()
    specs = cfg.specs()
    if cfg.jobs > 1 and len(specs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        log(f"{len(specs)} populations in {min(cfg.jobs, len(specs))} processes")
        with ProcessPoolExecutor(min(cfg.jobs, len(specs))) as pool:
            futures = {s.name: pool.submit(_run_one, s, cfg, out) for s in specs}
            docs = {}
            for name, fut in futures.items():
                docs[name], lines = fut.result()
                log("\n".join(lines))
    else:
        docs = {spec.name: _run_one(spec, cfg, out, log)[0] for spec in specs}
    tables = [summary_table(docs, m) for m in cfg.models]
    text = "\n\n".join(t for t, _ in tables)
    rows = [r for _, part in tables for r in part]
    met = {m: bool(part) and all(r["meets_target"] for r in part) for m, (_, part) in zip(cfg.models, tables)}
    summary = {"bench": "defaults", "config": dataclasses.asdict(cfg), "target_gap": {"0": 0.015, ">=1": 0.01},
               "rows": rows, "all_met": met, "wall_seconds": round(time.perf_counter() - t0, 1)}
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_text_atomic(out / "summary.csv", buf.getvalue())
    log(text)
    verdicts = ", ".join(f"{m}: {'all targets met' if ok else 'target missed on some population'}"
                         for m, ok in met.items())
    log(f"{verdicts}; wall time {summary['wall_seconds']:.0f}s")
    return summary
