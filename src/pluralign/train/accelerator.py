"""The device and precision a training run gets: an ``Accelerator`` with the config's mixed
precision (``auto`` resolved to bf16 only where the hardware runs it natively) that joins the
process group under ``torchrun`` / ``accelerate launch`` also on CPU-only machines. Split from
:mod:`pluralign.train.loop`, which only runs the loop."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from .config import TrainConfig


def _launched_world_size() -> int:
    for key in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 1


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions (AVX512-BF16 or AMX-BF16); without them
    bf16 autocast is emulated and slower than fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(precision: str, cpu: bool) -> str:
    """``auto`` -> ``bf16`` where it is native (a bf16-capable GPU, or a CPU with bf16
    instructions), else ``no``; other values are returned unchanged."""
    if precision != "auto":
        return precision
    if not cpu and torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_native_bf16() else "no"


def _new_accelerator(config: TrainConfig, cpu: bool) -> Accelerator:
    precision = resolve_precision(config.mixed_precision, cpu)
    try:
        return Accelerator(mixed_precision=precision, cpu=cpu)
    except ValueError as err:
        if "already been initialized" not in str(err):
            raise
        # Accelerate keeps one global state per process; a later run in the same process with
        # other settings (tests, notebooks) resets it, but never a live process group.
        AcceleratorState._reset_state(reset_partial_state=not dist.is_initialized())
        return Accelerator(mixed_precision=precision, cpu=cpu)


def make_accelerator(config: TrainConfig) -> Accelerator:
    """An ``Accelerator`` with the config's precision and device.

    Under ``torchrun`` / ``accelerate launch`` on a machine without a GPU, Accelerate only joins
    the process group when told to use the CPU; without that every process would silently train
    alone. So when the launcher says there are several processes and Accelerate sees one, it is
    asked again with ``cpu=True`` (gloo backend), and an error is raised if that fails too.
    """
    acc = _new_accelerator(config, config.use_cpu)
    launched = _launched_world_size()
    if launched > 1 and acc.num_processes == 1 and not config.use_cpu:
        # (Accelerate may already have opened the process group; re-deriving its state keeps it)
        AcceleratorState._reset_state(reset_partial_state=True)
        acc = _new_accelerator(config, True)
    if launched > 1 and acc.num_processes != launched:
        raise RuntimeError(f"launched with {launched} processes but Accelerate joined "
                           f"{acc.num_processes}; check the launcher's environment")
    return acc
