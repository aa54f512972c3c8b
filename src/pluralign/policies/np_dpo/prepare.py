"""The NP-DPO experiment's data: records per split (a built-in set or a file), corpus subsets,
tokenised and embedded :class:`PolicyData` per split, and the users the encoder warm start learns
from (never the evaluation prompts). Used by :mod:`.experiment` and ``pluralign policy``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...train.config import check_types
from .data import PolicyData
from .encoder_warmstart import ContextTable, EncoderWarmStartConfig


@dataclass
class PolicyDataConfig:
    """source: a built-in data set name (``pluralign.data.builtin``) or a records file.
    builtin_overrides: arguments for the built-in builder (e.g. users_per_type).
    embedder: the frozen text encoder of context options (``pluralign.features.embed``).
    max_train_users / max_test_users: keep only that many users per type (CPU budgets).
    max_prompts: build a ``corpus-*`` data set from this many of the corpus's prompts only:
    the distinct responses, hence the reference passes, scale with it. prompt_selection:
    ``first`` (lowest prompt ids; the same prompts whatever else the corpus file holds) or
    ``random`` (drawn with ``split_seed``)."""

    source: str = "corpus-2mode"
    builtin_overrides: dict[str, Any] = field(default_factory=dict)
    max_prompts: int | None = None
    prompt_selection: str = "first"
    embedder: str = "minilm"
    split_seed: int = 0
    max_train_users: int | None = None
    max_test_users: int | None = None

    def __post_init__(self) -> None:
        check_types(self)
        if self.prompt_selection not in ("first", "random"):
            raise ValueError(f"prompt_selection must be 'first' or 'random', got {self.prompt_selection!r}")


def load_records(config: PolicyDataConfig) -> dict[str, list]:
    """Records per split (``train``, ``validation``, ``test``), optionally fewer users per type."""
    from ...data.splits import by_split, split_records

    path = Path(config.source)
    if path.suffix in (".jsonl", ".parquet", ".gz") or path.exists():
        from ...data.io import read_records

        records = read_records(path)
    else:
        from ...data import builtin

        overrides = dict(config.builtin_overrides)
        if config.max_prompts is not None and config.source.startswith("corpus"):
            seed = None if config.prompt_selection == "first" else config.split_seed
            overrides["path"] = str(corpus_subset(config.max_prompts, seed, overrides.get("path")))
        records = builtin.load(config.source, **overrides)
    if any(r.split is None for r in records):
        records = split_records(records, seed=config.split_seed)
    splits = by_split(records)

    def limit(recs, n):
        if n is None:
            return recs
        keep: dict[int, list[str]] = {}
        for r in recs:
            users = keep.setdefault(r.user_latent if isinstance(r.user_latent, int) else -1, [])
            if r.user_id not in users and len(users) < n:
                users.append(r.user_id)
        allowed = {u for us in keep.values() for u in us}
        return [r for r in recs if r.user_id in allowed]

    return {"train": limit(splits.get("train", []), config.max_train_users),
            "validation": limit(splits.get("validation", []), config.max_test_users),
            "test": limit(splits.get("test", []), config.max_test_users)}


def corpus_subset(n_prompts: int, seed: int | None, path: str | None = None) -> Path:
    """A gzip JSONL copy of the corpus with ``n_prompts`` of its prompts: the lowest prompt
    ids for ``seed=None``, else a seeded random draw; cached by (source file, n, seed)."""
    import gzip
    import hashlib

    import numpy as np

    from ...data.builtin.corpus import corpus_path, load_corpus
    from ...features.offline import cache_root

    src = Path(path) if path else corpus_path()
    stat = src.stat()
    key = hashlib.sha1(f"{src.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{n_prompts}|{seed}".encode()).hexdigest()[:12]
    out = cache_root() / "corpus-subsets" / f"corpus-{n_prompts}-{key}.jsonl.gz"
    if out.exists():
        return out
    rows = load_corpus(src)
    ids = sorted({r["prompt_id"] for r in rows})
    if n_prompts >= len(ids):
        return src
    if seed is None:
        keep = set(ids[:n_prompts])
    else:
        keep = set(np.asarray(ids)[np.random.default_rng(seed).permutation(len(ids))[:n_prompts]].tolist())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        for r in rows:
            if r["prompt_id"] in keep:
                f.write(json.dumps({k: v for k, v in r.items() if k != "scores"}) + "\n")
    tmp.replace(out)
    return out


def policy_data(records, tokenizer, embedder, max_length: int) -> PolicyData:
    from ...features.embed import embed_records

    chosen, rejected = embed_records(records, embedder)
    return PolicyData(records, tokenizer, chosen_emb=chosen, rejected_emb=rejected, max_length=max_length)


def type_names(records) -> list[str] | None:
    names = {}
    for r in records:
        if isinstance(r.user_latent, int) and "user_type" in r.meta:
            names[r.user_latent] = str(r.meta["user_type"])
    return [names[t] for t in sorted(names)] if names else None


@dataclass
class Prepared:
    """Everything the runs share: records per split, tokenizer, PolicyData per split."""

    splits: dict[str, list]
    tokenizer: Any
    train: PolicyData
    val: PolicyData | None
    test: PolicyData


def prepare(data: PolicyDataConfig, base_model: str, max_length: int, with_validation: bool = True,
            splits: tuple[str, ...] = ("train", "validation", "test")) -> Prepared:
    """Load records, the tokenizer of ``base_model`` and the context embeddings of the needed
    splits (token sequences cut at ``max_length``; no validation data unless ``with_validation``)."""
    from transformers import AutoTokenizer

    from ...features.embed import load_embedder
    from ...features.offline import resolve_model

    records = load_records(data)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(base_model))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    embedder = load_embedder(model=data.embedder)
    tables = {s: policy_data(records[s], tokenizer, embedder, max_length) if s in splits and records[s] else None
              for s in ("train", "validation", "test")}
    val = tables["validation"] if with_validation else None
    return Prepared(records, tokenizer, tables["train"], val, tables["test"])


def warmstart_table(data: PolicyDataConfig, warm: EncoderWarmStartConfig, prep: Prepared
                    ) -> PolicyData | ContextTable:
    """The users the encoder warm start learns from: the policy's training data, or the data set
    rebuilt with ``encoder_warmstart.max_prompts`` / ``users_per_type`` minus every record whose
    prompt is one of the policy's validation or test prompts (no leak into the evaluation)."""
    from ...data.tables import user_ids, user_types
    from ...features.embed import embed_records, load_embedder

    if warm.max_prompts is None and warm.users_per_type is None:
        return prep.train
    overrides = dict(data.builtin_overrides)
    if warm.users_per_type is not None:
        overrides["users_per_type"] = warm.users_per_type
    data_cfg = dataclasses.replace(data, builtin_overrides=overrides, max_train_users=None,
                                   max_prompts=warm.max_prompts or data.max_prompts)
    held_out = {str(r.prompt) for s in ("validation", "test") for r in prep.splits[s]}
    records = [r for recs in load_records(data_cfg).values() for r in recs if str(r.prompt) not in held_out]
    if not records:
        raise ValueError("the encoder warm start has no records left after removing the evaluation prompts")
    chosen, rejected = embed_records(records, load_embedder(model=data.embedder))
    return ContextTable(user_ids(records), user_types(records), chosen.float(), rejected.float())
