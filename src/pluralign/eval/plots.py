"""PNG plots of results documents (:mod:`pluralign.eval.results`): accuracy vs N^C per model with
standard-error bars and the Bayes-optimal line (the NP paper's Fig. 1b layout).

Figures are drawn on matplotlib's Agg canvas directly, so nothing here needs a display or
changes the global backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, out)
    return out


def plot_accuracy(doc: Mapping[str, Any], path: str | os.PathLike, title: str | None = None) -> Path:
    """Accuracy (%) on unseen target pairs vs N^C, one line per model, Bayes dashed."""
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    sizes = list(doc["context_sizes"])
    for name, curve in doc["models"].items():
        ns = [n for n in sizes if str(n) in curve]
        ax.errorbar(ns, [100 * curve[str(n)]["accuracy"] for n in ns],
                    yerr=[100 * curve[str(n)]["stderr"] for n in ns], marker="o", capsize=3, label=name)
    bayes = doc.get("bayes")
    if bayes:
        ns = [n for n in sizes if str(n) in bayes]
        ax.plot(ns, [100 * bayes[str(n)] for n in ns], "k--", label="Bayes-optimal")
    single = doc.get("single_reward")
    if single:  # the best one reward per context can do (pluralign.eval.single_reward)
        ns = [n for n in sizes if str(n) in single]
        ax.plot(ns, [100 * single[str(n)] for n in ns], "k:", label="best single reward")
    ax.set_xlabel("context pairs $N^C$")
    ax.set_ylabel("accuracy on unseen target pairs (%)")
    ax.set_xticks(sizes)
    ax.set_title(title or doc["task"])
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_per_type(doc: Mapping[str, Any], path: str | os.PathLike) -> Path | None:
    """One panel per model: accuracy vs N^C for each user type (None without per-type data).

    Types are named by ``doc["user_types"]`` (``{"0": "concise", ...}``) where present, and the
    panels share one y axis so models can be compared by eye.
    """
    per_type = doc.get("per_type") or {}
    if not per_type:
        return None
    names = doc.get("user_types") or {}
    fig = Figure(figsize=(4.0 * len(per_type), 3.5))
    axes = fig.subplots(1, len(per_type), sharey=True, squeeze=False)[0]
    sizes = list(doc["context_sizes"])
    for i, (ax, (name, types)) in enumerate(zip(axes, per_type.items())):
        for t, curve in sorted(types.items()):
            ns = [n for n in sizes if str(n) in curve]
            ax.errorbar(ns, [100 * curve[str(n)]["accuracy"] for n in ns],
                        yerr=[100 * curve[str(n)]["stderr"] for n in ns], marker="o", capsize=3,
                        label=names.get(str(t), f"type {t}"))
        ax.set_title(name)
        ax.set_xlabel("$N^C$")
        ax.set_xticks(sizes)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=7)
    return _save(fig, path)
