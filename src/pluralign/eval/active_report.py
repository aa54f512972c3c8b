"""Tables, plots and targets of ``pluralign bench active`` (:mod:`pluralign.eval.active_bench`).

"Questions to 95%" is the first n at which a curve reaches 95% of its converged accuracy (its
accuracy after the most questions asked); the issue's targets are that information gain with 2
questions is at least random with 4, and that information gain reaches 95% within one question
of the Bayes-optimal questioner on the synthetic tasks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from matplotlib.figure import Figure

from .plots import _save
from .results import write_csv, write_json

BAYES_ACTIVE = "bayes/bayes-active"


def questions_to_95(curve: Mapping[str, Mapping[str, float]], sizes: Sequence[int], level: float = 0.95) -> int:
    """First n with accuracy >= level x the accuracy at the largest n."""
    final = curve[str(sizes[-1])]["accuracy"]
    return next(n for n in sizes if curve[str(n)]["accuracy"] >= level * final)


def format_active_table(doc: Mapping[str, Any]) -> str:
    """Accuracy (%) per strategy after n questions, and the questions each needs to reach 95%."""
    sizes = doc["context_sizes"]
    head = ["model/strategy"] + [str(n) for n in sizes] + ["to 95%"]
    rows = []
    for name, curve in doc["models"].items():
        rows.append([name] + [f"{100 * curve[str(n)]['accuracy']:.1f}" for n in sizes]
                    + [str(questions_to_95(curve, sizes))])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    se = max(s["stderr"] for c in doc["models"].values() for s in c.values())
    return "\n".join([f"{doc['task']}: accuracy (%) on held-out target pairs after n answered questions "
                      f"({doc['models'][next(iter(doc['models']))]['0']['n']} users; standard errors <= "
                      f"{100 * se:.1f} pp)", fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def _style(ax, title: str, sizes: Sequence[int], first: bool, legend_size: int) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("questions answered")
    ax.set_xticks(sizes)
    ax.grid(alpha=0.3)
    if first:
        ax.set_ylabel("accuracy on held-out pairs (%)")
    ax.legend(fontsize=legend_size, loc="lower right")


def plot_task(doc: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """One panel per model: accuracy vs questions per strategy, with the Bayes references."""
    models = sorted({k.split("/")[0] for k in doc["models"]} - {"bayes"})
    fig = Figure(figsize=(4.2 * max(1, len(models)), 3.6))
    sizes = doc["context_sizes"]
    for i, m in enumerate(models):
        ax = fig.add_subplot(1, len(models), i + 1)
        for name, curve in doc["models"].items():
            if not name.startswith(m + "/") and not name.startswith("bayes/"):
                continue
            style = {"linestyle": "--", "color": "k" if name == BAYES_ACTIVE else "0.6"} if name.startswith("bayes/") else {}
            ax.errorbar(sizes, [100 * curve[str(n)]["accuracy"] for n in sizes],
                        yerr=[100 * curve[str(n)]["stderr"] for n in sizes], capsize=2, marker="o",
                        markersize=3, label=name.split("/", 1)[1] if not name.startswith("bayes/") else name, **style)
        _style(ax, f"{doc['task']}: {m}", sizes, first=i == 0, legend_size=7)
    return _save(fig, path)


def plot_robustness(docs: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """VPL Fig. 9 with questions chosen: accuracy vs questions at each answer-flip rate,
    information gain (solid) vs random (dotted), one panel per model."""
    models = sorted({k.split("/")[0] for k in docs[0]["models"]} - {"bayes"})
    fig = Figure(figsize=(4.2 * len(models), 3.6))
    sizes = docs[0]["context_sizes"]
    colors = ["C0", "C1", "C2", "C3", "C4"]
    for i, m in enumerate(models):
        ax = fig.add_subplot(1, len(models), i + 1)
        for j, d in enumerate(docs):
            for strat, ls in (("info-gain", "-"), ("random", ":")):
                c = d["models"].get(f"{m}/{strat}")
                if c:
                    ax.plot(sizes, [100 * c[str(n)]["accuracy"] for n in sizes], ls, color=colors[j % 5],
                            marker="o" if ls == "-" else None, markersize=3,
                            label=f"{100 * d['noise']:g}% flipped, {strat}")
        _style(ax, f"answers flipped at test time: {m}", sizes, first=i == 0, legend_size=6)
    return _save(fig, path)


def finish_task(doc: dict, out: Path, stem: str, log: Callable[[str], None]) -> dict:
    sizes = doc["context_sizes"]
    doc["questions_to_95"] = {k: questions_to_95(c, sizes) for k, c in doc["models"].items()}
    write_json(doc, out / f"{stem}.json")
    write_csv(doc, out / f"{stem}.csv")
    plot_task(doc, out / f"{stem}.png")
    log(format_active_table(doc))
    return doc


def summarize_targets(docs: Mapping[str, Mapping[str, Any]], robust: Sequence[Mapping[str, Any]],
                      synthetic: Sequence[str]) -> dict[str, Any]:
    """The issue's two targets per task and model, and a printable summary."""
    rows, lines = [], ["targets (issue 12):"]
    for task, doc in docs.items():
        curves, n95 = doc["models"], doc["questions_to_95"]
        for m in sorted({k.split("/")[0] for k in curves} - {"bayes"}):
            ig, rnd = curves.get(f"{m}/info-gain"), curves.get(f"{m}/random")
            if ig is None or rnd is None:
                continue
            row: dict[str, Any] = {"task": doc["task"], "model": m,
                                   "info_gain_at_2": ig["2"]["accuracy"], "random_at_4": rnd["4"]["accuracy"]}
            row["ig2_ge_random4"] = bool(row["info_gain_at_2"] >= row["random_at_4"])
            line = (f"  {doc['task']} {m}: info-gain@2 {100 * row['info_gain_at_2']:.1f}% vs random@4 "
                    f"{100 * row['random_at_4']:.1f}% -> {'met' if row['ig2_ge_random4'] else 'NOT met'}")
            if task in synthetic and BAYES_ACTIVE in n95:
                row["n95_info_gain"], row["n95_bayes_active"] = n95[f"{m}/info-gain"], n95[BAYES_ACTIVE]
                row["within_one_of_bayes"] = bool(row["n95_info_gain"] <= row["n95_bayes_active"] + 1)
                line += (f"; questions to 95%: info-gain {row['n95_info_gain']} vs bayes-active "
                         f"{row['n95_bayes_active']} -> {'met' if row['within_one_of_bayes'] else 'NOT met'}")
            rows.append(row)
            lines.append(line)
    if robust:
        lines.append("robustness (answers flipped at test time): accuracy (%) after 2 / 10 questions")
        for d in robust:
            parts = [f"{k} {100 * c['2']['accuracy']:.1f} / {100 * c['10']['accuracy']:.1f}"
                     for k, c in d["models"].items() if k.endswith(("/info-gain", "/random"))]
            lines.append(f"  {100 * d['noise']:g}% flipped: " + ", ".join(parts))
    return {"targets": rows, "text": "\n".join(lines)}


