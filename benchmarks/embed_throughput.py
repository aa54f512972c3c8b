"""Embedding throughput (texts/s) of the offline default models on this machine.

Runs each model on the same ``--n`` (prompt, response) texts of varied length (no cache, so every
text is computed), after one warm-up batch, and prints texts/s and tokens/s. Texts are generated
deterministically from a small word list: prompts of 8–30 words, responses of 20–160 words.

    .venv/bin/python benchmarks/embed_throughput.py                   # MiniLM and SmolLM2
    .venv/bin/python benchmarks/embed_throughput.py --models minilm --n 512 --batch-size 64
    .venv/bin/python benchmarks/embed_throughput.py --dtype bfloat16   # faster on avx512_bf16 CPUs

The figures depend on what else the CPU is doing; the script prints the torch thread count and
the load average so a reader can judge.
"""

from __future__ import annotations

import argparse
import os
import random
import time

import torch

from pluralign.features.embed import load_embedder

WORDS = ("the model answer question helpful honest response user data reason because example city river "
         "history science simple detail explain step first second finally result small large quickly "
         "carefully important note consider option choose better worse people time water energy light "
         "language learning preference reward policy context pair sample").split()


def make_texts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    prompts = [" ".join(rng.choices(WORDS, k=rng.randint(8, 30))).capitalize() + "?" for _ in range(n)]
    responses = [" ".join(rng.choices(WORDS, k=rng.randint(20, 160))).capitalize() + "." for _ in range(n)]
    return prompts, responses


def measure(model: str, n: int, batch_size: int, max_length: int, dtype: str = "float32") -> dict:
    t0 = time.perf_counter()
    emb = load_embedder(model=model, batch_size=batch_size, max_length=max_length, dtype=dtype, use_cache=False)
    load_s = time.perf_counter() - t0
    emb.progress = False
    prompts, responses = make_texts(n)
    emb.embed(["warm up"] * batch_size, [f"warm up {i}" for i in range(batch_size)])
    texts = [emb.format(p, r) for p, r in zip(prompts, responses)]
    n_tokens = sum(len(x) for x in emb._tokenize(texts))
    t0 = time.perf_counter()
    vectors = emb.encode(texts)
    run_s = time.perf_counter() - t0
    return {"model": model, "dtype": dtype, "pooling": emb.pooling, "template": emb.template, "dim": vectors.shape[1],
            "texts": n, "mean_tokens": n_tokens / n, "load_s": load_s, "run_s": run_s,
            "texts_per_s": n / run_s, "tokens_per_s": n_tokens / run_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["minilm", "smollm2"])
    parser.add_argument("--n", type=int, default=256, help="texts per model")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="bfloat16 is faster on CPUs with avx512_bf16/AMX (vectors differ slightly)")
    args = parser.parse_args()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; n={args.n}, batch={args.batch_size}, "
          f"max_length={args.max_length}")
    header = f"{'model':<10} {'dtype':<8} {'pooling':<11} {'template':<8} {'dim':>5} {'tok/text':>8} {'load s':>7} {'texts/s':>8} {'tokens/s':>9}"
    print(header)
    print("-" * len(header))
    for model in args.models:
        r = measure(model, args.n, args.batch_size, args.max_length, args.dtype)
        print(f"{r['model']:<10} {r['dtype']:<8} {r['pooling']:<11} {r['template']:<8} {r['dim']:>5} {r['mean_tokens']:>8.1f} "
              f"{r['load_s']:>7.1f} {r['texts_per_s']:>8.2f} {r['tokens_per_s']:>9.0f}", flush=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
