"""Frozen text embedders: prompt + response -> one vector, cached on disk.

Both source papers represent an option y = [x, y~] (prompt and response) by a frozen LM: "the
last hidden state representation of the last token in the tokenized representation of y" (NP
paper App. C.2, Llama-3-8B; VPL App. E.5 likewise). :class:`Embedder` does that for any Hugging
Face model with the pooling as a choice (:mod:`pluralign.features.pooling`):

- ``last_token`` (default for causal LMs) — faithful to both papers;
- ``mean`` (default for sentence encoders such as all-MiniLM-L6-v2) — what those are trained for.

How a (prompt, response) becomes one string is the **template**:

- ``chat``: the tokenizer's chat template with the prompt as the user turn and the response as
  the assistant turn, trailing whitespace stripped so the last token is the end-of-turn token
  (the same for every text, so last-token pooling reads the state after the whole response);
- ``plain``: ``prompt + "\\n\\n" + response`` with the tokenizer's own special tokens;
- ``auto`` (default): ``chat`` when the tokenizer has a chat template, else ``plain``.

Texts longer than ``max_length`` tokens are cut from the **left** (the start of the prompt goes
first), so the response and the final token are always seen. Batches are formed from texts of
similar length (less padding), run under ``torch.inference_mode`` with a progress bar; causal
LMs get explicit ``position_ids`` so left- and right-padded batches give the same vectors.

Every vector is cached (:mod:`pluralign.features.cache`) under a key of model id, model
fingerprint (revision, or a hash of the weights), pooling, template, max length, normalisation
and dtype, by the hash of the exact string the model saw; a second run computes nothing.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.records import PreferenceRecord, is_messages
from .cache import EmbeddingCache, text_hash
from .pooling import POOLINGS, pool

Template = Literal["auto", "chat", "plain"]
TEMPLATES = ("auto", "chat", "plain")
Text = str | list[dict[str, str]]
# model_type of common bidirectional sentence encoders (mean pooling by default)
ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "mpnet", "distilbert", "deberta", "deberta-v2",
                 "electra", "albert", "modernbert", "nomic_bert", "camembert", "e5"}
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class EmbedderConfig:
    """How to embed text. ``model`` is an offline alias ("minilm", "smollm2"), a local folder or a
    hub id (hub ids download only if the user's environment allows it; nothing here forces it)."""

    model: str = "minilm"
    pooling: str | None = None  # None: "mean" for sentence encoders, "last_token" for causal LMs
    template: str = "auto"
    max_length: int = 256
    batch_size: int = 32
    normalize: bool = False  # L2-normalise vectors (sentence-transformers does for MiniLM)
    revision: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    padding_side: str = "right"
    cache_dir: str | None = None  # None: $PLURALIGN_CACHE/embeddings (default ~/.cache/pluralign)
    use_cache: bool = True

    def __post_init__(self) -> None:
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS} or None, got {self.pooling!r}")
        if self.template not in TEMPLATES:
            raise ValueError(f"template must be one of {TEMPLATES}, got {self.template!r}")
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {self.max_length}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")


def is_causal_lm(config: Any) -> bool:
    """Whether a HF config describes a decoder-only LM (last-token pooling by default)."""
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs):
        return True
    model_type = getattr(config, "model_type", "")
    if model_type in ENCODER_TYPES or getattr(config, "is_encoder_decoder", False):
        return False
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def weights_fingerprint(folder: str | os.PathLike) -> str | None:
    """blake2b of the weight files in a local model folder (None if there are none)."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".gguf"))
    if not files:
        return None
    digest = hashlib.blake2b(digest_size=16)
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
    return "files:" + digest.hexdigest()


def state_fingerprint(model: nn.Module) -> str:
    """blake2b of a model's parameters and buffers (for models built in memory)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return "state:" + digest.hexdigest()


def _message_list(prompt: Text) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}] if prompt else []
    return [dict(m) for m in prompt]


def _response_content(response: Text) -> str:
    if isinstance(response, str):
        return response
    if is_messages(response):
        return response[-1]["content"]
    raise TypeError(f"a response must be text or chat messages, got {type(response).__name__}")


