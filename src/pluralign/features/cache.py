"""On-disk embedding cache: vectors keyed by how they were made and by the text they encode.

DESIGN.md §4: the published code stored embeddings inside JSONL/pickles with no record of how
they were made. Here every cache folder is named by a digest of its **key** — model id, model
fingerprint (revision or a hash of the weights), pooling, template, max length, normalisation and
dtype — so changing any of them reads and writes a different folder (nothing stale is ever
returned), and inside a folder each vector is found by the hash of the exact text the model saw.

Layout::

    <root>/<key digest>/
        index.json                       # the key in full, vector count, dim, shard list
        shard-<time>-<pid>-<rand>.safetensors
            embeddings  (n, D) float32   # one row per text
            hashes      (n, 16) uint8    # blake2b-128 of each text

Shards are written to a temporary file and renamed, so an interrupted run leaves either a whole
shard or none; the shard files (not the index) are the source of truth, so two processes filling
the same folder never lose each other's vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..atomic import write_text_atomic

FORMAT_VERSION = 1
HASH_BYTES = 16


def text_hash(text: str) -> bytes:
    """128-bit blake2b digest of a text (what a cache row is looked up by)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=HASH_BYTES).digest()


def key_digest(key: dict[str, Any]) -> str:
    """Stable 16-hex-digit name of a cache key (JSON with sorted keys, sha256)."""
    blob = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class EmbeddingCache:
    """Vectors of texts for one key, stored under ``root/<key digest>/``.

    ``get(texts)`` returns the cached rows and the positions that are missing; ``put(texts,
    vectors)`` appends a shard. Hits are served from memory after the first read of a shard.
    """

    def __init__(self, root: str | os.PathLike, key: dict[str, Any]):
        self.key = dict(key)
        self.digest = key_digest(self.key)
        self.dir = Path(root).expanduser() / self.digest
        self._where: dict[bytes, tuple[str, int]] = {}
        self._loaded: dict[str, torch.Tensor] = {}
        self._dim: int | None = None
        self._scanned: set[str] = set()
        self._scan()

    # -- reading ---------------------------------------------------------------------------------
    def _shards(self) -> list[Path]:
        return sorted(self.dir.glob("shard-*.safetensors")) if self.dir.is_dir() else []

    def _scan(self) -> None:
        index = self.dir / "index.json"
        if index.is_file():
            stored = json.loads(index.read_text(encoding="utf-8")).get("key")
            if stored is not None and stored != json.loads(json.dumps(self.key, default=str)):
                raise RuntimeError(f"{index}: stored key {stored} differs from {self.key} (digest collision?)")
        for shard in self._shards():
            if shard.name in self._scanned:
                continue
            self._scanned.add(shard.name)
            with safe_open(str(shard), framework="pt") as fh:
                hashes = fh.get_tensor("hashes")
                self._dim = int(fh.get_slice("embeddings").get_shape()[1])
            for row, h in enumerate(hashes.numpy()):
                self._where[bytes(h)] = (shard.name, row)

    def __len__(self) -> int:
        return len(self._where)

    @property
    def dim(self) -> int | None:
        return self._dim

    def _shard_tensor(self, name: str) -> torch.Tensor:
        if name not in self._loaded:
            with safe_open(str(self.dir / name), framework="pt") as fh:
                self._loaded[name] = fh.get_tensor("embeddings")
        return self._loaded[name]

    def get_hashes(self, hashes: Sequence[bytes]) -> tuple[dict[int, torch.Tensor], list[int]]:
        """({position: vector (D,)} for cached hashes, [positions not cached])."""
        if any(h not in self._where for h in hashes):
            self._scan()  # another process (or Embedder) may have added shards since we looked
        found: dict[int, torch.Tensor] = {}
        missing: list[int] = []
        for i, h in enumerate(hashes):
            hit = self._where.get(h)
            if hit is None:
                missing.append(i)
            else:
                found[i] = self._shard_tensor(hit[0])[hit[1]]
        return found, missing

    def get(self, texts: Sequence[str]) -> tuple[dict[int, torch.Tensor], list[int]]:
        """Cached vectors of ``texts`` by position, and the positions that are missing."""
        return self.get_hashes([text_hash(t) for t in texts])

    # -- writing ---------------------------------------------------------------------------------
    def put_hashes(self, hashes: Sequence[bytes], vectors: torch.Tensor) -> Path | None:
        """Write one shard of (n, D) ``vectors`` for ``hashes``; returns its path (None if empty)."""
        if len(hashes) != len(vectors):
            raise ValueError(f"{len(hashes)} hashes for {len(vectors)} vectors")
        if len(hashes) == 0:
            return None
        vectors = vectors.detach().to("cpu", torch.float32).contiguous()
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be (n, D), got shape {tuple(vectors.shape)}")
        if self._dim is not None and vectors.shape[1] != self._dim:
            raise ValueError(f"vectors have dim {vectors.shape[1]} but this cache holds dim {self._dim}")
        if not bool(torch.isfinite(vectors).all()):
            raise ValueError("refusing to cache non-finite embeddings (NaN or infinity)")
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"shard-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.safetensors"
        hash_tensor = torch.tensor([list(h) for h in hashes], dtype=torch.uint8)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=self.dir)
        os.close(fd)
        try:
            save_file({"embeddings": vectors, "hashes": hash_tensor}, tmp,
                      metadata={"format": str(FORMAT_VERSION), "key_digest": self.digest})
            os.replace(tmp, self.dir / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._dim = int(vectors.shape[1])
        self._loaded[name] = vectors
        self._scanned.add(name)
        for row, h in enumerate(hashes):
            self._where[bytes(h)] = (name, row)
        self._write_index()
        return self.dir / name

    def put(self, texts: Sequence[str], vectors: torch.Tensor) -> Path | None:
        """Cache (n, D) ``vectors`` of ``texts``."""
        return self.put_hashes([text_hash(t) for t in texts], vectors)

    def _write_index(self) -> None:
        shards = [p.name for p in self._shards()]
        index = {"format": FORMAT_VERSION, "key": self.key, "digest": self.digest,
                 "n_vectors": len(self._where), "dim": self._dim, "shards": shards}
        write_text_atomic(self.dir / "index.json", json.dumps(index, indent=1, sort_keys=True, default=str))


def cache_folders(root: str | os.PathLike) -> Iterable[tuple[Path, dict[str, Any]]]:
    """Every cache folder under ``root`` with its index (for listing / cleaning up)."""
    for index in sorted(Path(root).expanduser().glob("*/index.json")):
        yield index.parent, json.loads(index.read_text(encoding="utf-8"))
