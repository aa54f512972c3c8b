"""Option vectors for the text bench: records -> frozen-encoder embeddings (cached on disk) ->
standardisation (and optionally a principal-axes projection) fitted on the training split.

Split from :mod:`pluralign.eval.text_bench`, which runs the whole bench; the demo
(:mod:`pluralign.eval.showcase`) reuses :meth:`Features.transform` on new candidates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..data.records import PreferenceRecord
from .text_config import TextBenchConfig

ENCODERS = {"minilm": {"model": "minilm"}, "smollm2": {"model": "smollm2", "pooling": "last_token"}}


@dataclass
class Features:
    """Option vectors of the records (row i = record i) and how they were made.

    ``mean``/``std`` standardise raw encoder vectors and ``axes`` (D, k), when set, project
    them onto the top-k principal axes (all fitted on the training split); :meth:`transform`
    applies the same map to new options (e.g. the demo's candidates).
    """

    chosen: torch.Tensor
    rejected: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    axes: torch.Tensor | None = None
    embedder: Any = None
    stats: dict[str, Any] = field(default_factory=dict)

    def transform(self, raw: torch.Tensor) -> torch.Tensor:
        x = (raw - self.mean) / self.std
        return x @ self.axes if self.axes is not None else x


def make_embedder(cfg: TextBenchConfig):
    """The frozen encoder ``cfg.encoder`` with the disk cache (nothing is downloaded for the
    offline aliases)."""
    from ..features.embed import EmbedderConfig, load_embedder

    fields = dict(ENCODERS.get(cfg.encoder, {"model": cfg.encoder}))
    return load_embedder(EmbedderConfig(**fields, max_length=cfg.max_length,
                                        batch_size=cfg.embed_batch_size, cache_dir=cfg.cache_dir))


def featurize(records: list[PreferenceRecord], cfg: TextBenchConfig, embedder: Any = None,
              log: Callable[[str], None] = print) -> Features:
    """Embed text records (or take numeric ones as they are) and standardise on the training split."""
    t0 = time.perf_counter()
    stats: dict[str, Any] = {}
    if all(r.is_numeric for r in records):
        from ..data.tables import option_vectors

        chosen, rejected = option_vectors(records)
        stats["encoder"] = None
    else:
        from ..features.embed import embed_records

        embedder = embedder if embedder is not None else make_embedder(cfg)
        calls0, texts0 = embedder.n_forward, embedder.n_computed
        chosen, rejected = embed_records(records, embedder)
        stats = {"encoder": embedder.model_id, "pooling": embedder.pooling, "template": embedder.template,
                 "dim": int(chosen.shape[1]), "texts_computed": embedder.n_computed - texts0,
                 "model_calls": embedder.n_forward - calls0,
                 "cache": str(embedder.cache.dir) if getattr(embedder, "cache", None) is not None else None}
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    train = torch.tensor([r.split == "train" for r in records])
    if not bool(train.any()):
        raise ValueError("no training records (split 'train') to fit the feature standardisation on")
    both = torch.cat([chosen[train], rejected[train]])
    mean, std = torch.zeros(chosen.shape[1]), torch.ones(chosen.shape[1])
    if cfg.standardize:
        mean, std = both.mean(0), both.std(0).clamp(min=1e-6)
    axes = None
    if cfg.project_dim is not None and cfg.project_dim < chosen.shape[1]:
        # principal axes of the (distinct) standardised training options: a cheaper input for
        # the reward MLPs that keeps most of the variance (stats record how much)
        x = torch.unique((both - mean) / std, dim=0).double()
        _, s, vt = torch.linalg.svd(x - x.mean(0), full_matrices=False)
        axes = vt[: cfg.project_dim].T.float()
        stats["projected_dim"] = cfg.project_dim
        stats["variance_kept"] = round(float((s[: cfg.project_dim] ** 2).sum() / (s ** 2).sum()), 4)
    feats = Features(chosen, rejected, mean, std, axes, embedder, stats)
    feats.chosen, feats.rejected = feats.transform(chosen), feats.transform(rejected)
    if stats.get("encoder"):
        log(f"embedded {len(records)} pairs with {stats['encoder']} ({stats['pooling']} pooling): "
            f"{stats['texts_computed']} texts computed, {stats['model_calls']} model calls, {stats['seconds']}s")
    return feats


def vector_records(records: list[PreferenceRecord], feats: Features) -> list[PreferenceRecord]:
    from ..features.embed import attach_vectors

    return attach_vectors(records, feats.chosen, feats.rejected)
