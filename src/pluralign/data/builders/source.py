"""Where a builder's raw rows come from: a local JSONL/JSON/Parquet file, rows in memory, a
``datasets.Dataset``, or a Hugging Face dataset name (``datasets.load_dataset(name, split=...)``,
for users who are online; nothing in the tests or defaults loads by name)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

Source = str | os.PathLike | Iterable[dict[str, Any]]


class SourceRowError(ValueError):
    """A raw row is missing a field or has the wrong type (names the source, row and field)."""


def iter_rows(source: Source, split: str = "train") -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based row number, row) pairs from ``source``.

    A string or path that exists is read by extension (``.jsonl``/``.json``/``.parquet``);
    any other string is taken as a dataset name for ``datasets.load_dataset(name, split=split)``.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if path.exists():
            yield from _file_rows(path)
            return
        if isinstance(source, os.PathLike) or str(source).endswith((".jsonl", ".json", ".parquet")):
            raise FileNotFoundError(f"{source}: no such file")
        import datasets  # loading by name: the user's own environment decides about the network

        for i, row in enumerate(datasets.load_dataset(str(source), split=split), start=1):
            yield i, dict(row)
        return
    for i, row in enumerate(source, start=1):
        yield i, dict(row)


def _file_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield i, row
    elif suffix in (".jsonl", ".ndjson", ".json"):
        with open(path, encoding="utf-8") as fh:
            head = fh.read(1)
            fh.seek(0)
            if suffix == ".json" and head == "[":  # a JSON array of rows
                for i, row in enumerate(json.load(fh), start=1):
                    yield i, row
                return
            for i, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield i, json.loads(line)
                except json.JSONDecodeError as err:
                    raise SourceRowError(f"{path}:{i}: invalid JSON: {err.msg}") from None
    else:
        raise ValueError(f"{path}: unknown extension {suffix!r} (expected .jsonl, .json or .parquet)")


def source_name(source: Source) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else "<rows>"


def require(row: dict[str, Any], fields: dict[str, type | tuple[type, ...]], where: str, line: int) -> None:
    """Raise :class:`SourceRowError` unless ``row`` has every field with the given type(s)."""
    if not isinstance(row, dict):
        raise SourceRowError(f"{where}:{line}: expected an object, got {type(row).__name__}")
    for name, kind in fields.items():
        if name not in row or row[name] is None:
            raise SourceRowError(f"{where}:{line}: field '{name}' is missing")
        if not isinstance(row[name], kind):
            raise SourceRowError(f"{where}:{line}: field '{name}' should be {kind}, got {type(row[name]).__name__}")
