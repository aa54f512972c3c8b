"""The RL bench over seeds (issue 14; ``pluralign rl aggregate``).

One ``pluralign rl bench --seed S`` run trains its own reward models and IQL policies and draws
its own users and test starts, and reward-model initialisation alone moves VPL and NP-BTL by
15-25 points on one seed (docs/rl.md). So a reported success rate is the mean over seeds of each
seed's rate, with a 95 % t-interval over seeds (:func:`pluralign.eval.seeds.interval_row`), and
each of the issue's targets is read per seed (``every_seed``) as well as on the mean.

Inputs are the runs' ``maze-{K}goals.json``; outputs, per goal count K, go to ``out_dir``:
``maze-{K}goals-seeds.{json,md}`` and ``..._success.csv`` / ``..._targets.csv`` (the tables),
``maze-{K}goals-mean.{json,csv}`` (the bench's schema with the mean success and the between-seed
standard error, so :func:`.report.summary_lines` reads the targets off it) and
``maze-{K}goals-seeds.png`` (success against answered queries, the t-interval shaded).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..eval.seeds import interval_row, read_seed_docs, write_tables
from .report import (ACTIVE_BUDGET, first_reaching, goals_of, oracle_gap_curves, oracle_tolerance,
                     results_stem, success_at, summary_lines, validate, with_active_curves, write_results)

def goal_counts(run_dirs: Sequence[str | Path]) -> list[int]:
    """The goal counts K with a ``maze-{K}goals.json`` in every run folder."""
    if not run_dirs:
        raise ValueError("no run folders given")
    per_run = []
    for run in run_dirs:
        if not Path(run).is_dir():
            raise FileNotFoundError(f"{run}: not a folder (give the --out folders of 'pluralign rl bench')")
        per_run.append({k for p in Path(run).iterdir() if (k := goals_of(p.name)) is not None})
    common = sorted(set.intersection(*per_run))
    if not common:
        raise ValueError("no maze-<K>goals.json common to all runs: "
                         + "; ".join(f"{r}: {sorted(k) or 'none'}" for r, k in zip(run_dirs, per_run)))
    return common


def read_runs(run_dirs: Sequence[str | Path], k: int) -> list[dict[str, Any]]:
    """Each run's K-goal results, checked to be one bench on distinct seeds."""
    docs = read_seed_docs(run_dirs, f"{results_stem(k)}.json", "no results (run 'pluralign rl bench' there)")
    for run, doc in zip(run_dirs, docs):
        validate(doc)
        if doc["task"] != docs[0]["task"] or list(doc["context_sizes"]) != list(docs[0]["context_sizes"]):
            raise ValueError(f"{run}: task {doc['task']} with queries {doc['context_sizes']}, but "
                             f"{run_dirs[0]} has {docs[0]['task']} with {docs[0]['context_sizes']}")
    seeds = [doc.get("config", {}).get("seed") for doc in docs]
    repeated = {s for s in seeds if s is not None and seeds.count(s) > 1}
    if repeated:
        raise ValueError(f"seed(s) {sorted(repeated)} appear in more than one run; each run must be "
                         "another seed for the interval to mean anything")
    return docs


