"""A run's map from options to the vectors its reward model reads, saved with the run.

Reward models train on vectors (NP paper App. C.2: a frozen LM's representation of prompt +
response). For a text run that map is: the recorded frozen embedder
(:class:`pluralign.features.embed.Embedder`, through the keyed disk cache) then a per-feature
standardisation fitted on the training split (the text bench's default, which trains faster
than raw MiniLM vectors of scale ~0.05). Numeric runs pass vectors through unchanged.

:class:`OptionFeatures` records the embedder (``spec``: model id or folder, pooling, template,
max length, normalisation, dtype, fingerprint of the weights, dim) in ``run.json`` and the
standardisation in ``OUT/features.safetensors``, so everything that loads a run later (``pluralign
eval``, ``pluralign rank``, :class:`pluralign.Personalizer`) rebuilds the same map and never
needs the training data. A rebuilt embedder whose weights differ from the recorded fingerprint
is an error, not a silent change of inputs.

Texts longer than the encoder's ``max_length`` tokens are cut from the left (the start of the
prompt goes first, the end of the response is kept; :mod:`pluralign.features.embed`); this
module counts them and warns, naming the first one.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..data.records import PreferenceRecord, is_messages, is_vector

FEATURES_FILE = "features.safetensors"
#: --embedder names and the EmbedderConfig fields they stand for (anything else: a local folder)
EMBEDDERS: dict[str, dict[str, Any]] = {"minilm": {"model": "minilm"},
                                        "smollm2": {"model": "smollm2", "pooling": "last_token"}}
DEFAULT_EMBEDDER = "minilm"


class EmbedderError(ValueError):
    """An embedder name or folder that cannot be loaded, or one that differs from the run's."""


def embedder_spec(embedder: Any) -> dict[str, Any]:
    """What rebuilds ``embedder`` exactly (stored in ``run.json`` under ``features.embedder``)."""
    return {"model": embedder.model_id, "pooling": embedder.pooling, "template": embedder.template,
            "max_length": embedder.max_length, "normalize": embedder.normalize, "dtype": embedder.dtype,
            "padding_side": embedder.padding_side, "fingerprint": embedder.fingerprint,
            "dim": embedder.dim}


def open_embedder(name: str, *, max_length: int = 256, cache_dir: str | os.PathLike | None = None,
                  device: str = "cpu", where: str = "--embedder", **fields: Any) -> Any:
    """Load the embedder ``name`` (``minilm``, ``smollm2`` or a local Hugging Face folder).

    Raises :class:`EmbedderError` naming ``where`` when it is neither an alias nor a folder
    holding a model and a tokenizer.
    """
    from .embed import EmbedderConfig, load_embedder

    base = dict(EMBEDDERS.get(name.lower(), {}))
    if not base:
        folder = Path(name).expanduser()
        if not folder.is_dir():
            raise EmbedderError(f"{where} {name!r} is neither {' nor '.join(EMBEDDERS)} nor an existing folder")
        if not (folder / "config.json").is_file():
            raise EmbedderError(f"{where} {name!r}: {folder} has no config.json, so it is not a "
                                "Hugging Face model folder (save one with model.save_pretrained + "
                                "tokenizer.save_pretrained)")
        base = {"model": str(folder.resolve())}
    base.update({k: v for k, v in fields.items() if v is not None})
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Loading weights" bar on every load is noise here
    try:
        max_length = min(max_length, position_limit(base["model"], cache_dir))
        config = EmbedderConfig(**base, max_length=max_length, device=device,
                                cache_dir=str(cache_dir) if cache_dir is not None else None)
        embedder = load_embedder(config)
        tok = embedder.tokenizer
        if len(tok) <= len(set(tok.all_special_tokens)):
            # transformers builds a tokenizer of special tokens only from a folder without
            # tokenizer files: every text would become [UNK]s and embed alike
            raise EmbedderError(f"{where} {name!r}: the folder has model weights but no tokenizer "
                                f"(tokenizer.json, vocab.txt, ...): its {len(tok)} tokens are all special "
                                "ones; save the tokenizer into it with tokenizer.save_pretrained")
        return embedder
    except (OSError, ValueError, KeyError, TypeError) as err:
        if isinstance(err, EmbedderError):
            raise
        raise EmbedderError(f"{where} {name!r}: cannot load a model and tokenizer from it: "
                            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def position_limit(model: str, cache_dir: str | os.PathLike | None = None) -> int:
    """The most tokens the model can read (its position table), so texts are cut to it rather
    than crashing the model (e.g. a BERT with 128 positions under max_length 256)."""
    from transformers import AutoConfig

    from .offline import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(model))
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return int(limit) if limit else 1 << 30


