"""``pluralign bench defaults-seeds``: the defaults bench over seeds — each population's gap to
the Bayes line per N^C as the mean over report seeds with a 95 % t-interval
(:mod:`pluralign.eval.seeds`), and the target (:func:`~pluralign.eval.defaults_bench.meets_target`)
judged on the mean and on every seed.

Each seed is one ``pluralign bench defaults --seed S --out RUN`` on the test split, with a seed no
tuning step used; this module only reads their ``summary.json`` files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from ..atomic import write_text_atomic
from .defaults_bench import meets_target
from .seeds import interval_row, markdown_table, read_seed_docs, write_tables

KEYS = ["model", "population", "n_context"]
#: how a seed's gap was scored: in expectation under the true posterior (paired with the Bayes
#: line, :func:`pluralign.eval.metrics.expected_scores`) or on the labels the users drew
GAP_KIND = {True: "model and Bayes line in expectation under the true posterior",
            False: "model on the drawn labels, Bayes line in expectation"}


def aggregate_defaults(run_dirs: Sequence[str | Path], out_dir: str | Path,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
    """Mean gap to Bayes (pp) over the runs' seeds per (model, population, N^C); writes
    ``out_dir/table.{json,md}``, ``table_gap_to_bayes.csv`` and ``targets.json``; returns them."""
    docs = read_seed_docs(run_dirs, "summary.json", "no summary.json; run `pluralign bench defaults --seed S "
                                                    "--out RUN` for it first")
    seeds = [d["config"]["seed"] for d in docs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"runs {list(map(str, run_dirs))} repeat a seed ({seeds}): each seed counts once")
    splits = {d["config"]["split"] for d in docs}
    if splits != {"test"}:
        raise ValueError(f"a report averages test-split runs; these are on {sorted(splits)}")
    sizes = [str(n) for n in docs[0]["config"]["context_sizes"]]
    # summaries written before the model was scored in expectation hold drawn-label gaps only
    paired = {all(f"drawn_labels_gap_{n}" in r for r in d["rows"] for n in sizes) for d in docs}
    if len(paired) > 1:
        raise ValueError("these runs score the model in two ways (some summaries predate the gap in "
                         "expectation under the true posterior); run `pluralign bench defaults` again on "
                         "the older --out folders to rescore them")
    paired_gaps = paired == {True}
    cells: dict[tuple[str, str], list[dict[str, Any] | None]] = {}
    for i, doc in enumerate(docs):
        for row in doc["rows"]:
            cells.setdefault((row["model"], row["population"]), [None] * len(docs))[i] = row
    rows, drawn, verdicts = [], [], []
    for (model, population), per_seed in cells.items():
        if any(r is None for r in per_seed):
            missing = [s for s, r in zip(seeds, per_seed) if r is None]
            raise ValueError(f"{model} on {population} is missing from the runs of seeds {missing}")
        met_mean, met_every = True, True
        for n in sizes:
            row = {"model": model, "population": population, "n_context": int(n),
                   **interval_row([r[f"gap_{n}"] for r in per_seed])}
            # the summaries hold gaps in pp; meets_target takes fractions
            row["meets_target_on_mean"] = meets_target({n: row["mean"] / 100})
            row["meets_target_every_seed"] = all(meets_target({n: v / 100}) for v in row["values"])
            met_mean &= row["meets_target_on_mean"]
            met_every &= row["meets_target_every_seed"]
            rows.append(row)
            if paired_gaps:
                drawn.append({"model": model, "population": population, "n_context": int(n),
                              **interval_row([r[f"drawn_labels_gap_{n}"] for r in per_seed])})
        verdicts.append({"model": model, "population": population, "meets_target_on_mean": met_mean,
                         "meets_target_every_seed": met_every})
    tables = {"gap_to_bayes": rows, **({"gap_to_bayes_drawn_labels": drawn} if drawn else {})}
    write_tables(tables, {name: KEYS for name in tables}, out_dir)
    write_text_atomic(Path(out_dir) / "targets.json",
                      json.dumps({"seeds": seeds, "gap": GAP_KIND[paired_gaps], "targets": verdicts}, indent=2) + "\n")
    log(f"accuracy minus Bayes-optimal (pp; {GAP_KIND[paired_gaps]}), seeds {seeds}; "
        f"target >= -1.5 at N^C=0, >= -1.0 at N^C>=1\n" + markdown_table(rows, KEYS))
    for v in verdicts:
        log(f"{v['model']} on {v['population']}: target {'met' if v['meets_target_on_mean'] else 'MISSED'} "
            f"on the mean; {'met on every seed' if v['meets_target_every_seed'] else 'missed on some seed'}")
    return {"seeds": seeds, "gap": GAP_KIND[paired_gaps], **tables, "targets": verdicts}
