"""Time of the ICL baseline's scoring with and without the shared example prefix, and their gap.

One NP-DPO-shaped test task per context size: k = N^C choices of one user from the built-in
corpus as examples, 6 target pairs of other prompts, so 12 sequences share the example block
(`pluralign.policies.icl.icl_logprobs`, ``groups``). Prints seconds per task both ways, the
speed-up and the largest absolute difference of the summed log-probs (float rounding only).

    .venv/bin/python benchmarks/icl_prefix_sharing.py --model smollm2 --threads 1
    .venv/bin/python benchmarks/icl_prefix_sharing.py --model tiny       # seconds, a smoke test
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2", help="smollm2 or tiny")
    ap.add_argument("--contexts", default="0,2,6", help="N^C values, comma-separated")
    ap.add_argument("--targets", type=int, default=6)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from pluralign.data.builtin.corpus import load_corpus
    from pluralign.policies.icl import ICLConfig, icl_pair_scores

    if a.model == "tiny":
        from pluralign.policies.tiny import tiny_causal_lm, tiny_tokenizer

        tok, lm = tiny_tokenizer(), tiny_causal_lm("llama")
    else:
        from transformers import AutoTokenizer

        from pluralign.features.offline import load_base_model, resolve_model

        tok = AutoTokenizer.from_pretrained(resolve_model(a.model), local_files_only=True)
        lm = load_base_model(a.model).eval()
    # the corpus holds several responses per prompt; a pair is its shortest against its longest
    by_prompt: dict[str, list[dict]] = {}
    for row in load_corpus():
        by_prompt.setdefault(row["prompt_id"], []).append(row)
    items = [rows for rows in by_prompt.values() if len(rows) >= 2]
    rng = np.random.default_rng(0)

    def pair(rows):
        texts = sorted((r["response"] for r in rows), key=len)
        return rows[0]["prompt"], texts[0], texts[-1]

    cfg = ICLConfig(max_length=1536, max_example_words=60, batch_size=4)
    print(f"model {a.model}, {a.targets} target pairs per task, threads {torch.get_num_threads()}")
    print("N^C  whole (s)  shared (s)  speed-up  max |diff| (nats)")
    for k in (int(x) for x in a.contexts.split(",")):
        idx = rng.choice(len(items), size=k + a.targets, replace=False)
        examples = [pair(items[i]) for i in idx[:k]]
        targets = [pair(items[i]) for i in idx[k:]]
        args = (lm, tok, [examples] * len(targets), [t[0] for t in targets], [t[1] for t in targets],
                [t[2] for t in targets], cfg)
        # the no-example pass once, outside the timings (NP-DPO's report also computes it once)
        plain = icl_pair_scores(*args, share_prefix=False)["plain"]
        t0 = time.perf_counter()
        whole = icl_pair_scores(*args, plain=plain, share_prefix=False)
        t1 = time.perf_counter()
        shared = icl_pair_scores(*args, plain=plain)
        t2 = time.perf_counter()
        diff = float((shared["icl"] - whole["icl"]).abs().max())
        print(f"{k:>3}  {t1 - t0:>9.2f}  {t2 - t1:>10.2f}  {(t1 - t0) / (t2 - t1):>7.1f}x  {diff:.2e}")


if __name__ == "__main__":
    main()
