"""Two CPU processes (torchrun, gloo) train the toy model with fit(): both end with the same
weights, and those match one process that accumulates the same two micro-batches per step."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_toy import Toy, batch_fn, step_fn, val_fn, weights

from pluralign.train import TrainConfig, fit

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(script: str, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           str(HERE / script), *map(str, args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_two_processes_end_with_equal_weights(tmp_path):
    proc = torchrun("ddp_fit_worker.py", tmp_path, 6)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for r in (0, 1):  # really one process group of two, not two lone processes
        assert json.loads((tmp_path / f"rank{r}.json").read_text()) == {"step": 6, "world": 2}
    w0 = load_file(str(tmp_path / "rank0.safetensors"))
    w1 = load_file(str(tmp_path / "rank1.safetensors"))
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    # rank 1 started from other weights (seed 1); the broadcast made it start from rank 0's
    assert not torch.equal(w0["net.0.weight"], Toy(seed=1).state_dict()["net.0.weight"])

    # one process, two accumulated micro-batches = the same data (streams 0 and 1) per step
    single = Toy(seed=0, dropout=0.0)
    fit(single, step_fn, batch_fn,
        TrainConfig(learning_rate=1e-2, max_steps=6, eval_steps=3, save_steps=3, max_grad_norm=1.0,
                    gradient_accumulation_steps=2, disable_tqdm=True, use_cpu=True),
        tmp_path / "single", val_fn=val_fn)
    for k, v in weights(single).items():
        torch.testing.assert_close(w0[k], v, rtol=1e-5, atol=1e-6)
    # checkpoints and log were written once, by the main process
    assert (tmp_path / "run" / "last" / "rng.pt").is_file()
    steps = [line for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if '"train"' in line]
    assert len(steps) == 6


@pytest.mark.slow
def test_two_process_resume_is_bit_identical(tmp_path):
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    proc = torchrun("ddp_resume_worker.py", full, -1)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert torchrun("ddp_resume_worker.py", resumed, 6).returncode != 0  # crashed at step 6
    proc = torchrun("ddp_resume_worker.py", resumed, -1)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for rank in (0, 1):
        assert (resumed / f"resumed{rank}.txt").read_text() == "4"  # from last/ at step 4
        a = load_file(str(full / f"final{rank}.safetensors"))
        b = load_file(str(resumed / f"final{rank}.safetensors"))
        for k in a:
            assert torch.equal(a[k], b[k]), (rank, k)
