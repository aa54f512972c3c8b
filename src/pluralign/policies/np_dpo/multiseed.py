"""NP-DPO over seeds (issue 16 item 3): one select + report per seed, then the mean and 95 %
intervals of every reported number (:mod:`pluralign.eval.seeds`).

A seed s sets the training seed (``train.seed``: initial LoRA / encoder weights; ``task.seed``:
the training task draws; ``encoder_warmstart.seed``) and the user draw (``seed`` of a built-in
data set: which simulated users label which pairs, and the built-in prompt split). The report's
test-task seed stays ``report.seed`` in every seed: with different users per seed the tasks
differ anyway, and within a seed every model is scored on the same tasks (paired design).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...eval.seeds import interval_row, read_seed_docs, write_tables
from .experiment import ExperimentConfig, run_experiment


def for_seed(config: ExperimentConfig, seed: int) -> ExperimentConfig:
    """``config`` with seed ``seed`` for training and the user draw (see the module docstring)."""
    data = config.data
    if not Path(data.source).exists() and not data.source.endswith((".jsonl", ".parquet", ".gz")):
        data = dataclasses.replace(data, builtin_overrides={**data.builtin_overrides, "seed": seed})
    return dataclasses.replace(
        config, data=data, train=dataclasses.replace(config.train, seed=seed),
        task=dataclasses.replace(config.task, seed=seed),
        encoder_warmstart=dataclasses.replace(config.encoder_warmstart, seed=seed))


def run_seeds(config: ExperimentConfig, seeds: Sequence[int], out_dir: str | Path, log=print) -> dict[str, Any]:
    """Run the protocol for every seed into ``out_dir/seed-<s>`` (a finished seed, one whose
    report finished: :func:`report_finished`, is kept) and write the aggregated tables into ``out_dir``."""
    out = Path(out_dir)
    runs = []
    for s in seeds:
        run = out / f"seed-{s}"
        if not report_finished(run):
            log(f"=== seed {s} ===")
            run_experiment(for_seed(config, s), run, log=log)
        runs.append(run)
    return aggregate(runs, out)


def report_finished(run: str | Path) -> bool:
    """Whether ``run/results.json`` is the report's final document. The evaluation part writes a
    ``results.json`` too, before the ICL parts: that one has no ``report`` section."""
    path = Path(run) / "results.json"
    return path.is_file() and "report" in json.loads(path.read_text())


def _sizes(doc: dict[str, Any]) -> list[str]:
    return [str(n) for n in doc["context_sizes"]]


def accuracy_rows(docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, user type, N^C): accuracy (%) over seeds; per-task bootstrap where stored."""
    rows = []
    first = docs[0]
    for model, per in first["per_type"].items():
        for t in per:
            for n in _sizes(first):
                vals = [d["per_type"].get(model, {}).get(t, {}).get(n, {}).get("accuracy") for d in docs]
                tasks = [d.get("per_task", {}).get(model, {}).get(t, {}).get(n) for d in docs]
                per_task = tasks if all(x is not None for x in tasks) else None
                rows.append({"model": model, "user_type": t, "type_name": _type_name(first, t), "n_context": int(n),
                             **interval_row(vals, per_task, scale=100.0)})
    return rows


def _type_name(doc: dict[str, Any], t: Any) -> str:
    names = doc.get("type_names")
    return names[int(t)] if names and t is not None and int(t) < len(names) else str(t)


def steered_rows(docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, user type): the steered attribute's mean over each seed's answers."""
    keys = list(dict.fromkeys((r["model"], r["user_type"]) for d in docs for r in d["behaviour"]["table"]))
    rows = []
    for model, t in keys:
        vals = [next((r["mean"] for r in d["behaviour"]["table"] if (r["model"], r["user_type"]) == (model, t)), None)
                for d in docs]
        rows.append({"model": model, "user_type": "-" if t is None else t,
                     "type_name": "-" if t is None else _type_name(docs[0], t), **interval_row(vals)})
    return rows


def _acc(doc: dict[str, Any], model: str, t: str, n: str) -> float | None:
    return doc["per_type"].get(model, {}).get(t, {}).get(n, {}).get("accuracy")


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def target_rows(docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets as differences per seed (accuracy in points, steering in words):
    NP-DPO's rise from N^C = 0 to the largest N^C, its lead over BTL-DPO and over ICL at the
    largest N^C, per user type; steered type 1 minus type 0 for NP-DPO and ICL. ``every_seed``
    says whether the difference is positive in every seed (the direction the issue asks for)."""
    first = docs[0]
    lo, hi = _sizes(first)[0], _sizes(first)[-1]
    rows = []
    for t in first["per_type"].get("np-dpo", {}):
        name = _type_name(first, t)
        for label, fn in ((f"np-dpo N^C={hi} - N^C={lo}", lambda d: _diff(_acc(d, "np-dpo", t, hi), _acc(d, "np-dpo", t, lo))),
                          (f"np-dpo - btl-dpo at N^C={hi}", lambda d: _diff(_acc(d, "np-dpo", t, hi), _acc(d, "btl-dpo", t, hi))),
                          (f"np-dpo - icl at N^C={hi}", lambda d: _diff(_acc(d, "np-dpo", t, hi), _acc(d, "icl", t, hi)))):
            vals = [fn(d) for d in docs]
            if any(v is not None for v in vals):
                rows.append({"quantity": label, "user_type": name, "every_seed": all(v is not None and v > 0 for v in vals),
                             **interval_row(vals, scale=100.0)})
    for prefix in ("np-dpo N^C=", "icl N^C="):
        vals = []
        for d in docs:
            by_t = {r["user_type"]: r["mean"] for r in d["behaviour"]["table"] if r["model"].startswith(prefix)}
            vals.append(_diff(by_t.get(1), by_t.get(0)))
        if any(v is not None for v in vals):
            rows.append({"quantity": f"steered {docs[0]['behaviour'].get('attribute', 'length')}: {prefix}k "
                                     f"type 1 - type 0", "user_type": f"{_type_name(first, 1)} - {_type_name(first, 0)}",
                         "every_seed": all(v is not None and v > 0 for v in vals), **interval_row(vals)})
    return rows


def aggregate(run_dirs: Sequence[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Tables over the seeds' ``results.json``: ``table.json``, ``table_*.csv``, ``table.md``."""
    docs = read_seed_docs(run_dirs, "results.json", "no results (run the report step for this seed)")
    for run, doc in zip(run_dirs, docs):
        if "report" not in doc:
            raise ValueError(f"{Path(run) / 'results.json'}: the report step has not finished for this seed "
                             "(its evaluation part wrote this file; the ICL parts are missing)")
    tables = {"accuracy": accuracy_rows(docs), "steered": steered_rows(docs), "targets": target_rows(docs)}
    keys = {"accuracy": ["model", "type_name", "n_context"], "steered": ["model", "type_name"],
            "targets": ["quantity", "user_type", "every_seed"]}
    paths = write_tables(tables, keys, out_dir)
    test_tasks = [d["config"]["n_tasks"] for d in docs]
    return {"tables": tables, "paths": {k: str(v) for k, v in paths.items()}, "seeds": len(docs),
            "test_tasks_per_type": int(np.min(test_tasks)), "runs": [str(r) for r in run_dirs]}
