"""Time and memory of one NP-DPO training step vs one plain (LoRA) DPO step on the same model.

Each variant runs in its own subprocess so its peak resident memory (ru_maxrss) is its own.
A step = set encoder (NP-DPO only) + policy forward/backward on 2*N^T sequences + Adam update;
reference log-probs are precomputed (as in training), so they are not part of the step.
Also reports the FiLM overhead on a forward pass: hooks active (z set) vs inactive, same
weights, and the hypernetwork's parameter count.

    .venv/bin/python benchmarks/policy_step.py --model smollm2 --seq-len 96 --targets 9
    .venv/bin/python benchmarks/policy_step.py --model tiny   # seconds, for a smoke test
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def _build(args, film: bool):
    from pluralign.features.offline import load_base_model
    from pluralign.policies.np_dpo.policy import NPDPOConfig, NPDPOPolicy
    from pluralign.policies.tiny import tiny_causal_lm

    base = tiny_causal_lm("llama", hidden_size=64) if args.model == "tiny" else load_base_model(args.model)
    cfg = NPDPOConfig(base_model=args.model, option_dim=384, film=film, z_dim=args.z_dim,
                      lora_rank=args.lora_rank, lora_alpha=2.0 * args.lora_rank,
                      trainable_layers=args.trainable_layers)
    return NPDPOPolicy(base, cfg)


def _inputs(args, vocab: int):
    from pluralign.policies.logprobs import collate_tokenized

    g = torch.Generator().manual_seed(0)
    n = 2 * args.targets
    p_len = args.seq_len // 3
    seqs = [(torch.randint(0, vocab, (p_len,), generator=g).tolist(),
             torch.randint(0, vocab, (args.seq_len - p_len,), generator=g).tolist()) for _ in range(n)]
    batch = collate_tokenized(seqs, pad_token_id=0, padding_side="left")
    ctx = (torch.randn(1, args.context, 384, generator=g), torch.randn(1, args.context, 384, generator=g),
           torch.ones(1, args.context, dtype=torch.bool))
    return batch, ctx


def run_variant(args) -> dict:
    """One variant in this process: mean seconds per step and peak RSS."""
    from pluralign.losses import dpo_loss

    torch.manual_seed(0)
    film = args.variant == "np-dpo"
    policy = _build(args, film).train()
    vocab = policy.lm.get_base_model().config.vocab_size
    batch, ctx = _inputs(args, vocab)
    ref = policy.reference_logprobs(batch)
    prefix = None
    if args.prefix_cache:
        from pluralign.policies.prefix import capture_block_input

        if not policy.frozen_blocks:
            raise SystemExit("--prefix-cache needs --trainable-layers on a Llama/Qwen2-style model")
        with capture_block_input(policy.lm, policy.frozen_blocks) as seen:
            policy.reference_logprobs(batch)
        prefix = seen[0]
    n = args.targets
    opt = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        z = policy.encode(*ctx) if film else None
        logps = policy.logprobs(batch, z, prefix=prefix)
        loss, _, _ = dpo_loss(logps[:n], logps[n:], ref[:n], ref[n:], beta=0.1)
        opt.zero_grad(set_to_none=True)
        loss.mean().backward()
        opt.step()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    # min over steps: on a shared CPU the fastest step is the least disturbed one
    out = {"variant": args.variant, "sec_per_step": min(times), "sec_per_step_mean": sum(times) / len(times),
           "trainable_params": sum(p.numel() for p in policy.parameters() if p.requires_grad),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if film:
        # forward-only FiLM overhead: same weights, hooks inactive vs active
        policy.eval()
        z = policy.encode(*ctx)
        fwd = {}
        with torch.no_grad():
            ts: dict[str, list[float]] = {"film_off": [], "film_on": []}
            for _ in range(args.steps + 1):  # interleaved, so load changes hit both alike
                for name, zz in (("film_off", None), ("film_on", z)):
                    t0 = time.perf_counter()
                    policy.logprobs(batch, zz, prefix=prefix)
                    ts[name].append(time.perf_counter() - t0)
            fwd = {name: min(v[1:]) for name, v in ts.items()}
        out.update(forward_sec_film_off=fwd["film_off"], forward_sec_film_on=fwd["film_on"],
                   film_params=sum(p.numel() for p in policy.film.parameters()),
                   encoder_params=sum(p.numel() for p in policy.encoder.parameters()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2", help="'smollm2', a local HF folder, or 'tiny'")
    ap.add_argument("--seq-len", type=int, default=96, help="tokens per sequence (prompt + response)")
    ap.add_argument("--targets", type=int, default=9, help="N^T pairs per task (2*N^T sequences)")
    ap.add_argument("--context", type=int, default=3, help="N^C context pairs")
    ap.add_argument("--z-dim", type=int, default=64)
    ap.add_argument("--lora-rank", type=int, default=8)
    ap.add_argument("--trainable-layers", type=int, default=None,
                    help="LoRA + FiLM on the top k blocks only (default: all, the paper)")
    ap.add_argument("--prefix-cache", action="store_true",
                    help="run only the trainable top blocks from cached frozen-block states (prefix.py)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 avoids spin-wait collapse on a shared CPU)")
    ap.add_argument("--variant", choices=["np-dpo", "dpo"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.variant:
        print(json.dumps(run_variant(args)))
        return
    results = {}
    for variant in ("dpo", "np-dpo"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--variant", variant]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{variant} failed:\n{proc.stderr[-3000:]}")
        results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
    d, f = results["dpo"], results["np-dpo"]
    print(f"model={args.model} seq_len={args.seq_len} sequences/step={2 * args.targets} "
          f"N^C={args.context} lora_rank={args.lora_rank} z_dim={args.z_dim} "
          f"trainable_layers={args.trainable_layers or 'all'} prefix_cache={args.prefix_cache} "
          f"threads={args.threads}")
    print(f"{'variant':<8} {'s/step (min)':>12} {'peak RSS MB':>12} {'trainable':>12}")
    for name, r in (("DPO", d), ("NP-DPO", f)):
        print(f"{name:<8} {r['sec_per_step']:>12.3f} {r['peak_rss_mb']:>12.0f} {r['trainable_params']:>12,}")
    print(f"NP-DPO / DPO step time: {f['sec_per_step'] / d['sec_per_step']:.3f}x; "
          f"extra peak RSS: {f['peak_rss_mb'] - d['peak_rss_mb']:+.0f} MB")
    print(f"FiLM forward overhead: {f['forward_sec_film_on']:.3f}s on vs {f['forward_sec_film_off']:.3f}s off "
          f"({100 * (f['forward_sec_film_on'] / f['forward_sec_film_off'] - 1):+.1f}%); "
          f"FiLM params {f['film_params']:,}, encoder params {f['encoder_params']:,}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
