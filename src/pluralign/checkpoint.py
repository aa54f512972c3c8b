"""Atomic checkpoints: a folder with ``model.safetensors`` (weights) and ``config.json``.

Every model's ``save_pretrained(dir)`` / ``from_pretrained(dir)`` goes through here (reward
models and policies alike), so a checkpoint is always the same two files and is never seen
half-written: everything is written into a temporary sibling folder, which is then renamed into
place (DESIGN.md §5). A crash mid-save leaves the previous checkpoint untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load_file, save_file

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete or unreadable."""


def _plain_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors; tensors sharing storage are cloned (safetensors refuses them)."""
    seen: set[int] = set()
    out = {}
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state entry {name!r} is a {type(tensor).__name__}, not a tensor")
        t = tensor.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen:
            t = t.clone()  # tied weights: store a copy, load_state_dict re-ties them
        elif t.numel():
            seen.add(ptr)
        out[name] = t
    return out


def save_state(directory: str | os.PathLike, state: Mapping[str, torch.Tensor],
               config: Mapping[str, Any], extra_files: Mapping[str, bytes] | None = None) -> Path:
    """Write ``state`` + ``config`` (JSON-serialisable) to ``directory`` atomically.

    ``extra_files`` (name -> bytes) are written into the same folder (e.g. a tokenizer file).
    Returns the folder path.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        config_text = json.dumps(dict(config), indent=2, sort_keys=True)
    except TypeError as err:
        raise TypeError(f"checkpoint config is not JSON-serialisable: {err}") from err
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        save_file(_plain_state(state), str(tmp / WEIGHTS_NAME))
        (tmp / CONFIG_NAME).write_text(config_text + "\n")
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
        old = None
        if target.exists():
            # rename the old folder aside first: os.replace cannot overwrite a non-empty folder
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def save_module(directory: str | os.PathLike, module: torch.nn.Module,
                config: Mapping[str, Any]) -> Path:
    """``save_state(directory, module.state_dict(), config)``."""
    return save_state(directory, module.state_dict(), config)


def load_state(directory: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read ``(config, state_dict)`` from a folder written by :func:`save_state`."""
    folder = Path(directory)
    if not folder.is_dir():
        raise CheckpointError(f"no checkpoint folder at {folder}")
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        if not (folder / name).is_file():
            raise CheckpointError(f"checkpoint {folder} has no {name}")
    try:
        config = json.loads((folder / CONFIG_NAME).read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{folder / CONFIG_NAME}: invalid JSON: {err}") from err
    return config, load_file(str(folder / WEIGHTS_NAME))
