"""Policy run folders: what kind a folder is, and loading a steerable policy from it without
its training data (the IO half of :mod:`.steering`; the models never read files).

What the trainers write:

- NP-DPO (``pluralign policy train --out RUN``): ``RUN/best/`` = :meth:`NPDPOPolicy.save_pretrained`
  (``config.json`` of kind ``np-dpo-policy`` with the base model and the context embedder, and
  ``model.safetensors`` with LoRA, FiLM and the set encoder). ``pluralign policy experiment``
  writes the same under ``RUN/np-dpo/best/``. The base LM and the embedder are read from the
  local folders or offline aliases the checkpoint names; nothing is downloaded.
- CMPO (``pluralign cmpo train --out RUN``): ``RUN/cmpo/model/`` = :meth:`PluralLM.save_pretrained`
  (kind ``cmpo-plural-policy``), ``RUN/experiment.json`` (beta, max_length, ...) and, after
  ``pluralign cmpo eval`` / ``select``, ``RUN/fewshot/model/`` (kind ``cmpo-fewshot-weights``).
- A reward model (``pluralign train``): ``RUN/run.json`` (:mod:`pluralign.personalizer`).

A policy checkpoint folder itself (``.../best`` or ``.../cmpo/model``) is accepted too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..checkpoint import CONFIG_NAME

KINDS = ("reward-model", "np-dpo", "cmpo")
_POLICY_KINDS = {"np-dpo-policy": "np-dpo", "cmpo-plural-policy": "cmpo"}


class PolicyRunError(ValueError):
    """A folder that is no run this package can serve, or whose parts are missing."""


def _checkpoint_kind(folder: Path) -> str | None:
    path = folder / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise PolicyRunError(f"{path}: invalid JSON ({err.msg}, line {err.lineno})") from err
    return raw.get("kind") if isinstance(raw, dict) else None


def find_run(run_dir: str | os.PathLike) -> tuple[str, Path]:
    """(kind, folder): ``reward-model`` and the run folder, or ``np-dpo`` / ``cmpo`` and the
    policy checkpoint folder inside it; :class:`PolicyRunError` naming what was looked for."""
    run = Path(run_dir)
    if not run.is_dir():
        raise PolicyRunError(f"{run}: no such folder")
    if (run / "run.json").is_file():
        return "reward-model", run
    for folder in (run, run / "best", run / "np-dpo" / "best", run / "cmpo" / "model"):
        kind = _checkpoint_kind(folder) if folder.is_dir() else None
        if kind in _POLICY_KINDS:
            return _POLICY_KINDS[kind], folder
    raise PolicyRunError(f"{run}: not a run folder: no run.json (a reward model from `pluralign train`), "
                         "no best/ or np-dpo/best/ with an NP-DPO policy (`pluralign policy train`), "
                         "no cmpo/model/ (`pluralign cmpo train`)")


def load_policy(run_dir: str | os.PathLike, *, base: Any = None, embedder_cache_dir: str | os.PathLike | None = None
                ) -> Any:
    """The steerable policy of an NP-DPO or CMPO run (:class:`.steering.SteeredNPDPO` or
    :class:`.steering.SteeredCMPO`). ``base``: a base LM to use instead of the recorded one."""
    kind, folder = find_run(run_dir)
    if kind == "np-dpo":
        return _load_np_dpo(folder, base, embedder_cache_dir)
    if kind == "cmpo":
        return _load_cmpo(folder, base)
    raise PolicyRunError(f"{run_dir}: a reward-model run, not a policy (load it with pluralign.Personalizer)")


def _tokenizer(base_model: str, where: Path) -> Any:
    from transformers import AutoTokenizer

    from ..features.offline import resolve_model

    if not base_model:
        raise PolicyRunError(f"{where}: the checkpoint records no base_model, so its tokenizer is unknown")
    try:
        tok = AutoTokenizer.from_pretrained(resolve_model(base_model), local_files_only=True)
    except (OSError, ValueError) as err:
        raise PolicyRunError(f"{where}: cannot load the tokenizer of base model {base_model!r}: {err}") from err
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _load_np_dpo(folder: Path, base: Any, cache_dir: str | os.PathLike | None) -> Any:
    from .np_dpo.policy import NPDPOPolicy
    from .steering import SteeredNPDPO

    policy = NPDPOPolicy.from_pretrained(folder, base=base)
    embedder = None
    if policy.film is not None:
        from ..features.embed import load_embedder

        name = policy.config.context_embedder
        try:
            embedder = load_embedder(model=name, **({"cache_dir": str(cache_dir)} if cache_dir else {}))
        except OSError as err:
            raise PolicyRunError(f"{folder}: cannot load the context embedder {name!r}: {err}") from err
        embedder.progress = False
    return SteeredNPDPO(policy, _tokenizer(policy.config.base_model, folder), embedder)


def _load_cmpo(folder: Path, base: Any) -> Any:
    from .cmpo.fewshot import FewShotWeights
    from .cmpo.plural_heads import PluralLM
    from .steering import SteeredCMPO

    model = PluralLM.from_pretrained(folder, base=base)
    run = folder.parent.parent if folder.name == "model" and folder.parent.name == "cmpo" else None
    beta, max_length, fewshot = 0.5, 96, None  # CMPOExperimentConfig's defaults
    if run is not None and (run / "experiment.json").is_file():
        meta = json.loads((run / "experiment.json").read_text())
        beta, max_length = float(meta.get("beta", beta)), int(meta.get("max_length", max_length))
    if run is not None and _checkpoint_kind(run / "fewshot" / "model") == "cmpo-fewshot-weights":
        fewshot = FewShotWeights.from_pretrained(run / "fewshot" / "model")
    return SteeredCMPO(model, _tokenizer(model.config.base_model, folder), fewshot, beta=beta,
                       max_length=max_length)
