"""Preference records: the one typed row every reader, builder and generator produces.

A record is one user's choice between two options for one prompt (DESIGN.md §2). Options are
text (TRL's plain format), a list of chat messages (TRL's conversational format) or a numeric
vector (synthetic data, or precomputed embeddings). ``chosen`` is always the preferred option.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Union

Message = dict[str, str]
Option = Union[str, list[float], list[Message]]
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one row: where it is and what is wrong."""

    file: str
    line: int  # 1-based line (JSONL) or row (Parquet / Dataset)
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: field '{self.field}': {self.message}"


class RecordValidationError(ValueError):
    """Raised with every problem found, so a user can fix a file in one pass."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        head = f"{len(problems)} problem(s) in preference records:"
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{head}\n{shown}{more}")


@dataclass(frozen=True)
class PreferenceRecord:
    """One preference: ``user_id`` chose ``chosen`` over ``rejected`` for ``prompt``.

    ``attributes`` maps an attribute name to ``[score_of_chosen, score_of_rejected]``.
    ``user_latent`` is the ground-truth user type (an int) or weight vector of simulated users.
    ``pair_id`` names the underlying pair of options, shared by every user who labelled it, so
    splits can keep a pair (and its labels by all users) on one side.
    """

    user_id: str
    prompt: str | list[Message]
    chosen: Option
    rejected: Option
    attributes: dict[str, list[float]] | None = None
    split: str | None = None
    user_latent: int | list[float] | None = None
    pair_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_numeric(self) -> bool:
        return is_vector(self.chosen)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict without empty optional fields (shallow: nested lists/dicts are shared;
        dataclasses.asdict's deep copy dominated writing large files)."""
        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: v for k, v in row.items() if v is not None and v != {}}

    def replace(self, **changes: Any) -> "PreferenceRecord":
        # shallow (dataclasses.replace): asdict's deep copy made splitting 40k records slow
        return dataclasses.replace(self, **changes)


def is_vector(option: Any) -> bool:
    return isinstance(option, (list, tuple)) and len(option) > 0 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in option
    )


def is_messages(option: Any) -> bool:
    return isinstance(option, (list, tuple)) and len(option) > 0 and all(
        isinstance(m, dict) and isinstance(m.get("content"), str) for m in option
    )


def option_text(option: Option) -> str:
    """The text of an option: the string itself, or the last message's content."""
    if isinstance(option, str):
        return option
    if is_messages(option):
        return option[-1]["content"]  # type: ignore[index]
    raise TypeError("numeric options have no text")


def prompt_text(prompt: str | list[Message]) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(m["content"] for m in prompt)


def _check_option(value: Any, name: str, loc: tuple[str, int], out: list[Problem]) -> str | None:
    """Return the option's kind ('text', 'messages', 'vector') or None after logging a problem."""
    file, line = loc
    if isinstance(value, str):
        if not value.strip():
            out.append(Problem(file, line, name, "empty text"))
            return None
        return "text"
    if is_vector(value):
        if any(isinstance(v, float) and not math.isfinite(v) for v in value):
            out.append(Problem(file, line, name, "vector contains NaN or infinity"))
            return None
        return "vector"
    if is_messages(value):
        return "messages"
    if value is None:
        out.append(Problem(file, line, name, "missing"))
    else:
        out.append(Problem(file, line, name,
                           f"expected text, chat messages or a numeric vector, got {type(value).__name__}"))
    return None


def _normalise_attributes(value: Any, loc: tuple[str, int], out: list[Problem]) -> dict | None:
    """Accept ``{"a": [c, r]}`` or ``{"chosen": {"a": c}, "rejected": {"a": r}}``."""
    file, line = loc
    if value is None:
        return None
    if not isinstance(value, dict):
        out.append(Problem(file, line, "attributes", f"expected a mapping, got {type(value).__name__}"))
        return None
    if set(value) == {"chosen", "rejected"} and all(isinstance(v, dict) for v in value.values()):
        names = sorted(set(value["chosen"]) | set(value["rejected"]))
        missing = [n for n in names if n not in value["chosen"] or n not in value["rejected"]]
        if missing:
            out.append(Problem(file, line, "attributes", f"scores for both options needed: {missing}"))
            return None
        value = {n: [value["chosen"][n], value["rejected"][n]] for n in names}
    result: dict[str, list[float]] = {}
    for name, pair in value.items():
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2 and all(
            isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) for s in pair)
        if not ok:
            out.append(Problem(file, line, f"attributes.{name}",
                               "expected [score_of_chosen, score_of_rejected] of finite numbers"))
            continue
        result[str(name)] = [float(pair[0]), float(pair[1])]
    return result


