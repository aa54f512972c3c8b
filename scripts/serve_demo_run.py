"""Make the run the README serves: NP-BTL trained on the built-in concise-vs-detailed corpus
(`corpus-2mode`, real SmolLM2 answers, offline) through the bundled MiniLM, plus ``pool.json``
(test-split questions and one prompt's answers) for the web page.

    python scripts/serve_demo_run.py --out runs/serve-demo      # a few minutes on 2 CPU cores

``pluralign train --data FILE --model np-btl --out RUN`` makes the same kind of run from your
own text preferences; this script only fixes the data, the steps and the pool.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from pluralign.data.builtin import load
from pluralign.features.options import open_embedder
from pluralign.train.config import TrainConfig
from pluralign.train.rewards import RewardTrainConfig, TaskConfig
from pluralign.train.run import train_run


def pool_for_page(records, n_questions: int = 40, seed: int = 0) -> dict:
    """Questions from test-split pairs, and the candidates of the test prompt with most answers."""
    rng = random.Random(seed)
    test = [r for r in records if r.split == "test"]
    pairs = {}
    for r in test:
        pairs.setdefault(r.pair_id, r)
    picked = rng.sample(sorted(pairs.values(), key=lambda r: r.pair_id), n_questions)
    questions = [{"prompt": r.prompt, "a": r.chosen, "b": r.rejected} for r in picked]
    answers: dict[str, set[str]] = {}
    for r in test:
        answers.setdefault(r.prompt, set()).update([r.chosen, r.rejected])
    prompt = max(sorted(answers), key=lambda p: len(answers[p]))
    return {"questions": questions, "candidates": {"prompt": prompt, "responses": sorted(answers[prompt])}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/serve-demo"))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    records = load("corpus-2mode", seed=args.seed)
    embedder = open_embedder("minilm")
    cfg = RewardTrainConfig(
        model={"encoder": "deepset", "pooling": "sum", "z_dim": 64, "hidden_dim": 256},
        tasks=TaskConfig(n_tasks=64, context_max=8, n_target=8, val_tasks=256, seed=args.seed),
        train=TrainConfig(learning_rate=1e-3, max_steps=args.steps, eval_steps=100, save_steps=100,
                          metric_for_best_model="accuracy", greater_is_better=True,
                          load_best_model_at_end=True, seed=args.seed))
    _, result, _ = train_run(records, "np-btl", cfg, args.out, embedder=embedder, data_file="builtin:corpus-2mode")
    (args.out / "pool.json").write_text(json.dumps(pool_for_page(records, seed=args.seed), indent=1) + "\n")
    print(f"best validation accuracy {result.best_metrics} at step {result.best_step}; "
          f"run in {args.out}, page pool in {args.out / 'pool.json'}")


if __name__ == "__main__":
    main()
