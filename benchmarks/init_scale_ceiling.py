"""How close does a reward MLP get to a linear user's ordering from its own pairs, by initial
scale? (issue 11 diagnostic behind Mix-BTL's ``init_scale``)

For a ``types-*`` population of ``pluralign bench defaults`` (validation split only), trains
one plain Bradley–Terry MLP per user type on that type's training pairs — the default reward
network (2 × 256 GELU), Adam at lr 1e-3 with a half-cosine decay, 4,000 steps of 256 pairs —
with every initial weight and bias multiplied by ``--init-scale``, and prints the share of the
type's validation pairs it orders right every 500 steps. The users' rewards are linear, and a
linear fit of the same pairs orders 99.8-100 % (``benchmarks/known_type_ceiling.py``); a small
start keeps the MLP closer to linear.

    python benchmarks/init_scale_ceiling.py --population types-k5-d8 --seed 2 --init-scale 1 0.5 0.3 0.2 0.1

About 2 minutes per scale on one core (5 types).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from torch import nn

from pluralign.data.populations import make_population
from pluralign.data.tables import option_vectors
from pluralign.eval.defaults_bench import POPULATIONS
from pluralign.nn import MLP


def type_accuracy(chosen: torch.Tensor, rejected: torch.Tensor, val: tuple[torch.Tensor, torch.Tensor],
                  init_scale: float, steps: int, batch: int, seed: int) -> list[float]:
    """Validation accuracy (%) every 500 steps of one BT MLP trained on (chosen, rejected)."""
    torch.manual_seed(seed)
    net = MLP(chosen.shape[1], 1)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(init_scale)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    history = []
    for step in range(1, steps + 1):
        i = torch.randint(len(chosen), (batch,), generator=gen)
        loss = -nn.functional.logsigmoid(net(chosen[i]) - net(rejected[i])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0:
            with torch.no_grad():
                history.append(round(100 * float((net(val[0]) > net(val[1])).float().mean()), 2))
    return history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--population", default="types-k5-d8",
                    choices=[p.name for p in POPULATIONS if p.kind == "types"])
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--init-scale", type=float, nargs="+", default=[1.0, 0.1])
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()
    torch.set_num_threads(1)
    spec = next(p for p in POPULATIONS if p.name == a.population)
    records, _, _ = make_population(spec, seed=a.seed)
    users = sorted({r.user_id for r in records})  # one user per type in these populations
    data = {u: {s: [t.float() for t in option_vectors([r for r in records if r.user_id == u and r.split == s])]
                for s in ("train", "validation")} for u in users}
    out = {}
    for scale in a.init_scale:
        final = {u: type_accuracy(*data[u]["train"], data[u]["validation"], scale, a.steps, a.batch, a.seed)[-1]
                 for u in users}
        out[scale] = {"per_type": final, "mean": round(float(np.mean(list(final.values()))), 2)}
        print(f"init scale {scale}: {out[scale]['mean']:.2f} % of each type's validation pairs on average "
              f"({', '.join(f'{u} {v:.2f}' for u, v in final.items())})", flush=True)
    print(json.dumps({"population": a.population, "seed": a.seed, "steps": a.steps, "by_init_scale": out}))


if __name__ == "__main__":
    main()