def embedder_from_spec(spec: dict[str, Any], *, cache_dir: str | os.PathLike | None = None,
                       device: str = "cpu", where: str = "run") -> Any:
    """Rebuild a recorded embedder; its weights must match the recorded fingerprint."""
    emb = open_embedder(spec["model"], max_length=spec["max_length"], cache_dir=cache_dir, device=device,
                        where=f"{where}: recorded embedder", pooling=spec.get("pooling"),
                        template=spec.get("template"), normalize=spec.get("normalize"),
                        dtype=spec.get("dtype"), padding_side=spec.get("padding_side"))
    if spec.get("fingerprint") and emb.fingerprint != spec["fingerprint"]:
        raise EmbedderError(f"{where}: the embedder {spec['model']!r} has changed since the run was "
                            f"trained (weights {emb.fingerprint} != recorded {spec['fingerprint']}); "
                            "its vectors would not be the ones the model learned on")
    if spec.get("dim") is not None and emb.dim != spec["dim"]:
        raise EmbedderError(f"{where}: the embedder gives {emb.dim}-d vectors, the run recorded {spec['dim']}")
    return emb


def long_texts(embedder: Any, prompts: Sequence[Any], responses: Sequence[Any],
               checked: set[str] | None = None) -> list[int]:
    """Positions of the (prompt, response) options longer than the embedder's ``max_length``.
    Texts in ``checked`` are skipped and the new ones added: tokenising every candidate again
    on each call cost a served ranking ~10x the model's time (docs/serve.md)."""
    texts = [embedder.format(p, r) for p, r in zip(prompts, responses)]
    todo = [i for i, t in enumerate(texts) if checked is None or t not in checked]
    if not todo:
        return []
    ids = embedder.tokenizer([texts[i] for i in todo], add_special_tokens=embedder.template != "chat")["input_ids"]
    if checked is not None:
        if len(checked) > 100_000:
            checked.clear()
        checked.update(texts[i] for i in todo)
    return [i for i, x in zip(todo, ids) if len(x) > embedder.max_length]


def warn_truncated(n: int, total: int, max_length: int, first: str) -> None:
    warnings.warn(f"{n} of {total} option texts are longer than the encoder's limit of {max_length} "
                  f"tokens (first: {first}); they are cut from the left: the start of the prompt is "
                  "dropped and the end of the response kept", stacklevel=3)


