"""Where a trained Mix-BTL loses to the Bayes line: its posterior, or its rewards? (issue 11 diagnostic)

On the validation tasks of ``pluralign bench defaults --split validation`` (the same sampler,
seed and 500 tasks per N^C) for a ``types-*`` population, scores one or more trained Mix-BTL runs
of that population and seed four ways, as accuracy minus the Bayes line (pp):

* ``model``: the run as the bench scores it (its own posterior over its M components);
* ``bayes posterior``: the exact posterior over the true types (what the Bayes line uses),
  each type mapped to the component that orders most of that type's validation pairs — the
  model's rewards under the ideal posterior;
* ``type known``: a point mass on the true type's component (the rewards alone);
* ``tempered τ``: the model's posterior with the context log-likelihood times τ (is the
  posterior too sure or not sure enough?);
* with two or more runs, ``ensemble``: their posterior predictives averaged.

    pluralign bench defaults --seed 2 --split validation --population types-k5-d8 --out runs/t11/base-k5
    python benchmarks/mix_btl_loss_split.py --population types-k5-d8 --seed 2 \\
        --run runs/t11/base-k5/types-k5-d8/runs/mix-btl/best

Validation split only (the bench reports the test split). Under a minute per run on one core.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from pluralign.data.populations import make_population
from pluralign.data.splits import by_split
from pluralign.eval.bayes import bayes_optimal_accuracy
from pluralign.eval.defaults_bench import POPULATIONS, DefaultsBenchConfig, eval_data
from pluralign.eval.metrics import EvalConfig, batches, correctness, sample_eval_tasks
from pluralign.rewards.mixture import MixBTLRewardModel

TEMPERATURES = (0.7, 1.5)


def best_components(model: MixBTLRewardModel, chosen: torch.Tensor, rejected: torch.Tensor,
                    likelihood: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each type, the component whose order agrees with most of its pairs, and that share."""
    right = (model.component_probs(chosen, rejected) > 0.5).double()  # (M, P)
    agree = (right @ likelihood.T + (1 - right) @ (1 - likelihood.T)) / likelihood.shape[1]  # (M, K)
    share, best = agree.max(0)
    return best, share


def mixed(log_w: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    """The posterior predictive Σ_m w_m P_m for weights (B, M) and component log-probs (B, T, M)."""
    return torch.logsumexp(log_w.unsqueeze(1) + log_p, -1).exp()


def accuracy(p: torch.Tensor, unseen: torch.Tensor) -> list[float]:
    """Per task, the share of unseen targets predicted right."""
    return ((correctness(p).double() * unseen).sum(1) / unseen.sum(1)).tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--population", default="types-k5-d8",
                    choices=[p.name for p in POPULATIONS if p.kind == "types"])
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--run", action="append", required=True, help="a Mix-BTL checkpoint folder (repeatable)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    bench = DefaultsBenchConfig()
    spec = next(p for p in POPULATIONS if p.name == a.population)
    records, _, pop = make_population(spec, seed=a.seed)
    data = eval_data(by_split(records)["validation"], pop, bench.mc_samples, a.seed)
    tasks = sample_eval_tasks(data, EvalConfig(context_sizes=bench.context_sizes, n_tasks=bench.n_eval_tasks,
                                               seed=a.seed + 12345, flip_test=False))  # as the bench's
    L = torch.tensor(np.asarray(data.likelihood), dtype=torch.float64)
    models = [MixBTLRewardModel.from_pretrained(r).eval() for r in a.run]
    with torch.no_grad():
        comps = [best_components(m, data.chosen, data.rejected, L) for m in models]
    for run, (best, share) in zip(a.run, comps):
        print(f"{run}: best component per type {best.tolist()}, orders "
              f"{[round(100 * float(s), 2) for s in share]} % of the type's validation pairs")
    for n, items in tasks.items():
        res = bayes_optimal_accuracy(data.likelihood, items)
        rows: dict[str, list[float]] = {}
        predictive: list[list[torch.Tensor]] = [[] for _ in models]
        masks: list[torch.Tensor] = []
        start = 0
        for batch in batches(items, data, 100, torch.device("cpu")):
            size = batch.context_chosen.shape[0]
            post = torch.tensor(np.asarray(res.posterior[start:start + size]))  # (B, K)
            true_type = torch.tensor([it.user_type for it in items[start:start + size]])
            start += size
            unseen = batch.target_unseen.double()
            masks.append(unseen)

            for i, (m, (best, _)) in enumerate(zip(models, comps)):
                with torch.no_grad():
                    log_t = m._log_p(batch.target_chosen, batch.target_rejected)  # (B, T, M)
                    evidence = (m._log_p(batch.context_chosen, batch.context_rejected)
                                * batch.context_mask.unsqueeze(-1)).sum(1)  # (B, M)
                    tag = f"[{i}] " if len(models) > 1 else ""
                    p = mixed(F.log_softmax(m.prior_logits + evidence, -1), log_t)
                    predictive[i].append(p)
                    rows.setdefault(f"{tag}model", []).extend(accuracy(p, unseen))
                    ideal = torch.full((size, m.config.n_components), -torch.inf, dtype=torch.float64)
                    for k in range(L.shape[0]):  # types sharing a best component pool their mass
                        ideal[:, best[k]] = torch.logaddexp(ideal[:, best[k]], post[:, k].log())
                    rows.setdefault(f"{tag}bayes posterior", []).extend(accuracy(mixed(ideal.float(), log_t), unseen))
                    known = torch.full((size, m.config.n_components), -torch.inf)
                    known[torch.arange(size), best[true_type]] = 0.0
                    rows.setdefault(f"{tag}type known", []).extend(accuracy(mixed(known, log_t), unseen))
                    for tau in TEMPERATURES:
                        p_tau = mixed(F.log_softmax(m.prior_logits + tau * evidence, -1), log_t)
                        rows.setdefault(f"{tag}tempered {tau:g}", []).extend(accuracy(p_tau, unseen))
        if len(models) > 1:
            averaged = [sum(parts) / len(parts) for parts in zip(*predictive)]
            rows["ensemble"] = [acc for p, u in zip(averaged, masks) for acc in accuracy(p, u)]
        bayes = 100 * res.expected_accuracy
        print(f"N^C={n}: Bayes {bayes:.2f} %; minus Bayes (pp): "
              + ", ".join(f"{k} {100 * float(np.nanmean(v)) - bayes:+.2f}" for k, v in rows.items()), flush=True)


if __name__ == "__main__":
    main()
