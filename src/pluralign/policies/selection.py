"""Selection discipline for the policy experiments: tune on validation, report on test once.

Issue 16: every tuning decision of NP-DPO and CMPO (checkpoint, FiLM gain, encoder options,
feature views, decoding settings, step counts) is taken on validation users / prompts; the test
split is read by one final report step, for the configuration the config file names, with test
tasks drawn from a seed (``report.seed``) the tuning code never sees. This module makes that
structural rather than a convention:

* :class:`SealedSplit` stands in for the test split on the tuning path. Any use of it as data
  (iterating, ``len``, indexing, attribute access) raises :class:`TestSplitAccess`. It carries
  only the *prompt strings* of the held-out splits, because the NP-DPO encoder warm start must
  remove them from its extra training data (a leak guard, not a tuning signal).
* :func:`sealed` replaces a config's ``report`` section with a :class:`SealedSection`, so a
  tuning function handed that config cannot read ``report.seed`` (or anything else in it).
* :class:`SelectionLog` writes ``selection.json``: setting -> chosen value, every candidate's
  validation metric, the metric's name and the split it was computed on.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable, Mapping


class TestSplitAccess(RuntimeError):
    """Tuning code touched the test split or the report section (issue 16 selection discipline)."""

    __test__ = False  # not a pytest test class despite the name


class SealedSplit:
    """The test split as the tuning path sees it: unusable as data.

    ``held_out_prompts`` is the one thing exposed (a frozenset of prompt strings), so tuning
    data can *exclude* evaluation prompts without reading their records.
    """

    __slots__ = ("_name", "held_out_prompts")

    def __init__(self, name: str = "test", held_out_prompts: Iterable[str] = ()):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "held_out_prompts", frozenset(held_out_prompts))

    def _refuse(self, what: str) -> TestSplitAccess:
        return TestSplitAccess(f"the {self._name} split is sealed on the tuning path ({what}); only the "
                               f"report step reads it (docs: 'Selection discipline and seeds')")

    def __len__(self) -> int:
        raise self._refuse("len")

    def __iter__(self):
        raise self._refuse("iteration")

    def __getitem__(self, key: Any) -> Any:
        raise self._refuse(f"item {key!r}")

    def __bool__(self) -> bool:
        raise self._refuse("truth value")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy/pickle protocol probes: the ordinary answer
            raise AttributeError(name)
        raise self._refuse(f"attribute {name!r}")


class SealedSection:
    """A config section the tuning path may not read (``report``): every attribute raises."""

    __slots__ = ("_name",)

    def __init__(self, name: str = "report"):
        object.__setattr__(self, "_name", name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy/pickle protocol probes: the ordinary answer
            raise AttributeError(name)
        raise TestSplitAccess(f"config section {self._name!r} is sealed on the tuning path "
                              f"(tried to read {name!r}); only the report step reads it")

    def __repr__(self) -> str:  # asdict/json of a tuning config must not leak it either
        return f"<sealed {self._name}>"


def sealed(config: Any, section: str = "report") -> Any:
    """A shallow copy of the dataclass ``config`` whose ``section`` is a :class:`SealedSection`."""
    out = dataclasses.replace(config)
    object.__setattr__(out, section, SealedSection(section))
    return out


def public_dict(config: Any, section: str = "report") -> dict[str, Any]:
    """``asdict(config)`` without the sealed ``section`` (for config.json of a tuning run)."""
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != section}
    return {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in fields.items()}


def choose(scores: Mapping[Any, float], greater_is_better: bool = True) -> Any:
    """The key with the best score; ties go to the earliest candidate (the config's order), so
    the default listed first wins a tie."""
    if not scores:
        raise ValueError("no candidates to choose from")
    best_key, best = None, None
    for key, value in scores.items():
        if best is None or (value > best if greater_is_better else value < best):
            best_key, best = key, value
    return best_key


class SelectionLog:
    """What was chosen, on what: written to ``selection.json`` of a run folder.

    Each entry: ``{"value", "candidates": {repr(value) or a grid point's settings: metric},
    "metric", "split", "note"}``.
    """

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    def record(self, setting: str, value: Any, *, metric: str, split: str = "validation",
               candidates: Mapping[Any, float] | None = None, metric_value: float | None = None,
               note: str = "") -> None:
        if split == "test":
            raise TestSplitAccess(f"{setting}: a setting cannot be chosen on the test split")
        self.entries[setting] = {
            "value": value, "metric": metric, "split": split,
            "metric_value": metric_value if metric_value is not None else (
                None if not candidates else candidates.get(value)),
            "candidates": {str(k): v for k, v in (candidates or {}).items()}, "note": note}

    def fixed(self, setting: str, value: Any, note: str = "fixed in the config file, not tuned") -> None:
        """A setting taken from the config as is (no candidates, no metric)."""
        self.entries[setting] = {"value": value, "metric": None, "split": None, "metric_value": None,
                                 "candidates": {}, "note": note}

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": "chosen on validation only; the test split is read by the report step",
                "settings": self.entries}

    def write(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / "selection.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return path


def read_selection(run_dir: str | Path) -> dict[str, Any]:
    """``selection.json`` of a run folder (written by a select step), as setting -> value."""
    path = Path(run_dir) / "selection.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no selection.json; run the select step first")
    doc = json.loads(path.read_text())
    try:
        return {k: v["value"] for k, v in doc["settings"].items()}
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: malformed selection.json (field settings.*.value): {err}") from None
