"""Run by tests/test_train_ddp.py under ``torchrun --nproc_per_node 2``: trains the toy model
(with dropout, so every process's RNG state matters), optionally "crashing" at a step."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from safetensors.torch import save_file
from train_toy import Toy, batch_fn, step_fn, val_fn, weights

from pluralign.train import TrainConfig, fit


def main() -> None:
    out, crash_at = Path(sys.argv[1]), int(sys.argv[2])
    cfg = TrainConfig(learning_rate=1e-2, max_steps=10, eval_steps=3, save_steps=4,
                      lr_scheduler_type="cosine", disable_tqdm=True)

    def batches(step: int, stream: int):
        if step == crash_at:
            raise SystemExit(3)  # simulated crash of every process
        return batch_fn(step, stream)

    model = Toy(seed=0, dropout=0.2)
    res = fit(model, step_fn, batches, cfg, out, val_fn=val_fn)
    rank = os.environ["RANK"]
    save_file(weights(model), str(out / f"final{rank}.safetensors"))
    (out / f"resumed{rank}.txt").write_text(str(res.resumed_from))
    # leave the group together: a rank exiting while gloo threads of the other still run can
    # abort in C++ ("terminate called without an active exception"), failing the run at random
    import torch.distributed as dist
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