class Embedder:
    """A frozen model that maps (prompt, response) texts to (N, D) vectors, with a disk cache.

    Args:
        model: a HF model; for a ``*ForCausalLM`` its base model (``model.base_model``) is run.
        tokenizer: its tokenizer (a pad token is set to EOS when missing).
        model_id: a name recorded in the cache key (an alias, path or hub id).
        pooling: "last_token" or "mean"; None picks by model kind (see :func:`is_causal_lm`).
        fingerprint: identifies the weights in the cache key; None hashes the parameters.
        cache_dir: cache root, or None for no cache.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, *, model_id: str, pooling: str | None = None,
                 template: str = "auto", max_length: int = 256, batch_size: int = 32,
                 normalize: bool = False, fingerprint: str | None = None,
                 cache_dir: str | os.PathLike | None = None, padding_side: str = "right",
                 progress: bool = True):
        config = EmbedderConfig(model=model_id, pooling=pooling, template=template, max_length=max_length,
                                batch_size=batch_size, normalize=normalize, padding_side=padding_side)
        self.model = getattr(model, "base_model", model).eval()
        self.model.requires_grad_(False)
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.causal = is_causal_lm(model.config)
        self.pooling = config.pooling or ("last_token" if self.causal else "mean")
        has_chat = bool(getattr(tokenizer, "chat_template", None))
        if config.template == "chat" and not has_chat:
            raise ValueError(f"template='chat' but the tokenizer of {model_id!r} has no chat template")
        self.template = ("chat" if has_chat else "plain") if config.template == "auto" else config.template
        self.model_id, self.max_length, self.batch_size = model_id, max_length, batch_size
        self.normalize, self.padding_side, self.progress = normalize, padding_side, progress
        self.fingerprint = fingerprint or state_fingerprint(self.model)
        self.dtype = str(next(self.model.parameters()).dtype).replace("torch.", "")
        self._takes_positions = "position_ids" in inspect.signature(self.model.forward).parameters
        self.cache = EmbeddingCache(cache_dir, self.key) if cache_dir is not None else None
        self.n_forward = 0  # model calls made (batches): tests check that a cached run makes none
        self.n_computed = 0  # texts actually run through the model

    @property
    def key(self) -> dict[str, Any]:
        """Everything that changes a vector besides the text (the cache key)."""
        return {"model_id": self.model_id, "fingerprint": self.fingerprint, "pooling": self.pooling,
                "template": self.template, "max_length": self.max_length, "normalize": self.normalize,
                "dtype": self.dtype, "chat_template": self._chat_template_hash()}

    def _chat_template_hash(self) -> str | None:
        if self.template != "chat":
            return None
        return hashlib.blake2b(str(self.tokenizer.chat_template).encode(), digest_size=8).hexdigest()

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    # -- texts -----------------------------------------------------------------------------------
    def format(self, prompt: Text, response: Text) -> str:
        """The exact string the model sees for one option (see the module docstring)."""
        content = _response_content(response)
        if self.template == "chat":
            messages = _message_list(prompt) + [{"role": "assistant", "content": content}]
            text = self.tokenizer.apply_chat_template(messages, tokenize=False)
            return text.rstrip()
        prompt_str = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
        return f"{prompt_str}\n\n{content}" if prompt_str else content

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        # the chat template already holds the special tokens it wants; plain text gets the usual ones
        side = self.tokenizer.truncation_side
        self.tokenizer.truncation_side = "left"
        try:
            ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length,
                                 add_special_tokens=self.template != "chat")["input_ids"]
        finally:
            self.tokenizer.truncation_side = side  # the tokenizer may be shared (e.g. with a policy)
        return [list(x) for x in ids]

    # -- model -----------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Run the model on ``texts`` (no cache), (N,) -> (N, D) float32 on the CPU."""
        if not texts:
            return torch.zeros(0, self.dim)
        ids = self._tokenize(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = torch.empty(len(ids), self.dim)
        device = next(self.model.parameters()).device
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        with torch.inference_mode():
            for batch in tqdm(batches, desc=f"embed {Path(self.model_id).name}", unit="batch",
                              disable=not self.progress or len(batches) < 2):
                padded = self.tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt",
                                            padding_side=self.padding_side)
                input_ids = padded["input_ids"].to(device)
                mask = padded["attention_mask"].to(device)
                kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
                if self.causal and self._takes_positions:
                    kwargs["position_ids"] = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
                hidden = self.model(**kwargs).last_hidden_state  # (B, L, H)
                self.n_forward += 1
                vec = pool(hidden.float(), mask, self.pooling)  # (B, H)
                if self.normalize:
                    vec = torch.nn.functional.normalize(vec, dim=-1)
                out[torch.tensor(batch)] = vec.cpu()
        self.n_computed += len(ids)
        if not bool(torch.isfinite(out).all()):
            raise FloatingPointError(f"{self.model_id}: the model produced non-finite embeddings")
        return out

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Vectors of already-formatted strings, cached; duplicates are computed once. (N, D)."""
        hashes = [text_hash(t) for t in texts]
        first: dict[bytes, int] = {}
        for i, h in enumerate(hashes):
            first.setdefault(h, i)
        unique = list(first.values())
        if self.cache is not None:
            found, missing_pos = self.cache.get_hashes([hashes[i] for i in unique])
            missing = [unique[p] for p in missing_pos]
        else:
            found, missing = {}, unique
        computed = self.encode([texts[i] for i in missing])
        if self.cache is not None and missing:
            self.cache.put_hashes([hashes[i] for i in missing], computed)
        row_of: dict[bytes, torch.Tensor] = {hashes[unique[p]]: v for p, v in found.items()}
        row_of.update({hashes[i]: computed[j] for j, i in enumerate(missing)})
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.stack([row_of[h] for h in hashes])

    def embed(self, prompts: Sequence[Text], responses: Sequence[Text]) -> torch.Tensor:
        """Vectors of N (prompt, response) options, (N, D)."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        return self.embed_texts([self.format(p, r) for p, r in zip(prompts, responses)])

    def __repr__(self) -> str:
        return (f"Embedder({self.model_id!r}, pooling={self.pooling!r}, template={self.template!r}, "
                f"max_length={self.max_length}, dim={self.dim})")