def plot_overview(docs: Sequence[Mapping[str, Any]], path: str | os.PathLike, dpi: int = 80) -> Path:
    """One small panel per task: information gain (solid) vs random (dotted) for every model,
    and the Bayes-optimal questioner (dashed) — the README figure."""
    fig = Figure(figsize=(2.9 * len(docs), 2.7))
    for i, doc in enumerate(docs):
        ax = fig.add_subplot(1, len(docs), i + 1)
        sizes = doc["context_sizes"]
        models = sorted({k.split("/")[0] for k in doc["models"]} - {"bayes"})
        for j, m in enumerate(models):
            for strat, ls in (("info-gain", "-"), ("random", ":")):
                c = doc["models"].get(f"{m}/{strat}")
                if c:
                    ax.plot(sizes, [100 * c[str(n)]["accuracy"] for n in sizes], ls, color=f"C{j}",
                            label=f"{m} {strat}")
        c = doc["models"].get(BAYES_ACTIVE)
        if c:
            ax.plot(sizes, [100 * c[str(n)]["accuracy"] for n in sizes], "k--", label="bayes-active")
        ax.set_title(doc["task"], fontsize=8)
        ax.set_xlabel("questions", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.set_ylabel("accuracy (%)", fontsize=8)
            ax.legend(fontsize=6, loc="lower right")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(out, dpi=dpi, bbox_inches="tight")
    return out
