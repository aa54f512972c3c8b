"""Using a trained reward model: personalise to a new person from a few of their choices, then
rank candidate responses for them (issue 11, item 4).

    p = Personalizer.from_pretrained("run")            # a folder written by `pluralign train`
    u = p.user([{"prompt": ..., "chosen": ..., "rejected": ...}, ...])
    p.rank("How do I boil an egg?", ["...", "..."], user=u)   # best first, with scores

This is the NP paper's use of a conditional reward model (§3.1, eq. 4-7): the user's choices
are the context D^C, the model's set encoder turns them into z (``personalize``), and each
candidate y is scored r(y | z). VPL's z is the posterior q(z | D^C) (VPL §3); the score is
r(y | E[z]) as in evaluation, and the *spread* is the standard deviation of r(y | z) over
samples z ~ q, i.e. how unsure the model still is about this person. BTL and DPL have no z:
they rank the same for everyone (``has_latent`` is False) whatever the choices.

Loading a run needs only the run folder: ``run.json``, ``best/`` and, for text runs, the
recorded embedder (rebuilt from its alias or folder and checked against the recorded
fingerprint) and ``features.safetensors`` (:mod:`pluralign.features.options`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch.distributions import Normal

from .data.records import PreferenceRecord
from .features.options import OptionFeatures, option_kind
from .rewards import PreparedCandidates, RewardModel

RUN_FILE = "run.json"  # the same name pluralign.train.rewards writes (not imported: no training deps)
SPREAD_SAMPLES = 256
PREPARED_CACHE = 64  # candidate sets whose user-independent part is kept (least recently used out)


class RunFolderError(ValueError):
    """A folder that is not a reward-model run, or whose parts disagree."""


@dataclass
class UserState:
    """One person's few choices, personalised: the context D^C and z = model.personalize(D^C)."""

    n_choices: int
    context_chosen: torch.Tensor  # (1, C, D) model inputs of the chosen options (C may be 0)
    context_rejected: torch.Tensor  # (1, C, D)
    z: torch.Tensor | Normal  # (1, z_dim) tensor; VPL: Normal q(z | D^C); (1, 0) for btl/dpl


@dataclass
class Ranked:
    """One candidate in a ranking: its position in the input, itself, r(y | z) and (VPL) the
    posterior standard deviation of r(y | z)."""

    index: int
    candidate: Any
    score: float
    spread: float | None = None


