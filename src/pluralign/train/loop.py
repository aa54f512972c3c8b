"""The one training loop (DESIGN.md §5): optimisation, validation, best checkpoint, early stop,
JSONL log, progress bar, exact resume, and data parallelism — for any model.

What a step computes is passed in, so reward models and LM policies share this loop::

    result = fit(model, step_fn, batch_fn, TrainConfig(max_steps=2000), "runs/np-btl",
                 val_fn=lambda m: {"accuracy": ...})

* ``batch_fn(step, stream) -> batch`` must be deterministic in ``(step, stream)``. ``step`` is
  the optimiser step (0-based); ``stream = micro * num_processes + process_index`` for the
  ``micro``-th of ``gradient_accumulation_steps`` micro-batches, so every process and micro-batch
  gets its own data and resuming needs no data-loader state. (With one process and no
  accumulation, ``stream`` is 0.) A batch with a ``.to(device)`` method (e.g. ``TaskBatch``), a
  tensor, or a dict/list/tuple of them is moved to the device.
* ``step_fn(model, batch) -> (loss, metrics)``: a scalar loss tensor and a dict of floats (the
  same keys on every process), logged as running means.
* ``val_fn(model) -> dict`` runs on the main process under ``torch.no_grad()`` with the model in
  eval mode; ``config.metric_for_best_model`` must be one of its keys.

Only parameters with ``requires_grad`` are optimised (LoRA and other partly frozen models work
unchanged). Data parallelism: the model is not wrapped in ``DistributedDataParallel`` — our
models are called through methods (``personalize``, ``reward``, policy log-probs) that bypass
DDP's ``forward`` hook — instead every process broadcasts rank 0's weights at the start and
averages gradients with one bucketed all-reduce per step, which is what DDP computes.
The same code runs on one CPU, one GPU, or under ``accelerate launch`` / ``torchrun``.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object, set_seed
from torch import nn
from tqdm.auto import tqdm

from .accelerator import make_accelerator
from .config import TrainConfig
from .prefetch import PrefetchingBatchFn
from .state import (JsonlLog, has_last, load_last, load_model_weights, rng_state, save_last,
                    save_model, set_rng_state)

StepFn = Callable[[nn.Module, Any], "tuple[torch.Tensor, dict[str, float]]"]
BatchFn = Callable[[int, int], Any]
ValFn = Callable[[nn.Module], "dict[str, float]"]
_BUCKET = 1 << 24  # elements per all-reduce bucket (64 MiB of fp32)


@dataclass
class FitResult:
    """What :func:`fit` did. ``step``: optimiser steps completed in total (resumed ones too);
    ``best_*``: the best validation (``best_metrics`` is val_fn's whole dict at that step);
    ``resumed_from``: the step the run continued from, or None."""

    step: int
    best_step: int | None
    best_metric: float | None
    best_metrics: dict[str, float]
    stopped_early: bool
    resumed_from: int | None
    out_dir: Path
    train_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def best_dir(self) -> Path:
        return self.out_dir / "best"

    @property
    def last_dir(self) -> Path:
        return self.out_dir / "last"

    @property
    def log_path(self) -> Path:
        return self.out_dir / "log.jsonl"


class LRSchedule:
    """Multiplier of the base learning rate at a step: linear warm-up, then constant, linear
    decay to 0 or half-cosine decay to 0 at ``total`` steps (the Hugging Face schedules).
    A class, not a closure, so the scheduler's state dict can be saved."""

    def __init__(self, kind: str, warmup: int, total: int):
        self.kind, self.warmup, self.total = kind, warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return step / max(1, self.warmup)
        if self.kind == "constant":
            return 1.0
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        if self.kind == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if config.optim == "adamw" else torch.optim.Adam
    # the fused kernel (one pass over all parameters) computes the same update as the
    # per-tensor loop, in a fraction of the time for small models; used for fp32 parameters on
    # one CPU or CUDA device type
    fused = ({p.device.type for p in params} in ({"cpu"}, {"cuda"})
             and all(p.dtype == torch.float32 for p in params))
    return cls(params, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
               eps=config.adam_epsilon, weight_decay=config.weight_decay, fused=fused or None)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no parameter with requires_grad=True")
    return params


def to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(to_device(v, device) for v in obj)
    to = getattr(obj, "to", None)
    if callable(to) and not isinstance(obj, (str, bytes, nn.Module)):
        return to(device)
    return obj


def _buckets(tensors: list[torch.Tensor]):
    bucket: list[torch.Tensor] = []
    size = 0
    for t in tensors:
        if bucket and size + t.numel() > _BUCKET:
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += t.numel()
    if bucket:
        yield bucket


def _all_reduce_mean(tensors: list[torch.Tensor], world: int) -> None:
    """Average ``tensors`` in place over all processes (flattened buckets, one per dtype run)."""
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = defaultdict(list)
    for t in tensors:
        by_dtype[t.dtype].append(t)
    for group in by_dtype.values():
        for bucket in _buckets(group):
            flat = torch.cat([b.reshape(-1) for b in bucket])
            dist.all_reduce(flat)
            flat /= world
            offset = 0
            for b in bucket:
                b.copy_(flat[offset: offset + b.numel()].view_as(b))
                offset += b.numel()


def _better(value: float, best: float | None, config: TrainConfig) -> bool:
    if best is None:
        return True
    delta = value - best if config.greater_is_better else best - value
    return delta > config.early_stopping_threshold


def fit(model: nn.Module, step_fn: StepFn, batch_fn: BatchFn, config: TrainConfig,
        out_dir: str | Path, val_fn: ValFn | None = None, *,
        accelerator: Accelerator | None = None) -> FitResult:
    """Train ``model`` in place for ``config.max_steps`` optimiser steps (see the module doc).

    Writes ``out_dir/log.jsonl``, ``out_dir/last`` (resumable) and ``out_dir/best`` (the best
    validation checkpoint; without ``val_fn``, the final model). With
    ``config.resume_from_checkpoint`` and an existing ``out_dir/last``, training continues from
    it and ends with the same weights an uninterrupted run would have. With
    ``config.load_best_model_at_end`` the best weights are loaded back into ``model``.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    out = Path(out_dir)
    acc = accelerator or make_accelerator(config)
    main, rank, world = acc.is_main_process, acc.process_index, acc.num_processes
    device = acc.device
    if main:
        out.mkdir(parents=True, exist_ok=True)
    acc.wait_for_everyone()
    set_seed(config.seed + rank)

    model.to(device)
    if world > 1:  # start every process from rank 0's weights, as DDP does
        with torch.no_grad():
            for t in model.state_dict().values():
                dist.broadcast(t, src=0)
    params = trainable_parameters(model)
    optimizer = build_optimizer(params, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, LRSchedule(config.lr_scheduler_type, config.num_warmup_steps, config.max_steps))
    optimizer = acc.prepare_optimizer(optimizer)  # fp16 loss scaling; the scheduler stays ours

    log = JsonlLog(out / "log.jsonl", enabled=main)
    step, resumed_from, stopped = 0, None, False
    best: dict[str, Any] = {"metric": None, "step": None, "metrics": {}, "bad_evals": 0}
    last_dir, best_dir = out / "last", out / "best"
    if config.resume_from_checkpoint and has_last(last_dir):
        meta, model_state, objects = load_last(last_dir, device)
        model.load_state_dict(model_state)
        model.to(device)
        optimizer.load_state_dict(objects["optimizer"])
        scheduler.load_state_dict(objects["scheduler"])
        if acc.scaler is not None and "scaler" in objects:
            acc.scaler.load_state_dict(objects["scaler"])
        rngs = objects["rng"]
        if len(rngs) == world:
            set_rng_state(rngs[rank])
        elif main:
            acc.print(f"warning: {last_dir} was written by {len(rngs)} process(es), this run has "
                      f"{world}; random states are reseeded, so the run is not bit-identical")
        step, resumed_from, stopped = meta["step"], meta["step"], meta.get("stopped_early", False)
        best = meta["best"]
        log.truncate_after(step)
        if meta.get("train_config", {}).get("max_steps") != config.max_steps:
            # the saved schedule (a callable object, restored with its total) would keep the old
            # length: a run extended with a larger budget would continue at lr 0. Stretch it to
            # this run's budget instead, from the step reached.
            schedule = LRSchedule(config.lr_scheduler_type, config.num_warmup_steps, config.max_steps)
            scheduler.lr_lambdas = [schedule] * len(scheduler.lr_lambdas)
            for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
                group["lr"] = base * schedule(scheduler.last_epoch)
            scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr() logs
            if main:
                acc.print(f"note: resuming {last_dir} (step {step}) with max_steps={config.max_steps} "
                          f"(was {meta.get('train_config', {}).get('max_steps')}); the learning-rate "
                          "schedule now spans the new budget")

    def trainer_state() -> dict[str, Any]:
        return {"step": step, "best": best, "stopped_early": stopped,
                "num_processes": world, "train_config": config.to_dict()}

    def save_checkpoint() -> None:
        states = gather_object([rng_state()]) if world > 1 else [rng_state()]
        if main:
            save_last(last_dir, model, optimizer, scheduler, acc.scaler, states, trainer_state())
        acc.wait_for_everyone()

    def validate() -> bool:
        """Run val_fn, keep the best checkpoint; True when early stopping triggers."""
        metrics = None
        if main:
            was_training = model.training
            model.eval()
            with torch.no_grad(), acc.autocast():
                metrics = {k: float(v) for k, v in val_fn(model).items()}
            model.train(was_training)
        if world > 1:
            metrics = broadcast_object_list([metrics])[0]
        if config.metric_for_best_model not in metrics:  # every process raises, none hangs
            raise KeyError(f"val_fn returned {sorted(metrics)}, which lacks "
                           f"metric_for_best_model={config.metric_for_best_model!r}")
        value = metrics[config.metric_for_best_model]
        improved = _better(value, best["metric"], config)
        if improved:
            best.update(metric=value, step=step, metrics=metrics, bad_evals=0)
            if main:
                save_model(best_dir, model, {"step": step, **metrics})
            acc.wait_for_everyone()
        else:
            best["bad_evals"] += 1
        log.write({"event": "eval", "step": step, **metrics, "is_best": improved})
        patience = config.early_stopping_patience
        return patience is not None and best["bad_evals"] >= patience

    if val_fn is not None and config.eval_on_start and step == 0 and resumed_from is None:
        stopped = validate()

    prefetch = PrefetchingBatchFn(batch_fn) if config.prefetch_batches else None
    next_batch = prefetch or batch_fn
    accum = config.gradient_accumulation_steps
    window: dict[str, float] = defaultdict(float)
    window_n, train_metrics, t0 = 0, {}, time.time()
    bar = tqdm(total=config.max_steps, initial=step, disable=not main or config.disable_tqdm,
               desc=f"training {type(model).__name__}", dynamic_ncols=True)
    model.train()
    try:
        while step < config.max_steps and not stopped:
            sums: dict[str, float] = defaultdict(float)
            for micro in range(accum):
                batch = to_device(next_batch(step, micro * world + rank), device)
                with acc.autocast():
                    loss, metrics = step_fn(model, batch)
                acc.backward(loss / accum)
                sums["loss"] += float(loss.detach()) / accum
                for k, v in metrics.items():
                    if k != "loss":
                        sums[k] += float(v) / accum
            keys = sorted(sums)
            values = torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=device)
            if world > 1:
                for p in params:  # every process must reduce the same tensors
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                _all_reduce_mean([p.grad for p in params], world)
                values = acc.reduce(values, reduction="mean")
            step_metrics = dict(zip(keys, values.tolist()))
            if not math.isfinite(step_metrics["loss"]) and config.mixed_precision != "fp16":
                raise FloatingPointError(f"loss is {step_metrics['loss']} at step {step}; lower the "
                                         f"learning rate or check the data")
            if config.max_grad_norm:
                step_metrics["grad_norm"] = float(acc.clip_grad_norm_(params, config.max_grad_norm))
            step_metrics["learning_rate"] = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)

            for k, v in step_metrics.items():
                window[k] += v
            window_n += 1
            if step % config.logging_steps == 0 or step == config.max_steps:
                train_metrics = {k: v / window_n for k, v in window.items()}
                log.write({"event": "train", "step": step, **train_metrics,
                           "elapsed_s": round(time.time() - t0, 3)})
                bar.set_postfix(loss=f"{train_metrics['loss']:.4g}")
                window, window_n = defaultdict(float), 0
            if val_fn is not None and (step % config.eval_steps == 0 or step == config.max_steps):
                stopped = validate()
                if best["metric"] is not None:
                    bar.set_postfix(loss=f"{step_metrics['loss']:.4g}",
                                    **{f"best_{config.metric_for_best_model}": f"{best['metric']:.4g}"})
            if step % config.save_steps == 0 or step == config.max_steps or stopped:
                save_checkpoint()
    finally:
        if prefetch is not None:
            prefetch.close()
    bar.close()

    if val_fn is None and main:  # no validation: the final model is the one to keep
        save_model(best_dir, model, {"step": step, **train_metrics})
    acc.wait_for_everyone()
    if config.load_best_model_at_end and val_fn is not None and best["step"] is not None:
        if not load_model_weights(best_dir, model):
            acc.print(f"note: {best_dir} is not a plain state dict of this model; the model keeps "
                      f"its final weights (load the best one with its from_pretrained)")
    return FitResult(step=step, best_step=best["step"], best_metric=best["metric"],
                     best_metrics=best["metrics"], stopped_early=stopped, resumed_from=resumed_from,
                     out_dir=out, train_metrics=train_metrics)

