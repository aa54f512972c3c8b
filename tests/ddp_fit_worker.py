"""Run by tests/test_train_ddp.py under ``torchrun --nproc_per_node 2``: trains the toy model
with :func:`pluralign.train.fit` and writes each process's final weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safetensors.torch import save_file
from train_toy import Toy, batch_fn, step_fn, val_fn, weights

from pluralign.train import TrainConfig, fit, loop


def main() -> None:
    out = Path(sys.argv[1])
    cfg = TrainConfig(learning_rate=1e-2, max_steps=int(sys.argv[2]) if len(sys.argv) > 2 else 6,
                      eval_steps=3, save_steps=3, logging_steps=1, max_grad_norm=1.0,
                      disable_tqdm=True)  # no use_cpu: fit must find the process group itself
    # different initial weights per rank: fit must broadcast rank 0's
    import torch.distributed as dist
    rank = int(__import__("os").environ["RANK"])
    model = Toy(seed=rank, dropout=0.0)
    loop._BUCKET = 40  # several all-reduce buckets, one tensor larger than a bucket
    res = fit(model, step_fn, batch_fn, cfg, out / "run", val_fn=val_fn)
    save_file(weights(model), str(out / f"rank{rank}.safetensors"))
    (out / f"rank{rank}.json").write_text(json.dumps({"step": res.step, "world": dist.get_world_size()}))
    # leave the group together: a rank exiting while gloo threads of the other still run can
    # abort in C++ ("terminate called without an active exception"), failing the run at random
    import torch.distributed as dist
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
