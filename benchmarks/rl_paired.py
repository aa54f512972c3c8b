"""Paired difference of one policy's success between two sets of ``pluralign rl bench`` runs, seed by
seed (issue 14; e.g. VPL + SPO with ``--vpl-posterior particles`` against ``variational`` on the same
seeds and policies: benchmarks/results/rl_particles/paired-fresh.sh), or of two policies (``--policy-b``:
e.g. VPL + max-norm against VPL + SPO, or against the oracle, whose one curve then stands for both
kinds of answers). Prints, per curve (random and, where the policy has one, active answers), each
seed's success in A and B with their means [95 % t] and the mean [95 % t] of B − A.

    python benchmarks/rl_paired.py --goals 10 --policy vpl+spo --n 8 \
        --a runs/rl-particles/paired-s33-variational --a ... --b runs/rl-particles/paired-s33-particles --b ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pluralign.eval.seeds import t_interval


def success(run: Path, k: int, curve: str, n: int) -> tuple[int, float]:
    """(seed, success in %) of ``curve`` at n answered queries in a bench run's K-goal results."""
    doc = json.loads((run / f"maze-{k}goals.json").read_text())
    return doc["config"]["seed"], 100 * doc["models"][curve][str(n)]["success"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", type=Path, action="append", required=True, help="baseline runs, one per seed")
    ap.add_argument("--b", type=Path, action="append", required=True, help="compared runs, the same seeds")
    ap.add_argument("--goals", type=int, default=10)
    ap.add_argument("--policy", default="vpl+spo")
    ap.add_argument("--policy-b", default=None, help="the policy read in the --b runs (default: --policy)")
    ap.add_argument("--n", type=int, default=8, help="answered queries")
    a = ap.parse_args()
    policy_b = a.policy_b or a.policy

    def curves(run: Path, policy: str) -> set[str]:
        return set(json.loads((run / f"maze-{a.goals}goals.json").read_text())["models"]) & {policy, f"{policy}/active"}

    in_a, in_b = curves(a.a[0], a.policy), curves(a.b[0], policy_b)
    for answers in ("", "/active"):
        curve_b = policy_b + answers
        # a policy without an active curve (the oracle, BTL, DPL) has one curve for both
        curve_a = a.policy + answers if a.policy + answers in in_a else a.policy
        if curve_b not in in_b or curve_a not in in_a:
            continue
        rows_a = dict(success(r, a.goals, curve_a, a.n) for r in a.a)
        rows_b = dict(success(r, a.goals, curve_b, a.n) for r in a.b)
        if set(rows_a) != set(rows_b) or len(rows_a) != len(a.a) or len(rows_b) != len(a.b):
            raise SystemExit(f"--a and --b must hold one run per seed, the same seeds: {sorted(rows_a)} vs {sorted(rows_b)}")
        seeds = sorted(rows_a)

        def cell(rows: dict[int, float]) -> str:
            t = t_interval([rows[s] for s in seeds])
            return " / ".join(f"{rows[s]:.0f}" for s in seeds) + f" ({t['mean']:.1f} [{t['low']:.1f}, {t['high']:.1f}])"

        diff = t_interval([rows_b[s] - rows_a[s] for s in seeds])
        curve = curve_b if curve_a == curve_b else f"A {curve_a}, B {curve_b}"
        print(f"{curve}, {a.goals} goals, n = {a.n}, seeds {seeds}: A {cell(rows_a)}, B {cell(rows_b)}; "
              f"B - A {diff['mean']:+.1f} [{diff['low']:.1f}, {diff['high']:.1f}]")

if __name__ == "__main__":
    main()
