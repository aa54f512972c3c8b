"""CMPO over seeds (issue 16 item 3): select + report per seed, then means with 95 % t-intervals
over seeds (:mod:`pluralign.eval.seeds`).

A seed s sets ``experiment.seed``: the initial weights and batch order of CMPO and every
baseline, the simulated few-shot training / validation users and the few-shot encoder's
initialisation. The data split (``data.seed``) and the report's test pairs and test users
(``report.seed``) are the same in every seed. Accuracy cells are fractions of a fixed set of test
pairs, so only the between-seed t-interval is given for them (no per-pair values are stored).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ...eval.seeds import interval_row, read_seed_docs, write_tables
from .protocol import CMPOProtocolConfig


def for_seed(config: CMPOProtocolConfig, seed: int) -> CMPOProtocolConfig:
    return dataclasses.replace(config, experiment=dataclasses.replace(config.experiment, seed=seed))


def run_seeds(config: CMPOProtocolConfig, seeds: Sequence[int], splits_for: Callable[[bool], Mapping[str, Any]],
              tokenizer: Any, scorers: Mapping[str, Callable[[str], float]], out_dir: str | Path,
              log=print) -> dict[str, Any]:
    """``splits_for(sealed)`` gives the data splits (test sealed for select, open for report)."""
    from ..selection import sealed
    from .protocol import report, select

    out = Path(out_dir)
    runs = []
    for s in seeds:
        run, cfg = out / f"seed-{s}", for_seed(config, s)
        if not (run / "report.json").is_file():
            log(f"=== seed {s} ===")
            if not (run / "selection.json").is_file():
                select(sealed(cfg), splits_for(True), tokenizer, scorers, run, log=log)
            report(cfg, splits_for(False), tokenizer, scorers, run, log=log)
        runs.append(run)
    return aggregate(runs, out)


def _get(doc: Mapping[str, Any], *keys: Any) -> Any:
    for k in keys:
        if isinstance(doc, Mapping) and k in doc:
            doc = doc[k]
        elif isinstance(doc, list) and isinstance(k, int) and k < len(doc):
            doc = doc[k]
        else:
            return None
    return doc


def aggregate(run_dirs: Sequence[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Tables over the seeds' ``report.json``: accuracy, few-shot recovery, steering, targets."""
    docs = read_seed_docs(run_dirs, "report.json", "no report (run `pluralign cmpo report` for this seed)")
    first = docs[0]
    acc_rows, target_rows = [], []
    for a, models in first["accuracy"].items():
        for m in models:
            for measure in ("preference_accuracy", "reward_accuracy"):
                vals = [_get(d, "accuracy", a, m, measure) for d in docs]
                if any(v is not None for v in vals):
                    acc_rows.append({"attribute": a, "model": m, "measure": "eq. 5.1" if measure.startswith("pref")
                                     else "implicit reward", **interval_row(vals, scale=100.0)})
        for other, measure in (("sft", "preference_accuracy"), ("icl", "preference_accuracy"),
                               ("icl", "reward_accuracy"), ("dpo", "reward_accuracy")):
            vals = [None if _get(d, "accuracy", a, "cmpo", measure) is None or _get(d, "accuracy", a, other, measure) is None
                    else d["accuracy"][a]["cmpo"][measure] - d["accuracy"][a][other][measure] for d in docs]
            if any(v is not None for v in vals):
                target_rows.append({"quantity": f"cmpo - {other} ({measure})", "attribute": a,
                                    "every_seed": all(v is not None and v > 0 for v in vals),
                                    **interval_row(vals, scale=100.0)})
    fs_rows = []
    for i, row in enumerate(first.get("fewshot", [])):
        for key in ("recovered", "head_vote_recovered", "mean_weight_on_true"):
            vals = [_get(d, "fewshot", i, key) for d in docs]
            fs_rows.append({"n_context": row["n_context"], "quantity": key, **interval_row(vals, scale=100.0)})
    steer_rows = []
    for key, item in first["interpolation"].items():
        first_attr, second_attr = key.split("->")
        for name in item["summary"]:
            for j, label in ((0, f"cmpo lambda=e_{first_attr}"), (-1, f"cmpo lambda=e_{second_attr}")):
                vals = [d["interpolation"][key]["rows"][j][name] for d in docs]
                steer_rows.append({"model": label, "scorer": name, **interval_row(vals)})
            vals = [d["interpolation"][key]["summary"][name]["spearman"] for d in docs]
            steer_rows.append({"model": f"cmpo spearman over lambda {key}", "scorer": name, **interval_row(vals)})
            for attr in (first_attr, second_attr):
                vals = [_get(d, "icl_steering", attr, name) for d in docs]
                if any(v is not None for v in vals):
                    steer_rows.append({"model": f"icl, {attr} user", "scorer": name, **interval_row(vals)})
    tables = {"accuracy": acc_rows, "fewshot": fs_rows, "steering": steer_rows, "targets": target_rows}
    keys = {"accuracy": ["attribute", "model", "measure"], "fewshot": ["n_context", "quantity"],
            "steering": ["model", "scorer"], "targets": ["quantity", "attribute", "every_seed"]}
    paths = write_tables(tables, keys, out_dir)
    return {"tables": tables, "paths": {k: str(v) for k, v in paths.items()}, "seeds": len(docs),
            "runs": [str(r) for r in run_dirs]}
