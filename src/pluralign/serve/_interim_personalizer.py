"""A stand-in for :class:`pluralign.Personalizer` until that lands on main (COMMON.md interface);
:mod:`pluralign.serve.model` imports the real one when it exists. Deleted at integration."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class UserState:
    n_choices: int
    context_chosen: torch.Tensor
    context_rejected: torch.Tensor
    z: Any


@dataclass
class Ranked:
    index: int
    candidate: Any
    score: float
    spread: float | None = None


class Personalizer:
    def __init__(self, model, model_name: str, embedder) -> None:  # noqa: ANN001
        self.model, self.model_name, self.embedder = model, model_name, embedder
        self.has_latent = model_name in ("np-btl", "vpl")
        self.option_dim = model.config.option_dim

    @classmethod
    def from_pretrained(cls, run_dir, *, device: str = "cpu", cache_dir=None) -> "Personalizer":  # noqa: ANN001
        from ..features.embed import EmbedderConfig, load_embedder
        from ..rewards import RewardModel

        run = json.loads((Path(run_dir) / "run.json").read_text())
        model = RewardModel.from_pretrained(Path(run_dir) / "best", map_location=device)
        emb = run.get("embedder")
        embedder = None
        if emb is not None:
            overrides = {"cache_dir": str(cache_dir)} if cache_dir else {}
            embedder = load_embedder(EmbedderConfig(**{**emb, **overrides}))
            embedder.progress = False
        return cls(model, run["model"], embedder)

    def options(self, prompt, responses) -> torch.Tensor:  # noqa: ANN001
        if isinstance(responses, torch.Tensor):
            return responses.float()
        return self.embedder.embed([prompt] * len(responses), list(responses))

    @torch.no_grad()
    def user(self, choices) -> UserState:  # noqa: ANN001
        def get(c, k):  # noqa: ANN001, ANN202
            return c[k] if isinstance(c, dict) else getattr(c, k)
        d = self.option_dim
        if choices:
            ch = torch.cat([self.options(get(c, "prompt"), [get(c, "chosen")]) for c in choices])[None]
            rj = torch.cat([self.options(get(c, "prompt"), [get(c, "rejected")]) for c in choices])[None]
        else:
            ch = rj = torch.zeros(1, 0, d)
        mask = torch.ones(1, ch.shape[1], dtype=torch.bool)
        return UserState(len(choices), ch, rj, self.model.personalize(ch, rj, mask))

    @torch.no_grad()
    def score(self, prompt, candidates, users) -> torch.Tensor:  # noqa: ANN001
        opts = self.options(prompt, candidates)
        out = []
        for u in users:
            z = u.z.mean if isinstance(u.z, torch.distributions.Normal) else u.z
            out.append(self.model.reward(opts[None], z)[0])
        return torch.stack(out)

    def rank(self, prompt, candidates, user=None) -> list[Ranked]:  # noqa: ANN001
        s = self.score(prompt, candidates, [user or self.user([])])[0]
        order = torch.argsort(s, descending=True)
        return [Ranked(int(i), candidates[int(i)], float(s[i])) for i in order]