def read_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``run.json`` of a run folder, or :class:`RunFolderError` saying why it is not one."""
    run = Path(run_dir)
    if not run.is_dir():
        raise RunFolderError(f"{run}: no such folder")
    path = run / RUN_FILE
    if not path.is_file():
        hint = (f" (it is a checkpoint of the run {run.parent}: give that folder)"
                if (run.parent / RUN_FILE).is_file() else "")
        raise RunFolderError(f"{run}: no {RUN_FILE}; not a folder written by `pluralign train`{hint}")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RunFolderError(f"{path}: invalid JSON ({err.msg}, line {err.lineno})") from err
    if not isinstance(meta, dict) or "model" not in meta:
        raise RunFolderError(f"{path}: no 'model' field; not a reward-model run")
    return meta


class Personalizer:
    """A trained reward model with the map from options to its inputs (see the module docstring).

    Attributes: ``model`` (eval mode), ``model_name``, ``has_latent`` (False: ranks the same for
    everyone), ``option_dim``, ``embedder`` (None for numeric runs), ``features``, ``run``
    (``run.json``).
    """

    def __init__(self, model: RewardModel, features: OptionFeatures, run: Mapping[str, Any] | None = None):
        self.model = model.eval()
        self.model_name: str = model.name
        self.has_latent: bool = model.uses_latent
        self.option_dim: int = int(model.config.option_dim)
        self.features = features
        self.embedder = features.embedder
        self.run = dict(run or {})
        if features.option_dim != self.option_dim:
            raise RunFolderError(f"the run's features have {features.option_dim} dimensions, the "
                                 f"model expects {self.option_dim}")
        # candidate sets seen before, keyed by content: the model's prepare_candidates (for
        # NP-BTL/VPL the option half of the decoder) is computed once per set, not per ranking
        self._prepared: OrderedDict[Any, PreparedCandidates] = OrderedDict()
        self._last_tensor: tuple[torch.Tensor, int, Any] | None = None

    @classmethod
    def from_pretrained(cls, run_dir: str | os.PathLike, *, device: str = "cpu",
                        cache_dir: str | os.PathLike | None = None) -> "Personalizer":
        """Load ``run_dir/best``, ``run.json`` and the run's embedder (never the training data).
        ``cache_dir``: embedding cache root (None: ``$PLURALIGN_CACHE/embeddings``)."""
        from .checkpoint import CheckpointError

        meta = read_run(run_dir)
        try:
            model = RewardModel.from_pretrained(Path(run_dir) / "best", map_location=device)
        except CheckpointError as err:
            raise RunFolderError(f"{run_dir}: {err}") from err
        if model.name != meta["model"]:
            raise RunFolderError(f"{run_dir}: {RUN_FILE} says {meta['model']!r} but best/ holds a "
                                 f"{model.name!r} model")
        recorded = meta.get("model_config") or {}
        have = json.loads(json.dumps(model.config.to_dict(), default=list))  # as run.json holds it
        differ = sorted(k for k, v in have.items() if k in recorded and recorded[k] != v)
        if differ:
            k = differ[0]
            raise RunFolderError(f"{run_dir}: best/ holds another run's model: {RUN_FILE} records "
                                 f"{k} = {recorded[k]!r}, best/ has {have[k]!r}"
                                 + (f" (and {len(differ) - 1} more)" if len(differ) > 1 else ""))
        feats = OptionFeatures.load(run_dir, meta.get("features"), model.config.option_dim,
                                    cache_dir=cache_dir, device=device)
        return cls(model, feats, meta)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- options ------------------------------------------------------------------------------
    def options(self, prompt: Any, responses: Sequence[Any] | torch.Tensor,
                describe: Callable[[int], str] | None = None) -> torch.Tensor:
        """(N, D) model inputs: text responses (to ``prompt``) are embedded through the keyed
        cache and standardised as in training; vectors pass through. ``describe(i)`` names
        response i in messages (default ``candidate i``; the CLI: ``FILE:LINE``)."""
        where = describe or (lambda i: f"candidate {i}")
        if isinstance(responses, torch.Tensor):
            vectors = responses.float().reshape(len(responses), -1)
        else:
            responses = list(responses)
            if not responses:
                raise ValueError("no candidates")
            kinds = [option_kind(r) for r in responses]
            if None in kinds:
                bad = kinds.index(None)
                raise ValueError(f"{where(bad)}: expected text, chat messages or a numeric vector, "
                                 f"got {type(responses[bad]).__name__}")
            want = "text" if self.features.is_text else "vector"
            if want not in kinds or len(set(kinds)) > 1:
                bad = next(i for i, k in enumerate(kinds) if k != want)
                raise ValueError(f"{where(bad)}: " + (
                    "a numeric vector, but this run was trained on text options; give candidates as text"
                    if want == "text" else "text, but this run was trained on numeric options; give "
                    f"candidates as vectors of {self.option_dim} numbers"))
            if want == "text":
                empty = [i for i, r in enumerate(responses) if isinstance(r, str) and not r.strip()]
                if empty:
                    raise ValueError(f"{where(empty[0])}: empty text")
                prompts = [prompt if prompt is not None else ""] * len(responses)
                return self.features.embed(prompts, responses, where).to(self.device)
            bad = next((i for i, r in enumerate(responses) if len(r) != self.option_dim), None)
            if bad is not None:
                raise ValueError(f"{where(bad)}: a vector of {len(responses[bad])} numbers; the model "
                                 f"expects {self.option_dim}")
            vectors = torch.tensor([[float(v) for v in r] for r in responses])
        if vectors.shape[1] != self.option_dim:
            raise ValueError(f"candidates have {vectors.shape[1]} features, the model expects {self.option_dim}")
        return self.features.transform(vectors).to(self.device)

    def prepared(self, prompt: Any, candidates: Sequence[Any] | torch.Tensor,
                 describe: Callable[[int], str] | None = None) -> PreparedCandidates:
        """``model.prepare_candidates(options(prompt, candidates))``, reused for a candidate set
        seen before (same prompt and texts, or the same vectors; the last
        :data:`PREPARED_CACHE` sets are kept). ``describe``: as for :meth:`options`."""
        key = self._candidates_key(prompt, candidates)
        hit = self._prepared.get(key)
        if hit is not None:
            self._prepared.move_to_end(key)
            return hit
        with torch.no_grad():
            prepared = self.model.prepare_candidates(self.options(prompt, candidates, describe))
        self._prepared[key] = prepared
        while len(self._prepared) > PREPARED_CACHE:
            self._prepared.popitem(last=False)
        return prepared

    def _candidates_key(self, prompt: Any, candidates: Sequence[Any] | torch.Tensor) -> Any:
        if isinstance(candidates, torch.Tensor):
            last = self._last_tensor  # the same tensor object, not modified since: no re-hash
            if last is not None and last[0] is candidates and last[1] == candidates._version:
                return last[2]
            data = candidates.detach().to("cpu", torch.float32).contiguous().numpy()
            key = ("vectors", data.shape, hashlib.blake2b(data.tobytes(), digest_size=16).hexdigest())
            self._last_tensor = (candidates, candidates._version, key)
            return key
        items = list(candidates)
        if items and all(isinstance(c, str) for c in items):
            return ("text", json.dumps(prompt), tuple(items))
        return ("items", json.dumps([prompt if any(option_kind(c) != "vector" for c in items) else None, items]))

    def clear_prepared(self) -> None:
        """Forget prepared candidate sets (after changing the model's weights in place)."""
        self._prepared.clear()
        self._last_tensor = None

    def _choice_vectors(self, choices: Sequence[Any], describe: Callable[[int, str], str] | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen, rejected) model inputs of choices; ``describe(i, field)`` names choice i's
        field in messages (default ``choice i: field 'f'``; the CLI: ``FILE:LINE: field 'f'``)."""
        where = describe or (lambda i, name: f"choice {i}: field {name!r}")
        prompts, chosen, rejected = [], [], []
        for i, c in enumerate(choices):
            if isinstance(c, PreferenceRecord):
                c = {"prompt": c.prompt, "chosen": c.chosen, "rejected": c.rejected}
            if not isinstance(c, Mapping):
                raise ValueError(f"{where(i, '<row>')}: expected a record or a dict with prompt/chosen/"
                                 f"rejected, got {type(c).__name__}")
            for name in ("chosen", "rejected"):
                value = c.get(name)
                if option_kind(value) is None:
                    raise ValueError(f"{where(i, name)}: " + ("missing" if value is None else
                                     f"must be text, chat messages or a vector, got {type(value).__name__}"))
                if isinstance(value, str) and not value.strip():
                    raise ValueError(f"{where(i, name)}: empty text")
            prompts.append(c.get("prompt") or "")
            chosen.append(c["chosen"])
            rejected.append(c["rejected"])
        both = [o for pair in zip(chosen, rejected) for o in pair]
        want = "text" if self.features.is_text else "vector"
        for k, o in enumerate(both):
            at = where(k // 2, ("chosen", "rejected")[k % 2])
            if option_kind(o) != want:
                raise ValueError(f"{at}: " + (
                    "a numeric vector, but this run was trained on text options" if want == "text" else
                    f"text, but this run was trained on numeric options ({self.option_dim} numbers each)"))
            if want == "vector" and len(o) != self.option_dim:
                raise ValueError(f"{at}: a vector of {len(o)} numbers; the model expects {self.option_dim}")
        if want == "text":
            v = self.features.embed([p for p in prompts for _ in (0, 1)], both,
                                    lambda k: where(k // 2, ("chosen", "rejected")[k % 2])).to(self.device)
        else:
            v = self.options(None, both)
        return v[0::2], v[1::2]

    # -- people -------------------------------------------------------------------------------
    @torch.no_grad()
    def user(self, choices: Sequence[Any] = (), describe: Callable[[int, str], str] | None = None) -> UserState:
        """Personalise to one person from their choices (records or dicts with ``prompt``,
        ``chosen``, ``rejected``; ``[]`` = nobody known yet, the population prior).
        ``describe(i, field)`` names choice i's field in errors and warnings (e.g. its file
        and line; default ``choice i: field 'f'``)."""
        choices = list(choices)
        if choices:
            cc, cr = self._choice_vectors(choices, describe)
        else:
            cc = cr = torch.zeros(0, self.option_dim, device=self.device)
        cc, cr = cc.unsqueeze(0), cr.unsqueeze(0)
        mask = torch.ones(1, cc.shape[1], dtype=torch.bool, device=self.device)
        return UserState(len(choices), cc, cr, self.model.personalize(cc, cr, mask))

    @staticmethod
    def _stack_z(users: Sequence[UserState]) -> torch.Tensor | Normal:
        zs = [u.z for u in users]
        if all(isinstance(z, Normal) for z in zs):
            return Normal(torch.cat([z.loc for z in zs]), torch.cat([z.scale for z in zs]))
        if any(isinstance(z, Normal) for z in zs):
            raise ValueError("users personalised by different models")
        return torch.cat(zs)

    @torch.no_grad()
    def score(self, prompt: Any, candidates: Sequence[Any] | torch.Tensor,
              users: Sequence[UserState]) -> torch.Tensor:
        """r(candidate | z_user) for every user and candidate in one batch: (U, N)."""
        users = list(users)
        if not users:
            raise ValueError("no users")
        prepared = self.prepared(prompt, candidates)
        return self.model.score_candidates(prepared, self._stack_z(users)).cpu()

    @torch.no_grad()
    def spread(self, prompt: Any, candidates: Sequence[Any] | torch.Tensor, users: Sequence[UserState],
               n_samples: int = SPREAD_SAMPLES, seed: int = 0) -> torch.Tensor | None:
        """VPL: the standard deviation of r(candidate | z) over z ~ q(z | choices), (U, N);
        None for models without a posterior."""
        users = list(users)
        z = self._stack_z(users)
        if not isinstance(z, Normal):
            return None
        prepared = self.prepared(prompt, candidates)
        gen = torch.Generator(device=z.loc.device).manual_seed(seed)
        eps = torch.randn((n_samples,) + tuple(z.loc.shape), generator=gen, device=z.loc.device)
        samples = (z.loc + z.scale * eps).reshape(-1, z.loc.shape[-1])  # (S*U, L)
        r = self.model.score_candidates(prepared, samples).reshape(n_samples, len(users), -1)
        return r.std(0).cpu()

    def rank(self, prompt: Any, candidates: Sequence[Any] | torch.Tensor,
             user: UserState | None = None) -> list[Ranked]:
        """``candidates`` sorted best first for ``user`` (None: nobody known yet), with scores
        (and VPL's spread). BTL/DPL give the same order for everyone."""
        user = user if user is not None else self.user([])
        scores = self.score(prompt, candidates, [user])[0]
        spread = self.spread(prompt, candidates, [user])
        order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
        return [Ranked(i, candidates[i], float(scores[i]), None if spread is None else float(spread[0, i]))
                for i in order]

    def next_question(self, user: UserState, pool: Sequence[Any] | torch.Tensor, **kwargs: Any) -> tuple[int, Any]:
        """(index, item) of the pool pair to ask ``user`` next: the one whose answer tells the
        most about them (VPL App. B; :func:`pluralign.active.questions.next_question`, whose
        keywords ``strategy``, ``exclude``, ``particles`` (NP-BTL), ``seed`` pass through).
        Pool items: ``{"prompt", "a", "b"}`` dicts or ``(prompt, a, b)``; vectors for numeric runs."""
        from .active.questions import next_question

        return next_question(self, user, pool, **kwargs)

    def __repr__(self) -> str:
        kind = f"text via {self.features.spec['model']}" if self.features.is_text else "numeric"
        return f"Personalizer({self.model_name}, {kind}, option_dim={self.option_dim})"
