"""Means and 95 % intervals over seeds, and the tables multi-seed runs write (the policy
protocol, the RL bench).

Issue 16 item 3. A reported number is the mean over S seeds (training seed and user draw) with

* a **t-interval over seeds**: mean ± t_{0.975, S-1} · sd / sqrt(S) (sd with ddof 1). The seed is
  the unit that repeats the whole experiment, so this interval is the honest one for "another
  run of this protocol"; with S = 3 the t quantile is 4.30, so it is wide.
* a **per-task bootstrap** (where per-task values exist, NP-DPO's accuracy): tasks are resampled
  with replacement *within each seed* (a stratified bootstrap), the seed means are averaged, and
  the 2.5 / 97.5 percentiles of that average are the interval. It says how precisely the tasks
  pin the mean down *given these seeds*, not the between-seed spread.

Tables are written as JSON, CSV and markdown (:func:`write_tables`).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean and t-interval of ``values`` (one per seed; nan entries skipped). One value: the
    interval is undefined (nan half-width)."""
    from scipy.stats import t as student_t

    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "half_width": float("nan"),
                "sd": float("nan"), "n": 0}
    mean = float(v.mean())
    if n == 1:
        return {"mean": mean, "low": float("nan"), "high": float("nan"), "half_width": float("nan"),
                "sd": float("nan"), "n": 1}
    sd = float(v.std(ddof=1))
    half = float(student_t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n))
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half, "sd": sd, "n": n}


def bootstrap_interval(per_seed: Sequence[Sequence[float]], n_boot: int = 2000, seed: int = 0,
                       confidence: float = 0.95) -> dict[str, float]:
    """Stratified bootstrap of the mean over seeds of per-task values: ``per_seed[s]`` are seed
    s's per-task values; each replicate resamples every seed's tasks with replacement."""
    groups = [np.asarray(g, dtype=np.float64) for g in per_seed]
    groups = [g[np.isfinite(g)] for g in groups]
    groups = [g for g in groups if g.size]
    if not groups:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n_tasks": 0}
    rng = np.random.default_rng(seed)
    reps = np.zeros(n_boot)
    for g in groups:
        idx = rng.integers(0, g.size, size=(n_boot, g.size))
        reps += g[idx].mean(axis=1)
    reps /= len(groups)
    alpha = (1 - confidence) / 2
    return {"mean": float(np.mean([g.mean() for g in groups])), "low": float(np.quantile(reps, alpha)),
            "high": float(np.quantile(reps, 1 - alpha)), "n_tasks": int(sum(g.size for g in groups))}


def interval_row(values: Sequence[float], per_task: Sequence[Sequence[float]] | None = None,
                 scale: float = 1.0, boot_seed: int = 0) -> dict[str, Any]:
    """One table cell: the seeds' values, their mean and t-interval, and (with ``per_task``) the
    bootstrap interval; every number multiplied by ``scale`` (100 for percentages)."""
    t = t_interval(values)
    row: dict[str, Any] = {"seeds": len([v for v in values if v is not None]),
                           "values": [None if v is None else scale * v for v in values],
                           "mean": scale * t["mean"], "t_low": scale * t["low"], "t_high": scale * t["high"],
                           "t_half_width": scale * t["half_width"]}
    if per_task is not None:
        b = bootstrap_interval(per_task, seed=boot_seed)
        row.update(boot_low=scale * b["low"], boot_high=scale * b["high"], n_tasks=b["n_tasks"])
    return row


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "nan" if not math.isfinite(x) else f"{x:.1f}"
    return "" if x is None else str(x)


def markdown_table(rows: Sequence[Mapping[str, Any]], keys: Sequence[str], intervals: bool = True) -> str:
    """Markdown with ``keys`` as leading columns, then mean [t-interval] (and bootstrap) per row."""
    head = list(keys) + ["mean [95 % t over seeds]", "seeds"]
    boot = any("boot_low" in r for r in rows)
    if boot:
        head.insert(len(keys) + 1, "[95 % bootstrap over tasks]")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if not intervals:
            cell = _fmt(r["mean"])
        elif r["seeds"] < 2:  # a t-interval needs two seeds; say so instead of printing [nan, nan]
            cell = f"{_fmt(r['mean'])} [one seed: no interval]"
        else:
            cell = f"{_fmt(r['mean'])} [{_fmt(r['t_low'])}, {_fmt(r['t_high'])}]"
        cols = [_fmt(r.get(k)) for k in keys] + [cell]
        if boot:
            cols.append(f"[{_fmt(r.get('boot_low'))}, {_fmt(r.get('boot_high'))}]" if "boot_low" in r else "")
        cols.append(_fmt(r["seeds"]))
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def read_seed_docs(run_dirs: Sequence[str | Path], name: str, missing: str) -> list[dict[str, Any]]:
    """Each seed's ``run/name`` JSON document, in order; ``missing`` says how to make one that is
    not there (the error names the path)."""
    docs = []
    for run in run_dirs:
        path = Path(run) / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: {missing}")
        docs.append(json.loads(path.read_text()))
    return docs


def write_tables(tables: Mapping[str, Sequence[Mapping[str, Any]]], keys: Mapping[str, Sequence[str]],
                 out_dir: str | Path, name: str = "table") -> dict[str, Path]:
    """``out_dir/{name}.json`` (all tables), ``{name}_{table}.csv`` and ``{name}.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{name}.json", "md": out / f"{name}.md"}
    paths["json"].write_text(json.dumps(tables, indent=2, default=str) + "\n")
    md = []
    for table, rows in tables.items():
        md.append(f"### {table}\n\n" + markdown_table(rows, keys[table]))
        cols = sorted({k for r in rows for k in r if k != "values"}, key=lambda k: (k not in keys[table], k))
        path = out / f"{name}_{table}.csv"
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols + ["values"])
            w.writeheader()
            for r in rows:
                w.writerow({**{k: r.get(k) for k in cols}, "values": json.dumps(r.get("values"))})
        paths[f"csv_{table}"] = path
    paths["md"].write_text("\n".join(md))
    return paths
