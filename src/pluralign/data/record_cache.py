"""Parsed records cached next to their file, so a second run skips parsing and validation.

Reading and validating a records file of embedded options costs ~7 ms per record (every float
of every vector is checked), minutes for a large file and paid again by every run. The first
:func:`read_records_cached` of a file writes ``.<name>.pluralign-cache.npz`` beside it: the
numeric options as two float64 arrays (exact: JSON numbers are float64) and every other field
as JSON. Later reads use it when the file's size, modification time and BLAKE2 hash of its
contents all match the ones stored in it; any change to the file makes it parse again (and
rewrite the cache). No pickle: the cache is loaded with ``allow_pickle=False``. A folder that
cannot be written to just means no cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .io import read_records
from .records import PreferenceRecord

CACHE_VERSION = 1


def cache_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p.with_name(f".{p.name}.pluralign-cache.npz")


def file_key(path: str | os.PathLike) -> dict:
    """Size, modification time (ns) and BLAKE2b of the contents of ``path``."""
    st = os.stat(path)
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return {"version": CACHE_VERSION, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "hash": h.hexdigest()}


def _load(cache: Path, key: dict) -> list[PreferenceRecord] | None:
    try:
        with np.load(cache, allow_pickle=False) as npz:
            meta = json.loads(bytes(npz["meta"]).decode("utf-8"))
            if meta.get("key") != key:
                return None
            chosen, rejected = npz["chosen"], npz["rejected"]
    except (OSError, ValueError, KeyError):
        return None
    out = []
    for row, vec in zip(meta["rows"], meta["vector_row"]):
        if vec >= 0:
            row = {**row, "chosen": chosen[vec].tolist(), "rejected": rejected[vec].tolist()}
        out.append(PreferenceRecord(**row))
    return out


def _save(cache: Path, key: dict, records: list[PreferenceRecord]) -> None:
    numeric = [r.is_numeric for r in records]
    rows, vector_row, n = [], [], 0
    for r, is_num in zip(records, numeric):
        row = r.to_dict()
        if is_num:
            row.pop("chosen"), row.pop("rejected")
            vector_row.append(n)
            n += 1
        else:
            vector_row.append(-1)
        rows.append(row)
    vecs = [r for r, is_num in zip(records, numeric) if is_num]
    dim = len(vecs[0].chosen) if vecs else 0
    chosen = np.asarray([r.chosen for r in vecs], dtype=np.float64).reshape(len(vecs), dim)
    rejected = np.asarray([r.rejected for r in vecs], dtype=np.float64).reshape(len(vecs), dim)
    meta = json.dumps({"key": key, "rows": rows, "vector_row": vector_row}).encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=cache.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, meta=np.frombuffer(meta, dtype=np.uint8), chosen=chosen, rejected=rejected)
        os.replace(tmp, cache)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_records_cached(path: str | os.PathLike) -> list[PreferenceRecord]:
    """:func:`pluralign.data.io.read_records`, through the cache beside the file."""
    key, cache = file_key(path), cache_path(path)
    records = _load(cache, key) if cache.exists() else None
    if records is not None:
        return records
    records = read_records(path)
    try:
        if file_key(path) == key:  # not changed while it was being parsed
            _save(cache, key, records)
    except (OSError, TypeError, ValueError):
        pass  # a read-only folder or unusual fields: no cache, same records
    return records