def parse_record(row: Any, file: str = "<memory>", line: int = 0,
                 problems: list[Problem] | None = None) -> PreferenceRecord | None:
    """Validate one raw row and build a record; problems are appended to ``problems``.

    Returns None when the row has any problem. Raises RecordValidationError if ``problems`` is None.
    """
    out: list[Problem] = [] if problems is None else problems
    before = len(out)
    loc = (file, line)
    if not isinstance(row, dict):
        out.append(Problem(file, line, "<row>", f"expected an object, got {type(row).__name__}"))
    else:
        user = row.get("user_id")
        if user is None or (isinstance(user, str) and not user.strip()):
            out.append(Problem(file, line, "user_id", "missing"))
        elif not isinstance(user, (str, int)) or isinstance(user, bool):
            out.append(Problem(file, line, "user_id", f"expected text or integer, got {type(user).__name__}"))
        prompt = row.get("prompt", "")
        if prompt is None:
            prompt = ""
        if not isinstance(prompt, str) and not is_messages(prompt):
            out.append(Problem(file, line, "prompt", f"expected text or chat messages, got {type(prompt).__name__}"))
        kinds = [_check_option(row.get(n), n, loc, out) for n in ("chosen", "rejected")]
        if all(kinds):
            if kinds[0] != kinds[1]:
                out.append(Problem(file, line, "rejected", f"is {kinds[1]} but chosen is {kinds[0]}"))
            elif kinds[0] == "vector" and len(row["chosen"]) != len(row["rejected"]):
                out.append(Problem(file, line, "rejected",
                                   f"vector length {len(row['rejected'])} != chosen's {len(row['chosen'])}"))
            elif row["chosen"] == row["rejected"]:
                out.append(Problem(file, line, "rejected", "identical to chosen"))
        attributes = _normalise_attributes(row.get("attributes"), loc, out)
        split = row.get("split")
        if split is not None and split not in SPLITS:
            out.append(Problem(file, line, "split", f"expected one of {SPLITS}, got {split!r}"))
        latent = row.get("user_latent")
        if latent is not None and not (isinstance(latent, int) and not isinstance(latent, bool)) and not is_vector(latent):
            out.append(Problem(file, line, "user_latent", "expected an integer type or a weight vector"))
        elif is_vector(latent) and not all(math.isfinite(v) for v in latent):
            out.append(Problem(file, line, "user_latent", "weight vector contains NaN or infinity"))
        pair_id = row.get("pair_id")
        if pair_id is not None and (not isinstance(pair_id, (str, int)) or isinstance(pair_id, bool)):
            out.append(Problem(file, line, "pair_id", f"expected text or integer, got {type(pair_id).__name__}"))
        meta = row.get("meta") or {}
        if not isinstance(meta, dict):
            out.append(Problem(file, line, "meta", "expected a mapping"))
    if len(out) > before:
        if problems is None:
            raise RecordValidationError(out)
        return None
    vec = kinds[0] == "vector"
    conv = (lambda v: [float(x) for x in v]) if vec else (lambda v: v)
    return PreferenceRecord(
        user_id=str(row["user_id"]), prompt=prompt, chosen=conv(row["chosen"]), rejected=conv(row["rejected"]),
        attributes=attributes, split=split,
        user_latent=(latent if latent is None or isinstance(latent, int) else [float(x) for x in latent]),
        pair_id=None if pair_id is None else str(pair_id), meta=dict(meta),
    )


def check_consistent(records: list[PreferenceRecord], file: str = "<memory>",
                     lines: list[int] | None = None) -> list[Problem]:
    """Problems across rows: numeric and text options mixed, or vectors of different lengths.

    ``lines`` gives each record's line in ``file`` (default: 1, 2, ...).
    """
    problems: list[Problem] = []
    if not records:
        return problems
    lines = lines or list(range(1, len(records) + 1))
    first = records[0]
    kind = "vector" if first.is_numeric else "text"
    dim = len(first.chosen) if first.is_numeric else None
    for i, rec in zip(lines[1:], records[1:]):
        k = "vector" if rec.is_numeric else "text"
        if k != kind:
            problems.append(Problem(file, i, "chosen", f"{k} option in a file of {kind} options (line {lines[0]})"))
        elif dim is not None and len(rec.chosen) != dim:
            problems.append(Problem(file, i, "chosen", f"vector length {len(rec.chosen)} != {dim} (line {lines[0]})"))
    return problems