def default_cache_dir() -> Path:
    """``$PLURALIGN_CACHE/embeddings`` (default ``~/.cache/pluralign/embeddings``)."""
    from .offline import cache_root
    return cache_root() / "embeddings"


def load_embedder(config: EmbedderConfig | None = None, **overrides: Any) -> Embedder:
    """Build an :class:`Embedder` from a config (``overrides`` replace its fields).

    Offline aliases resolve through :func:`pluralign.features.offline.resolve_model`; for a
    local folder the fingerprint hashes its weight files, for a hub id it is the revision (or
    the commit the files came from).
    """
    config = EmbedderConfig(**{**asdict(config or EmbedderConfig()), **overrides})
    from transformers import AutoModel, AutoTokenizer

    from .offline import resolve_model

    path = resolve_model(config.model)
    tokenizer = AutoTokenizer.from_pretrained(path, revision=config.revision)
    model = AutoModel.from_pretrained(path, revision=config.revision, dtype=_DTYPES[config.dtype])
    model.to(config.device)
    if Path(path).is_dir():
        fingerprint = weights_fingerprint(path)
    else:
        fingerprint = config.revision or getattr(model.config, "_commit_hash", None)
    if fingerprint is None:
        fingerprint = state_fingerprint(model)
    cache_dir = (Path(config.cache_dir) if config.cache_dir else default_cache_dir()) if config.use_cache else None
    return Embedder(model, tokenizer, model_id=config.model, pooling=config.pooling,
                    template=config.template, max_length=config.max_length, batch_size=config.batch_size,
                    normalize=config.normalize, fingerprint=fingerprint, cache_dir=cache_dir,
                    padding_side=config.padding_side)


# -- records ---------------------------------------------------------------------------------------
def embed_records(records: Sequence[PreferenceRecord], embedder: Embedder) -> tuple[torch.Tensor, torch.Tensor]:
    """Option vectors of text records: (chosen (P, D), rejected (P, D)), row i = record i.

    Each distinct (prompt, response) string is embedded once (records of many users share pairs).
    """
    if not records:
        raise ValueError("no records to embed")
    if any(r.is_numeric for r in records):
        raise TypeError("embed_records needs text records; these already carry vectors "
                        "(use pluralign.data.tables.option_vectors)")
    # format each distinct (prompt, option) once: records of many users repeat the same pairs
    index: dict[tuple[str, str], int] = {}
    prompts: list[Text] = []
    options: list[Text] = []
    rows: list[int] = []
    for rec in records:
        for option in (rec.chosen, rec.rejected):
            key = (json.dumps(rec.prompt), json.dumps(option))
            if key not in index:
                index[key] = len(prompts)
                prompts.append(rec.prompt)
                options.append(option)
            rows.append(index[key])
    vectors = embedder.embed(prompts, options)[torch.tensor(rows)]
    return vectors[0::2], vectors[1::2]


def attach_vectors(records: Sequence[PreferenceRecord], chosen: torch.Tensor, rejected: torch.Tensor,
                   source: str | None = None) -> list[PreferenceRecord]:
    """Records whose options are the given vectors, so models never see text.

    The prompt is kept (splits group by it); ``meta["embedding"]`` records ``source`` (e.g. the
    embedder's cache digest) so a vector file says how it was made.
    """
    if len(records) != len(chosen) or len(records) != len(rejected):
        raise ValueError(f"{len(records)} records but {len(chosen)} chosen / {len(rejected)} rejected vectors")
    out = []
    for rec, c, r in zip(records, chosen.tolist(), rejected.tolist()):
        meta = dict(rec.meta)
        if source is not None:
            meta["embedding"] = source
        out.append(rec.replace(chosen=c, rejected=r, meta=meta))
    return out


def embed_to_records(records: Sequence[PreferenceRecord], embedder: Embedder) -> list[PreferenceRecord]:
    """:func:`embed_records` then :func:`attach_vectors` (records with numeric options)."""
    chosen, rejected = embed_records(records, embedder)
    source = embedder.cache.digest if embedder.cache is not None else embedder.model_id
    return attach_vectors(records, chosen, rejected, source=source)