@dataclass
class OptionFeatures:
    """Options -> model inputs: text through ``embedder`` then ``(v - mean) / std``; vectors as is.

    ``spec`` is None for numeric runs (and then ``mean``/``std`` are None too).
    """

    option_dim: int
    spec: dict[str, Any] | None = None
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None
    embedder: Any = field(default=None, repr=False)
    _checked: set[str] = field(default_factory=set, repr=False)  # texts already checked for length

    @property
    def is_text(self) -> bool:
        return self.spec is not None

    def transform(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.mean) / self.std if self.mean is not None else raw

    def embed(self, prompts: Sequence[Any], responses: Sequence[Any],
              describe: Callable[[int], str] | None = None) -> torch.Tensor:
        """(N, D) model inputs of N (prompt, response) text options (warns about truncation)."""
        long = long_texts(self.embedder, prompts, responses, self._checked)
        if long:
            warn_truncated(len(long), len(responses), self.embedder.max_length,
                           describe(long[0]) if describe else f"option {long[0]}")
        return self.transform(self.embedder.embed(list(prompts), list(responses)))

    def record_vectors(self, records: Sequence[PreferenceRecord],
                       describe: Callable[[int, str], str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen (P, D), rejected (P, D)) model inputs of records of this run's kind."""
        from ..data.tables import option_vectors

        if not records:
            raise ValueError("no records")
        numeric = records[0].is_numeric
        first = describe(0, "chosen") + ": " if describe else ""
        if numeric == self.is_text:
            have, want = ("numeric", "text") if numeric else ("text", "numeric")
            raise ValueError(f"{first}the records have {have} options but the run was trained on {want} options")
        if not self.is_text:
            chosen, rejected = option_vectors(records)
            if chosen.shape[1] != self.option_dim:
                raise ValueError(f"{first}the records' options have {chosen.shape[1]} features, the run's "
                                 f"model expects {self.option_dim}")
            return chosen, rejected
        prompts = [r.prompt for r in records for _ in (0, 1)]
        options = [o for r in records for o in (r.chosen, r.rejected)]
        what = (lambda i: describe(i // 2, ("chosen", "rejected")[i % 2])) if describe else None
        vectors = self.embed(prompts, options, what)
        return vectors[0::2], vectors[1::2]

    def same_as(self, other: "OptionFeatures") -> bool:
        """Whether two runs turn options into the same vectors."""
        if self.to_json() != other.to_json():
            return False
        return self.mean is None or (torch.equal(self.mean, other.mean) and torch.equal(self.std, other.std))

    # -- saving with a run ------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"kind": "text" if self.is_text else "numeric", "option_dim": self.option_dim,
                "embedder": self.spec, "standardize": FEATURES_FILE if self.mean is not None else None}

    def save(self, run_dir: str | os.PathLike) -> dict[str, Any]:
        """Write the standardisation to ``run_dir`` (if any); returns the ``run.json`` entry."""
        if self.mean is not None:
            from safetensors.torch import save_file

            path = Path(run_dir) / FEATURES_FILE
            tmp = path.with_name(f".{path.name}.tmp")
            save_file({"mean": self.mean.contiguous(), "std": self.std.contiguous()}, str(tmp))
            os.replace(tmp, path)
        return self.to_json()

    @classmethod
    def load(cls, run_dir: str | os.PathLike, entry: dict[str, Any] | None, option_dim: int, *,
             cache_dir: str | os.PathLike | None = None, device: str = "cpu") -> "OptionFeatures":
        """The map a run recorded (``entry`` = ``run.json["features"]``; None: a numeric run
        from before features were recorded)."""
        if not entry or entry.get("kind") == "numeric":
            return cls(option_dim)
        mean = std = None
        if entry.get("standardize"):
            from safetensors.torch import load_file

            path = Path(run_dir) / entry["standardize"]
            if not path.is_file():
                raise FileNotFoundError(f"{run_dir}: the run's standardisation {path.name} is missing")
            stats = load_file(str(path))
            mean, std = stats["mean"], stats["std"]
        emb = embedder_from_spec(entry["embedder"], cache_dir=cache_dir, device=device, where=str(run_dir))
        return cls(option_dim, entry["embedder"], mean, std, emb)


def fit_features(records: Sequence[PreferenceRecord], embedder: Any = None, *, standardize: bool = True,
                 describe: Callable[[int, str], str] | None = None
                 ) -> tuple[OptionFeatures, torch.Tensor, torch.Tensor]:
    """Embed every record (text) or read its vectors (numeric) and fit the standardisation on
    the ``train`` split. Returns ``(features, chosen (P, D), rejected (P, D))`` of model inputs."""
    from ..data.tables import option_vectors

    if records[0].is_numeric:
        chosen, rejected = option_vectors(records)
        return OptionFeatures(int(chosen.shape[1])), chosen, rejected
    if embedder is None:
        raise ValueError("text records need an embedder")
    raw = OptionFeatures(embedder.dim, embedder_spec(embedder), embedder=embedder)
    chosen, rejected = raw.record_vectors(records, describe)
    mean = std = None
    if standardize:
        train = torch.tensor([r.split == "train" for r in records])
        both = torch.cat([chosen[train], rejected[train]])
        mean, std = both.mean(0), both.std(0).clamp(min=1e-6)
    feats = OptionFeatures(embedder.dim, raw.spec, mean, std, embedder)
    return feats, feats.transform(chosen), feats.transform(rejected)


def option_kind(value: Any) -> str | None:
    """``vector``, ``text`` (a string or chat messages) or None."""
    if is_vector(value):
        return "vector"
    if isinstance(value, str) or is_messages(value):
        return "text"
    return None