def common_policies(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Policies every run has, in the first run's order."""
    return [m for m in docs[0]["models"] if all(m in d["models"] for d in docs)]


def success_rows(docs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per policy and number of answered queries: the seeds' success (%), mean and t-interval."""
    return [{"policy": m, "n_queries": int(n), **interval_row([success_at(d, m, n) for d in docs], scale=100.0)}
            for m in common_policies(docs) for n in docs[0]["context_sizes"]]


def target_rows(docs: Sequence[Mapping[str, Any]], k: int) -> list[dict[str, Any]]:
    """Issue 14's targets, one value per seed: ``met_every_seed`` says whether each seed meets it."""
    n = max(int(x) for x in docs[0]["context_sizes"])
    policies = set(common_policies(docs))
    rows: list[dict[str, Any]] = []

    def diff(a: str, b: str) -> list[float | None]:
        out = []
        for d in docs:
            x, y = success_at(d, a, n), success_at(d, b, n)
            out.append(None if x is None or y is None else x - y)
        return out

    for name in oracle_gap_curves(policies):  # the is VPL + SPO's; the library's best beside it
        if "oracle" in policies:
            tol = oracle_tolerance(k)
            v = diff(name, "oracle")
            rows.append({"quantity": f"{name} - oracle (n={n}), points", "target": f">= {-100 * tol:.0f}",
                         "met_every_seed": all(x is not None and x >= -tol for x in v),
                         **interval_row(v, scale=100.0)})
    if {"vpl+spo", "vpl"} <= policies:
        v = diff("vpl+spo", "vpl")
        rows.append({"quantity": f"vpl+spo - vpl (n={n}), points", "target": ">= 0",
                     "met_every_seed": all(x is not None and x >= 0 for x in v), **interval_row(v, scale=100.0)})
    if "btl" in policies:
        v = [success_at(d, "btl", n) for d in docs]
        rows.append({"quantity": f"btl success (n={n}), %", "target": f"near 1/K = {100 / k:.0f}",
                     "met_every_seed": None, **interval_row(v, scale=100.0)})
    for name in with_active_curves(common_policies(docs)):
        v = [first_reaching(d, name) for d in docs]
        rows.append({"quantity": f"{name}/active: queries to reach its {n}-random-query success",
                     "target": f"<= {ACTIVE_BUDGET}",
                     "met_every_seed": all(math.isfinite(x) and x <= ACTIVE_BUDGET for x in v),
                     **interval_row([x if math.isfinite(x) else None for x in v])})
    return rows


def mean_doc(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The bench's schema over seeds: success = mean of the seeds' rates, stderr = their standard
    deviation / sqrt(S), n = test episodes over all seeds; per-goal rates averaged too."""
    sizes = [str(n) for n in docs[0]["context_sizes"]]
    models: dict[str, Any] = {}
    per_goal: dict[str, Any] = {}
    for m in common_policies(docs):
        models[m], per_goal[m] = {}, {}
        for n in sizes:
            v = np.array([d["models"][m][n]["success"] for d in docs], dtype=float)
            sd = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
            models[m][n] = {"success": float(v.mean()), "stderr": sd / math.sqrt(len(v)),
                            "n": int(sum(d["models"][m][n]["n"] for d in docs))}
            goals = [d.get("per_goal", {}).get(m, {}).get(n) for d in docs]
            if all(g is not None and len(g) == len(goals[0]) for g in goals):
                per_goal[m][n] = np.mean(np.array(goals, dtype=float), axis=0).tolist()
    return {"task": docs[0]["task"], "context_sizes": list(docs[0]["context_sizes"]), "models": models,
            "per_goal": per_goal, "goals": docs[0].get("goals", []),
            "seeds": [d.get("config", {}).get("seed") for d in docs]}


def plot_curves(rows: Sequence[Mapping[str, Any]], task: str, seeds: int, path: Path) -> Path:
    """Mean success against answered queries per policy, t-interval shaded: random queries on the
    left, active ones on the right (policies without a latent, and the oracle, in both)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(dict.fromkeys(r["policy"] for r in rows))
    bases = list(dict.fromkeys(p.split("/")[0] for p in policies))
    colours = dict(zip(bases, plt.get_cmap("tab10")(np.arange(len(bases)) % 10)))
    with_active = {p.split("/")[0] for p in policies if p.endswith("/active")}
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.8), sharey=True)
    for ax, strategy in zip(axes, ("random", "active")):
        for base in bases:
            name = f"{base}/active" if strategy == "active" and base in with_active else base
            pr = [r for r in rows if r["policy"] == name]
            x = [r["n_queries"] for r in pr]
            ax.plot(x, [r["mean"] for r in pr], color=colours[base], marker="o", ms=3, label=base)
            lo, hi = np.array([r["t_low"] for r in pr]), np.array([r["t_high"] for r in pr])
            if np.all(np.isfinite(lo)):
                ax.fill_between(x, np.clip(lo, 0, 100), np.clip(hi, 0, 100), color=colours[base], alpha=0.1)
        ax.set_title(f"{strategy} queries", fontsize=9)
        ax.set_xlabel("answered queries n")
        ax.set_ylim(-2, 102)  # lines at 0 and 100 % stay visible
    axes[0].set_ylabel("success (%)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"{task}: mean over {seeds} seeds, 95 % t-interval over seeds shaded", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def aggregate(run_dirs: Sequence[str | Path], out_dir: str | Path) -> dict[int, dict[str, Any]]:
    """Tables, mean results and a curve plot per goal count common to ``run_dirs``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[int, dict[str, Any]] = {}
    for k in goal_counts(run_dirs):
        docs = read_runs(run_dirs, k)
        tables = {"success": success_rows(docs), "targets": target_rows(docs, k)}
        keys = {"success": ["policy", "n_queries"], "targets": ["quantity", "target", "met_every_seed"]}
        paths = write_tables(tables, keys, out, name=f"{results_stem(k)}-seeds")
        mean = mean_doc(docs)
        write_results(mean, out / f"{results_stem(k)}-mean")
        paths["png"] = plot_curves(tables["success"], mean["task"], len(docs), out / f"{results_stem(k)}-seeds.png")
        result[k] = {"tables": tables, "summary": summary_lines(mean), "seeds": mean["seeds"],
                     "paths": {name: str(p) for name, p in paths.items()}}
    return result
