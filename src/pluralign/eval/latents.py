"""Context latents of personalised reward models, projected by PCA and coloured by the true user
type (NP paper Figure 3): as N^C grows the users' representations z should separate by type.

z is what the model's decoder sees: NP-BTL's deterministic z^C, VPL's posterior mean (the z
:meth:`VPLRewardModel.latent` uses at evaluation). One PCA per model is fitted on the latents of
all panels together, so the panels share axes and the spread can be compared across N^C.
The separation is also measured: nearest-centroid accuracy of the type from z (in the full
latent space; 0.5 = no information for two balanced types) and the distance between the type
centroids over the mean within-type spread.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .metrics import EvalConfig, EvalData, batches, model_device, sample_eval_tasks

Points = dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]


@torch.no_grad()
def context_latents(model: nn.Module, items, data: EvalData, batch_size: int = 100) -> np.ndarray:
    """z of every task's context -> (n_tasks, Z): the tensor ``personalize`` returns, or the
    mean of the posterior it returns."""
    was_training = model.training
    model.eval()
    out = []
    for batch in batches(items, data, batch_size, model_device(model)):
        z = model.personalize(batch.context_chosen, batch.context_rejected, batch.context_mask)
        if isinstance(z, torch.distributions.Distribution):
            z = z.mean
        out.append(z.reshape(z.shape[0], -1).float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


def collect_latents(models: Mapping[str, nn.Module], data: EvalData, config: EvalConfig,
                    sizes: Sequence[int]) -> Points:
    """``{model: {N^C: (z (n_tasks, Z), true types (n_tasks,))}}`` on the evaluation tasks."""
    tasks = sample_eval_tasks(data, config)
    out: Points = {}
    for name, model in models.items():
        out[name] = {}
        for n in sizes:
            items = tasks[n]
            out[name][n] = (context_latents(model, items, data, config.batch_size),
                            np.array([it.user_type for it in items]))
    return out


def pca_2d(blocks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Project every block (n_i, Z) onto the first two principal axes of all blocks together."""
    allz = np.concatenate(blocks).astype(np.float64)
    mean = allz.mean(0)
    _, _, vt = np.linalg.svd(allz - mean, full_matrices=False)
    axes = vt[:2].T
    if axes.shape[1] < 2:  # Z = 1: pad a zero axis so plots stay 2-D
        axes = np.concatenate([axes, np.zeros((axes.shape[0], 2 - axes.shape[1]))], axis=1)
    return [(b - mean) @ axes for b in blocks]


def separation(z: np.ndarray, types: np.ndarray) -> dict[str, float]:
    """Nearest-centroid accuracy of the true type from z (ties count 1/2) and the ratio of the
    mean centroid distance to the mean within-type distance to the own centroid."""
    keep = types >= 0
    z, types = z[keep].astype(np.float64), types[keep]
    labels = np.unique(types)
    if len(labels) < 2:
        return {"centroid_accuracy": float("nan"), "centroid_ratio": float("nan")}
    cents = np.stack([z[types == t].mean(0) for t in labels])
    dist = np.linalg.norm(z[:, None, :] - cents[None], axis=-1)  # (n, K)
    best = dist.min(1, keepdims=True)
    winners = np.isclose(dist, best, rtol=1e-9, atol=1e-12)
    own = np.searchsorted(labels, types)
    acc = float(np.mean(winners[np.arange(len(z)), own] / winners.sum(1)))
    within = float(np.mean(dist[np.arange(len(z)), own]))
    between = float(np.mean([np.linalg.norm(a - b) for i, a in enumerate(cents) for b in cents[i + 1:]]))
    return {"centroid_accuracy": acc, "centroid_ratio": between / within if within > 0 else float("nan")}


def latent_separation(points: Points) -> dict[str, dict[str, dict[str, float]]]:
    """``{model: {"<N>": separation(...)}}``."""
    return {name: {str(n): separation(z, t) for n, (z, t) in by_n.items()} for name, by_n in points.items()}


def plot_latents(models: Mapping[str, nn.Module], data: EvalData, config: EvalConfig, sizes: Sequence[int],
                 path: str | os.PathLike, names: Mapping[int, str] | None = None,
                 max_points: int = 300) -> Points:
    """A grid of PCA scatter plots (rows: models, columns: N^C) saved to ``path``; returns the
    latents it plotted (for :func:`latent_separation`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = collect_latents(models, data, config, sizes)
    names = dict(names or {})
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    fig = Figure(figsize=(3.0 * len(sizes), 2.9 * len(points)))
    FigureCanvasAgg(fig)
    for row, (name, by_n) in enumerate(points.items()):
        projected = pca_2d([by_n[n][0] for n in sizes])
        lim = max(float(np.abs(p).max()) for p in projected) * 1.1 or 1.0
        for col, (n, xy) in enumerate(zip(sizes, projected)):
            ax = fig.add_subplot(len(points), len(sizes), row * len(sizes) + col + 1)
            types = by_n[n][1]
            for k, t in enumerate(sorted(set(types.tolist()))):
                sel = np.flatnonzero(types == t)[:max_points]
                ax.scatter(xy[sel, 0], xy[sel, 1], s=7, alpha=0.6, color=colors[k % len(colors)],
                           label=names.get(int(t), f"type {t}"))
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}, $N^C$ = {n}", fontsize=9)
            if col == 0:
                ax.set_ylabel("PC 2")
                if row == 0:
                    ax.legend(fontsize=7, loc="upper left", markerscale=2)
            if row == len(points) - 1:
                ax.set_xlabel("PC 1")
    # layout first, then the title above it: a suptitle placed before tight_layout overlaps the panels
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.suptitle("context latents (PCA), coloured by the true user type", fontsize=10)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, out)
    return points
