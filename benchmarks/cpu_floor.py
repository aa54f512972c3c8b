"""What this CPU can do at best for issue 15's latency target: the one product a user's scores
of 1,000 seen candidates cannot avoid with the default two-hidden-layer head, and bf16 against
fp32 (the training target assumed bf16 hardware).

    python benchmarks/cpu_floor.py [--repeats 300]

With candidates prepared (``prepare_candidates``), a user's scores still need, per candidate,
MLP2's second hidden layer on GELU(option part + user part): a (1000 x 256) @ (256 x 256)
product, 65.5 MFLOP, plus two GELUs over 1000 x 256 values. With one hidden layer
(``n_hidden_layers: 1``) only a GELU and a (256 -> 1) product remain. This prints the median
wall time of each piece on 1 and 2 threads, in fp32 and bf16, and the CPU's relevant flags,
then beside them our NP-BTL's personalize (10 pairs) + score of 1,000 prepared candidates on 2
threads at both depths (the calls ``np_btl_throughput.py`` times as "seen").
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pluralign.rewards import build_reward_model


def median_ms(fn, repeats: int) -> float:  # noqa: ANN001
    times = []
    for i in range(repeats + 20):
        start = time.perf_counter()
        fn()
        if i >= 20:  # warm-up: allocator and thread pool
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def cpu_flags() -> str:
    info = Path("/proc/cpuinfo")
    if not info.exists():
        return "unknown"
    text = info.read_text()
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}; {' '.join(wanted) or 'no AVX2'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--hidden", type=int, default=256)
    args = ap.parse_args()
    n, h = args.candidates, args.hidden
    print(f"CPU: {cpu_flags()}; torch {torch.__version__}")
    print(f"median ms over {args.repeats} calls ({n} candidates, width {h}):")
    with torch.inference_mode():
        for threads in (1, 2):
            torch.set_num_threads(threads)
            row = {}
            for dtype in (torch.float32, torch.bfloat16):
                x, w, b = torch.rand(n, h, dtype=dtype), torch.rand(h, h, dtype=dtype), torch.rand(h, dtype=dtype)
                name = "fp32" if dtype == torch.float32 else "bf16"
                row[f"{name} {n}x{h}x{h} product"] = median_ms(lambda: F.linear(x, w, b), args.repeats)
                row[f"{name} GELU"] = median_ms(lambda: F.gelu(x), args.repeats)
            gflops = 2 * n * h * h / row[f"fp32 {n}x{h}x{h} product"] / 1e6
            print(f"  {threads} thread(s): " + ", ".join(f"{k} {v:.3f}" for k, v in row.items())
                  + f"  (fp32 product at {gflops:.0f} GFLOP/s)")
    torch.set_num_threads(2)
    print(f"NP-BTL personalize (10 pairs) + score {n} prepared candidates, 2 threads, median ms:")
    for layers in (1, 2):
        for dim in (1, 384):
            torch.manual_seed(0)  # built outside inference mode, as a loaded model is
            model = build_reward_model("np-btl", option_dim=dim, n_hidden_layers=layers).eval()
            chosen, rejected = torch.rand(1, 10, dim), torch.rand(1, 10, dim)
            mask = torch.ones(1, 10, dtype=torch.bool)
            with torch.inference_mode():
                prepared = model.prepare_candidates(torch.rand(n, dim))
                ms = median_ms(lambda: model.score_candidates(prepared, model.personalize(chosen, rejected, mask)),
                               args.repeats)
            print(f"  {layers} hidden layer(s), {dim}-d options: {ms:.3f}")

if __name__ == "__main__":
    main()
