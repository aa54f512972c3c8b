"""Read and write preference records: JSONL, Parquet and Hugging Face ``datasets``.

Every reader validates every row and raises one :class:`RecordValidationError` naming the file,
line and field of each problem. Writers are atomic: a failed write leaves an existing file intact.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from .records import (PreferenceRecord, Problem, RecordValidationError, check_consistent,
                      is_messages, parse_record)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _parse_constant(name: str) -> float:
    # NaN/Infinity literals become floats here so validation reports them with their field.
    return float(name)  # kept as a float so validation reports it with the field name


def read_jsonl(path: str | os.PathLike, defaults: dict[str, Any] | None = None) -> list[PreferenceRecord]:
    """Read a JSON-lines file of records; blank lines are skipped. ``defaults``: fields a row
    may leave out (e.g. ``user_id`` in a file of one person's choices)."""
    file = str(path)
    records, lines, problems = [], [], []
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                problems.append(Problem(file, line_no, "<row>", f"not UTF-8 text: {err.reason}"))
                continue
            if not text.strip():
                continue
            try:
                row = json.loads(text, parse_constant=_parse_constant)
            except json.JSONDecodeError as err:
                problems.append(Problem(file, line_no, "<row>", f"invalid JSON: {err.msg} (column {err.colno})"))
                continue
            if defaults and isinstance(row, dict):
                row = {**defaults, **row}
            rec = parse_record(row, file, line_no, problems)
            if rec is not None:
                records.append(rec)
                lines.append(line_no)
    problems += check_consistent(records, file, lines)
    if problems:
        raise RecordValidationError(problems)
    return records


def record_lines(path: str | os.PathLike) -> list[int]:
    """The line (JSONL: blank lines are not records) or row (Parquet) of each record
    :func:`read_records` returns, counted from 1 as an editor shows them."""
    if Path(path).is_file() and Path(path).suffix.lower() in (".jsonl", ".json", ".ndjson"):
        with open(path, "rb") as fh:
            return [n for n, raw in enumerate(fh, start=1) if raw.decode("utf-8", "replace").strip()]
    if Path(path).suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return list(range(1, pq.ParquetFile(path).metadata.num_rows + 1))
    raise ValueError(f"{path}: lines are known for .jsonl and .parquet files")


def _clean_arrow_value(value: Any) -> Any:
    # Parquet stores absent optional fields as null and dicts as structs with null members.
    if isinstance(value, dict):
        return {k: _clean_arrow_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, float) and math.isnan(value):
        return value
    return value


def _rows_to_records(rows: Iterable[dict], file: str,
                     defaults: dict[str, Any] | None = None) -> list[PreferenceRecord]:
    records, lines, problems = [], [], []
    for line_no, row in enumerate(rows, start=1):
        row = {**(defaults or {}), **{k: _clean_arrow_value(v) for k, v in row.items() if v is not None}}
        bad = False
        for key in ("meta", "attributes"):  # stored as JSON text to keep the Parquet schema fixed
            if isinstance(row.get(key), str):
                try:
                    row[key] = json.loads(row[key])
                except json.JSONDecodeError as err:
                    problems.append(Problem(file, line_no, key, f"invalid JSON text: {err.msg}"))
                    bad = True
        if bad:
            continue
        rec = parse_record(row, file, line_no, problems)
        if rec is not None:
            records.append(rec)
            lines.append(line_no)
    problems += check_consistent(records, file, lines)
    if problems:
        raise RecordValidationError(problems)
    return records


def read_parquet(path: str | os.PathLike, defaults: dict[str, Any] | None = None) -> list[PreferenceRecord]:
    """Read a Parquet file of records (rows are numbered from 1); ``defaults`` as for
    :func:`read_jsonl`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise RecordValidationError([Problem(str(path), 0, "<file>", f"not a readable Parquet file: {err}")]) from err
    return _rows_to_records(rows, str(path), defaults)


def read_records(path: str | os.PathLike, defaults: dict[str, Any] | None = None) -> list[PreferenceRecord]:
    """Read records from ``.jsonl``/``.json`` or ``.parquet`` (chosen by extension), or from a
    folder saved by ``datasets`` (:func:`read_dataset_folder`). ``defaults``: fields a row may
    leave out (files only)."""
    if Path(path).is_dir():
        return read_dataset_folder(path)
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return read_jsonl(path, defaults)
    if suffix in (".parquet", ".pq"):
        return read_parquet(path, defaults)
    raise ValueError(f"{path}: unknown extension {suffix!r} (expected .jsonl or .parquet)")


def _atomic_target(path: str | os.PathLike):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    return path, Path(tmp)


def _arrow_row(rec: PreferenceRecord) -> dict:
    # attributes and meta have per-file keys; JSON strings keep the Parquet schema fixed.
    row = rec.to_dict()
    for key in ("attributes", "meta"):
        if key in row:
            row[key] = json.dumps(row[key], default=_json_default)
    return row


def _rectangular(rows: list[dict]) -> list[dict]:
    # pyarrow and datasets take their columns from the first row only: give every row every key
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return [{k: row.get(k) for k in keys} for row in rows]


def validate_records(records: Iterable[PreferenceRecord], name: str = "<records>") -> list[Problem]:
    """Problems of in-memory records (numbered from 1), as a reader would report them."""
    problems: list[Problem] = []
    records = list(records)
    for i, rec in enumerate(records, start=1):
        parse_record(rec.to_dict(), name, i, problems)
    return problems + check_consistent(records, name)


def write_records(records: Iterable[PreferenceRecord], path: str | os.PathLike,
                  validate: bool = True) -> Path:
    """Write records atomically as JSONL or Parquet (by extension); returns the path.

    With ``validate`` (default) invalid records raise :class:`RecordValidationError` before
    anything is written; a failure at any point leaves an existing file at ``path`` intact.
    """
    records = list(records)
    suffix = Path(path).suffix.lower()
    if suffix not in (".jsonl", ".json", ".ndjson", ".parquet", ".pq"):
        raise ValueError(f"{path}: unknown extension {suffix!r} (expected .jsonl or .parquet)")
    if validate:
        problems = validate_records(records, str(path))
        if problems:
            raise RecordValidationError(problems)
    path, tmp = _atomic_target(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(_rectangular([_arrow_row(r) for r in records])), tmp)
        else:
            with open(tmp, "w", encoding="utf-8") as fh:
                for rec in records:
                    fh.write(json.dumps(rec.to_dict(), default=_json_default, allow_nan=False) + "\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def to_hf_dataset(records: Iterable[PreferenceRecord], conversational: bool = False):
    """Records as a ``datasets.Dataset`` in TRL's preference format plus ``user_id``.

    With ``conversational=True`` text prompts become ``[{"role": "user", ...}]`` and responses
    ``[{"role": "assistant", ...}]``, TRL's conversational preference format.
    """
    import datasets

    def conv(value, role):
        if not conversational or not isinstance(value, str):
            return value
        return [{"role": role, "content": value}]

    rows = []
    for rec in records:
        row = _arrow_row(rec)
        row["prompt"] = conv(rec.prompt, "user") if rec.prompt else ([] if conversational else "")
        row["chosen"], row["rejected"] = conv(rec.chosen, "assistant"), conv(rec.rejected, "assistant")
        rows.append(row)
    return datasets.Dataset.from_list(_rectangular(rows))


def from_hf_dataset(dataset, name: str = "<dataset>") -> list[PreferenceRecord]:
    """Records from a TRL-format preference ``datasets.Dataset`` with a ``user_id`` column.

    Conversational rows whose chosen/rejected are a single assistant message are kept as messages;
    an empty conversational prompt becomes ``""``.
    """
    def rows():
        for row in dataset:
            row = dict(row)
            if isinstance(row.get("prompt"), list) and not row["prompt"]:
                row["prompt"] = ""
            for key in ("chosen", "rejected", "prompt"):
                if is_messages(row.get(key)):
                    row[key] = [dict(m) for m in row[key]]
            yield row

    return _rows_to_records(rows(), name)


def read_dataset_folder(folder: str | os.PathLike) -> list[PreferenceRecord]:
    """Records of a folder written by ``Dataset.save_to_disk`` (TRL format + ``user_id``); a
    ``DatasetDict``'s train/validation/test parts become the records' ``split``."""
    import datasets

    try:
        ds = datasets.load_from_disk(str(folder))
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"{folder}: a folder, but not one saved by datasets' save_to_disk ({err})") from None
    if isinstance(ds, datasets.DatasetDict):
        bad = sorted(set(ds) - {"train", "validation", "test"})
        if bad:
            raise ValueError(f"{folder}: DatasetDict parts {bad}; name them train, validation, test")
        return [r.replace(split=name) for name, part in ds.items()
                for r in from_hf_dataset(part, f"{folder}[{name}]")]
    return from_hf_dataset(ds, str(folder))
