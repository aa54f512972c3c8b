"""What a training run writes to disk: the resumable ``last`` checkpoint, the ``best`` model,
and the JSONL log.

``last`` holds everything needed to continue bit-for-bit (model, optimiser, scheduler, grad
scaler, the RNG states of every process, the step and the best-so-far bookkeeping) in one folder
written atomically through :mod:`pluralign.checkpoint`, so a crash during a save leaves the
previous ``last`` intact.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import checkpoint
from ..atomic import write_text_atomic

STATE_FORMAT = "pluralign-train-state/1"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
SCALER_FILE = "scaler.pt"
RNG_FILE = "rng.pt"


def rng_state() -> dict[str, Any]:
    """This process's random states: python, numpy, torch CPU and (when present) CUDA."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_last(directory: Path, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any,
              rng_states: list[dict[str, Any]], trainer_state: dict[str, Any]) -> Path:
    """Write the resumable checkpoint (call on the main process only)."""
    files = {OPTIMIZER_FILE: _to_bytes(optimizer.state_dict()),
             SCHEDULER_FILE: _to_bytes(scheduler.state_dict()),
             RNG_FILE: _to_bytes(rng_states)}
    if scaler is not None:
        files[SCALER_FILE] = _to_bytes(scaler.state_dict())
    meta = {"format": STATE_FORMAT, **trainer_state}
    return checkpoint.save_state(directory, model.state_dict(), meta, extra_files=files)


def has_last(directory: Path) -> bool:
    return (directory / checkpoint.CONFIG_NAME).is_file() and (directory / checkpoint.WEIGHTS_NAME).is_file()


def load_last(directory: Path, device: torch.device) -> tuple[dict[str, Any], dict[str, torch.Tensor],
                                                             dict[str, Any]]:
    """``(trainer_state, model_state, objects)`` where objects holds the optimiser, scheduler,
    scaler and RNG states as saved."""
    meta, model_state = checkpoint.load_state(directory)
    if meta.get("format") != STATE_FORMAT:
        raise checkpoint.CheckpointError(f"{directory}: not a training checkpoint "
                                         f"(format {meta.get('format')!r})")
    objects = {}
    for key, name in (("optimizer", OPTIMIZER_FILE), ("scheduler", SCHEDULER_FILE),
                      ("scaler", SCALER_FILE), ("rng", RNG_FILE)):
        path = directory / name
        if path.is_file():
            # our own files (numpy RNG state is not a tensor), hence weights_only=False
            objects[key] = torch.load(path, map_location="cpu", weights_only=False)
        elif key != "scaler":
            raise checkpoint.CheckpointError(f"training checkpoint {directory} has no {name}")
    return meta, model_state, objects


def save_model(directory: Path, model: nn.Module, metadata: dict[str, Any] | None = None) -> Path:
    """The model's own ``save_pretrained`` when it has one, else its state dict as safetensors."""
    if callable(getattr(model, "save_pretrained", None)):
        model.save_pretrained(directory)
    else:
        checkpoint.save_state(directory, model.state_dict(),
                              {"format": "pluralign-state-dict/1", "class": type(model).__name__})
    if metadata is not None:
        write_text_atomic(directory / "trainer_metrics.json", json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return directory


def load_model_weights(directory: Path, model: nn.Module) -> bool:
    """Load ``directory/model.safetensors`` into ``model`` in place when its keys match the
    model's state dict; False when the folder holds another layout (e.g. adapters only)."""
    path = directory / checkpoint.WEIGHTS_NAME
    if not path.is_file():
        return False
    from safetensors.torch import load_file

    state = load_file(str(path))
    if set(state) != set(model.state_dict()):
        return False
    model.load_state_dict(state)
    return True


class JsonlLog:
    """Append-only JSONL metrics log; on resume, lines past the resumed step are dropped
    (they were written after the checkpoint and will be written again)."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = path, enabled

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a line torn by the crash
        write_text_atomic(self.path, "".join(k + "\n" for k in kept))

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as fh:
            fh.write(json.dumps(row, sort_keys=False) + "\n")
