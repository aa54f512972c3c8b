"""The results document every benchmark and ``pluralign eval`` writes (issue 3, item 6), and
its readers/writers: ``results.json``, CSV, and a terminal table.

Schema (accuracies are fractions in [0, 1]; N^C keys are strings, JSON has no integer keys)::

    {"task": str, "context_sizes": [int], "bayes": {"<N>": float} | null,
     "models": {"<model>": {"<N>": {"accuracy": float, "stderr": float, "n": int}}},
     (with the user types known, each model cell also has "expected_accuracy", "expected_stderr"
     and "gap_stderr": :func:`pluralign.eval.metrics.expected_scores`)
     ... extras: "per_type", "flip_test", "active_units", "bayes_realised", "timing_s", "config"}
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from ..atomic import write_text_atomic
from .diagnostics import flip_test, latent_activity
from .metrics import EvalConfig, EvalData, accuracy_curves, sample_eval_tasks

SCHEMA_KEYS = ("task", "context_sizes", "bayes", "models")


class ResultsSchemaError(ValueError):
    """A results document does not follow the schema."""


def evaluate_models(models: Mapping[str, nn.Module], data: EvalData, config: EvalConfig | None = None,
                    task: str = "eval", bayes: Mapping[int | str, float] | None = None,
                    **extras: Any) -> dict[str, Any]:
    """Score ``models`` on the same disjoint-context test tasks and return a results document.

    ``bayes`` overrides the Bayes-optimal line (e.g. a closed form); by default it is computed
    exactly on the sampled tasks when the data carry simulated user types. ``extras`` are added
    as top-level keys.
    """
    config = config or EvalConfig()
    tasks = sample_eval_tasks(data, config)
    curves = accuracy_curves(models, data, config, tasks)
    doc: dict[str, Any] = {
        "task": task, "context_sizes": list(config.context_sizes),
        "bayes": ({str(k): float(v) for k, v in bayes.items()} if bayes is not None else curves["bayes"]),
        "models": curves["models"],
    }
    if curves["per_type"]:
        doc["per_type"] = curves["per_type"]
    if curves["bayes_realised"] is not None:
        doc["bayes_realised"] = curves["bayes_realised"]
        if data.bayes_kind:
            doc["bayes_kind"] = data.bayes_kind
    if config.flip_test:
        doc["flip_test"] = flip_test(models, tasks, data, config.batch_size)
    if config.active_units:
        activity = latent_activity(models, tasks, data, config.active_threshold, config.batch_size)
        if activity:
            doc["active_units"] = activity
    doc["timing_s"] = curves["timing_s"]
    doc["config"] = dataclasses.asdict(config)
    doc.update(extras)
    validate_results(doc)
    return doc


def validate_results(doc: Mapping[str, Any]) -> None:
    """Raise :class:`ResultsSchemaError` naming the first thing that breaks the schema."""
    missing = [k for k in SCHEMA_KEYS if k not in doc]
    if missing:
        raise ResultsSchemaError(f"results lack key(s) {missing}")
    if not isinstance(doc["task"], str):
        raise ResultsSchemaError("results 'task' must be a string")
    sizes = doc["context_sizes"]
    if not isinstance(sizes, list) or not all(isinstance(n, int) and n >= 0 for n in sizes):
        raise ResultsSchemaError(f"results 'context_sizes' must be a list of ints, got {sizes!r}")
    keys = {str(n) for n in sizes}
    if doc["bayes"] is not None:
        if not isinstance(doc["bayes"], Mapping) or not set(doc["bayes"]) <= keys:
            raise ResultsSchemaError(f"results 'bayes' must map context sizes {sorted(keys)} to floats")
        for n, v in doc["bayes"].items():
            if not (isinstance(v, float) and 0.0 <= v <= 1.0):
                raise ResultsSchemaError(f"results bayes[{n!r}] = {v!r} is not a fraction in [0, 1]")
    if not isinstance(doc["models"], Mapping):
        raise ResultsSchemaError("results 'models' must be a mapping")
    for name, curve in doc["models"].items():
        if not isinstance(curve, Mapping) or not set(curve) <= keys:
            raise ResultsSchemaError(f"results models[{name!r}] must map context sizes to stats")
        for n, s in curve.items():
            if not isinstance(s, Mapping) or set(s) < {"accuracy", "stderr", "n"}:
                raise ResultsSchemaError(f"results models[{name!r}][{n!r}] needs accuracy, stderr, n")
            acc = s["accuracy"]
            if not isinstance(s["n"], int) or not isinstance(acc, float) or not (
                    math.isnan(acc) or 0.0 <= acc <= 1.0):
                raise ResultsSchemaError(f"results models[{name!r}][{n!r}] = {dict(s)} is malformed")


def _json_safe(obj: Any) -> Any:
    """NaN -> null (strict JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_json(doc: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Validate and write ``doc`` atomically."""
    validate_results(doc)
    return write_text_atomic(path, json.dumps(_json_safe(doc), indent=2) + "\n")


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    doc = json.loads(Path(path).read_text())
    validate_results(doc)
    return doc


CSV_COLUMNS = ("task", "model", "n_context", "accuracy", "stderr", "n", "bayes")


def to_csv(doc: Mapping[str, Any]) -> str:
    """One row per (model, N^C) with the Bayes value for that N^C."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    bayes = doc.get("bayes") or {}
    for name, curve in doc["models"].items():
        for n in doc["context_sizes"]:
            s = curve.get(str(n))
            if s is None:
                continue
            writer.writerow([doc["task"], name, n, f"{s['accuracy']:.6f}", f"{s['stderr']:.6f}", s["n"],
                             f"{bayes[str(n)]:.6f}" if str(n) in bayes else ""])
    return buf.getvalue()


def write_csv(doc: Mapping[str, Any], path: str | os.PathLike) -> Path:
    validate_results(doc)
    return write_text_atomic(path, to_csv(doc))


def format_table(doc: Mapping[str, Any], expected: bool = False) -> str:
    """Accuracy (%) ± standard error per model and N^C, the Bayes row, and the diagnostics;
    ``expected``: under each model, its accuracy in expectation under the true posterior too
    (where the document has it)."""
    sizes = [str(n) for n in doc["context_sizes"]]
    head = ["model"] + [f"N^C={n}" for n in sizes]
    rows = []
    shown_expected = False
    for name, curve in doc["models"].items():
        cells = [f"{100 * curve[n]['accuracy']:.1f} ± {100 * curve[n]['stderr']:.1f}" if n in curve
                 else "-" for n in sizes]
        rows.append([name] + cells)
        if expected and any("expected_accuracy" in curve[n] for n in sizes if n in curve):
            shown_expected = True
            rows.append(["  in expectation"] + [
                f"{100 * curve[n]['expected_accuracy']:.1f} ± {100 * curve[n]['expected_stderr']:.1f}"
                if "expected_accuracy" in curve.get(n, {}) else "-" for n in sizes])
    if doc.get("bayes"):
        rows.append(["bayes-optimal"] + [f"{100 * doc['bayes'][n]:.1f}" if n in doc["bayes"] else "-"
                                         for n in sizes])
    if doc.get("single_reward"):
        rows.append(["best single reward"] + [f"{100 * doc['single_reward'][n]:.1f}"
                                              if n in doc["single_reward"] else "-" for n in sizes])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    lines = [f"{doc['task']}: accuracy on unseen target pairs (%), ± standard error over tasks",
             fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    if doc.get("bayes") and doc.get("bayes_kind"):
        lines.append(f"Bayes line: {doc['bayes_kind']}")
    if shown_expected:
        lines.append("in expectation: each target scored q or 1 - q, the probability under the true posterior "
                     "that the user's choice is the one the model predicts (as the Bayes line is)")
    flips = doc.get("flip_test") or {}
    if flips:
        lines.append("context-flip test: predictions unchanged when the context is flipped "
                     "(all / conflicting targets)")
        for name, by_n in flips.items():
            parts = []
            for n, f in by_n.items():
                conf = f.get("unchanged_conflicting")
                u = f.get("unchanged")
                parts.append(f"N^C={n}: " + (f"{100 * u:.0f}%" if u is not None else "n/a")
                             + (f" / {100 * conf:.0f}%" if conf is not None else ""))
            lines.append(f"  {name}: " + ", ".join(parts))
    for name, a in (doc.get("active_units") or {}).items():
        lines.append(f"active latent units ({name}, N^C={a['n_context']}): {a['active']} of "
                     f"{a['latent_dim']} (posterior-mean variance > {a['threshold']})")
    return "\n".join(lines)
