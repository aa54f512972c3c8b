"""Evaluating steerable policies: implicit-reward accuracy vs N^C per user type, and steered
generations scored by the built-in attribute scorers (NP paper §4.2, Fig. 2b).

**Accuracy.** For each user type, test tasks hold a context pool of max(N^C) pairs and N^T
target pairs, disjoint (so every target is unseen). Each N^C point uses the first N^C pairs of
the same pool with the same targets: a paired design, so the curve's shape is not noise from
resampling targets. A target pair is right when the implicit reward
r = beta * log pi(y | x, z) / pi_ref(y | x) of the chosen response exceeds the rejected one's
(an exact tie counts 1/2). Unconditioned baselines (BTL-DPO, per-type DPO) ignore the context,
so their per-pair scores are computed once and read at every N^C. Standard errors are over tasks.
The document follows :mod:`pluralign.eval.results` (``models``, ``per_type``).

**Behaviour.** For a new user of each type, k of their pairs give z; the steered policy answers
held-out prompts and the answers are scored (e.g. ``length`` = words), next to the base model
and the baselines.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ...data.tasks import TaskItem, TaskSampler
from ...eval.metrics import summarize
from .data import PolicyBatch, PolicyData
from ..logprobs import encode_prompts, prompt_text
from .policy import NPDPOPolicy
from .train import policy_logprobs


@dataclass
class PolicyEvalConfig:
    """context_sizes: N^C of each point. n_tasks: tasks per user type. n_target: N^T.
    seed: the evaluation sampler's own seed."""

    context_sizes: tuple[int, ...] = (0, 1, 2, 4, 6)
    n_tasks: int = 8
    n_target: int = 9
    seed: int = 12345

    def __post_init__(self) -> None:
        self.context_sizes = tuple(sorted(int(n) for n in self.context_sizes))
        if not self.context_sizes or self.context_sizes[0] < 0:
            raise ValueError(f"context_sizes must be non-negative, got {self.context_sizes}")
        if self.n_tasks < 1 or self.n_target < 1:
            raise ValueError("n_tasks and n_target must be >= 1")


def sample_type_tasks(data: PolicyData, config: PolicyEvalConfig) -> dict[int, list[TaskItem]]:
    """``n_tasks`` tasks per user type, each with a context pool of max(N^C) pairs disjoint
    from its N^T targets (indices into ``data``)."""
    out = {}
    pool = max(config.context_sizes)
    for t in sorted(set(data.types) - {-1}):
        idx = np.flatnonzero(np.asarray(data.types) == t)
        sampler = TaskSampler([data.users[i] for i in idx], context_range=(pool, pool),
                              n_target=config.n_target, context_in_target=False, seed=config.seed + t)
        items = sampler.sample(config.n_tasks, step=0)
        out[t] = [TaskItem(it.user, t, idx[it.context], idx[it.target], it.unseen) for it in items]
    if not out:
        raise ValueError("evaluation per user type needs records with an integer user_latent")
    return out


def _with_context(item: TaskItem, n: int) -> TaskItem:
    return TaskItem(item.user, item.user_type, item.context[:n], item.target, np.ones(len(item.target), bool))


def _correct(logps: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """(N,) 1 / 0.5 / 0 from (2N,) log-probs and references (chosen rows first)."""
    n = len(logps) // 2
    margin = (logps[:n] - ref[:n]) - (logps[n:] - ref[n:])  # beta > 0 does not change the sign
    return (margin > 0).float() + 0.5 * (margin == 0).float()


@torch.no_grad()
def _conditioned_accuracy(policy: NPDPOPolicy, data: PolicyData, items: Sequence[TaskItem]) -> np.ndarray:
    """Per-task accuracy of a FiLM-conditioned policy (one forward per task)."""
    accs = []
    for it in items:
        b: PolicyBatch = data.batch([it], lm=policy.lm, unseen_only=True)
        accs.append(float(_correct(policy_logprobs(policy, b), b.reference).mean()))
    return np.asarray(accs)


@torch.no_grad()
def pair_correctness(policy: NPDPOPolicy, data: PolicyData, pairs: Sequence[int],
                     batch_size: int = 8) -> dict[int, float]:
    """Implicit-reward correctness of an unconditioned policy on each pair (computed once)."""
    pairs = sorted(set(int(p) for p in pairs))
    seq_ids = sorted(set(data.sequence_ids(pairs).tolist()))  # each distinct response once
    logp: dict[int, float] = {}
    ids = data.sequence_ids(pairs)
    ref = data.reference_of(ids.tolist(), lm=policy.lm)  # also fills the prefix cache, if on
    for s in range(0, len(seq_ids), 2 * batch_size):
        chunk = seq_ids[s:s + 2 * batch_size]
        seqs = data.collate_sequences(chunk)
        prefix = data.prefix_of(chunk, seqs) if policy.frozen_blocks == data.prefix_block else None
        logp.update(zip(chunk, policy.logprobs(seqs, prefix=prefix).tolist()))
    ok = _correct(torch.tensor([logp[int(i)] for i in ids]), ref)
    return dict(zip(pairs, ok.tolist()))


def accuracy_vs_context(policies: Mapping[str, NPDPOPolicy | Mapping[int, NPDPOPolicy]], data: PolicyData,
                        config: PolicyEvalConfig | None = None) -> dict[str, Any]:
    """Results document: implicit-reward accuracy vs N^C, overall and per user type.

    ``policies`` maps a name to a conditioned policy, an unconditioned one, or (oracle) a dict
    ``{user_type: policy}`` whose entry scores that type's tasks.
    """
    config = config or PolicyEvalConfig()
    tasks = sample_type_tasks(data, config)
    doc: dict[str, Any] = {"task": "np-dpo implicit-reward accuracy", "context_sizes": list(config.context_sizes),
                           "bayes": None, "models": {}, "per_type": {}, "per_task": {}, "config": asdict(config)}
    for name, model in policies.items():
        per_type: dict[str, dict[str, Any]] = {}
        overall: dict[int, list[np.ndarray]] = {n: [] for n in config.context_sizes}
        for t, items in tasks.items():
            policy = model[t] if isinstance(model, Mapping) else model
            policy.eval()
            data.enable_prefix_cache(policy.frozen_blocks)  # cached states must match the policy
            if policy.film is None:
                ok = pair_correctness(policy, data, np.concatenate([it.target for it in items]))
                accs = np.asarray([np.mean([ok[int(p)] for p in it.target]) for it in items])
                by_n = {n: accs for n in config.context_sizes}
            else:
                by_n = {n: _conditioned_accuracy(policy, data, [_with_context(it, n) for it in items])
                        for n in config.context_sizes}
            per_type[str(t)] = {str(n): summarize(a) for n, a in by_n.items()}
            # per-task values: the multi-seed tables bootstrap over tasks (eval/seeds.py)
            doc["per_task"].setdefault(name, {})[str(t)] = {str(n): a.tolist() for n, a in by_n.items()}
            for n, a in by_n.items():
                overall[n].append(a)
        doc["per_type"][name] = per_type
        doc["models"][name] = {str(n): summarize(np.concatenate(a)) for n, a in overall.items()}
    return doc


def plot_accuracy_per_type(doc: Mapping[str, Any], path) -> Any:
    """One panel per user type: every model's accuracy vs N^C (unconditioned ones are flat)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ...eval.plots import _save

    types = sorted({t for per in doc["per_type"].values() for t in per}, key=int)
    sizes = doc["context_sizes"]
    fig = Figure(figsize=(4.2 * len(types), 3.6))
    styles = {"np-dpo": "-", "btl-dpo": "--"}
    for i, t in enumerate(types):
        ax = fig.add_subplot(1, len(types), i + 1)
        for name, per in doc["per_type"].items():
            if t not in per:
                continue
            curve = per[t]
            ax.errorbar(sizes, [100 * curve[str(n)]["accuracy"] for n in sizes],
                        yerr=[100 * curve[str(n)]["stderr"] for n in sizes], capsize=3,
                        linestyle=styles.get(name, ":"), marker="o" if name == "np-dpo" else None, label=name)
        ax.set_title(f"user type {t}" + (f" ({doc['type_names'][int(t)]})" if doc.get("type_names") else ""))
        ax.set_xlabel("context pairs $N^C$")
        ax.set_xticks(sizes)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.set_ylabel("implicit-reward accuracy (%)")
        ax.legend(fontsize=7)
    FigureCanvasAgg(fig)
    return _save(fig, path)


@torch.no_grad()
def generate_answers(policy: NPDPOPolicy, tokenizer: Any, prompts: Sequence[str], z: torch.Tensor | None, *,
                     max_new_tokens: int = 96, do_sample: bool = True, temperature: float = 0.7,
                     top_p: float = 0.9, seed: int = 0, reference: bool = False) -> list[str]:
    """Answers to ``prompts`` under FiLM(z) (``z`` (1, z_dim) or None); ``reference=True``
    answers with the base model (adapters and FiLM off). Sampling is seeded, so two users'
    answers differ only through z."""
    from ..reference import reference_mode

    enc = encode_prompts(tokenizer, [prompt_text(tokenizer, p) for p in prompts], next(policy.parameters()).device)
    torch.manual_seed(seed)
    kw = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, pad_token_id=tokenizer.pad_token_id,
              eos_token_id=tokenizer.eos_token_id)
    if do_sample:
        kw.update(temperature=temperature, top_p=top_p)
    policy.eval()
    if reference:
        with reference_mode(policy.lm):
            out = policy.lm.generate(**enc, **kw)
    else:
        out = policy.generate(enc["input_ids"], enc["attention_mask"], z=z, **kw)
    new = out[:, enc["input_ids"].shape[1]:]
    return tokenizer.batch_decode(new, skip_special_tokens=True)


@torch.no_grad()
def steered_behaviour(policy: NPDPOPolicy, tokenizer: Any, data: PolicyData, prompts: Sequence[str], *,
                      k: int = 4, users_per_type: int = 2, baselines: Mapping[str, NPDPOPolicy] | None = None,
                      attribute: str = "length", seed: int = 0, **generate_kwargs: Any) -> dict[str, Any]:
    """Score steered answers per user type: for ``users_per_type`` users of each type in
    ``data`` (test users), k of their pairs give z. Returns ``{"rows": [...], "samples": [...]}``
    with the mean and standard error of ``attribute`` per (model, user type)."""
    from ...data.builtin.scorers import score

    rng = np.random.default_rng(seed)
    rows, samples = [], []

    def record(model: str, t: int | None, answers: list[str], user: str | None = None) -> None:
        vals = np.asarray([score(a, [attribute])[attribute] for a in answers])
        rows.append({"model": model, "user_type": t, "user": user, "mean": float(vals.mean()),
                     "values": vals.tolist()})
        samples.append({"model": model, "user_type": t, "user": user, "prompt": prompts[0], "answer": answers[0]})

    record("base (reference)", None, generate_answers(policy, tokenizer, prompts, None, reference=True,
                                                      seed=seed, **generate_kwargs))
    for name, b in (baselines or {}).items():
        record(name, None, generate_answers(b, tokenizer, prompts, None, seed=seed, **generate_kwargs))
    empty = policy.encode(torch.zeros(1, 0, data.option_dim), torch.zeros(1, 0, data.option_dim),
                          torch.zeros(1, 0, dtype=torch.bool))
    record("np-dpo N^C=0", None, generate_answers(policy, tokenizer, prompts, empty, seed=seed, **generate_kwargs))
    users = np.asarray(data.users)
    types = np.asarray(data.types)
    for t in sorted(set(types.tolist()) - {-1}):
        names = sorted(set(users[types == t].tolist()))
        for user in rng.choice(names, size=min(users_per_type, len(names)), replace=False):
            pairs = np.flatnonzero(users == user)
            ctx = rng.choice(pairs, size=min(k, len(pairs)), replace=False)
            z = policy.encode(data.chosen_emb[ctx][None], data.rejected_emb[ctx][None],
                              torch.ones(1, len(ctx), dtype=torch.bool))
            record(f"np-dpo N^C={k}", int(t), generate_answers(policy, tokenizer, prompts, z, seed=seed,
                                                                **generate_kwargs), str(user))
    summary = {}
    for r in rows:
        key = f"{r['model']}|{r['user_type']}"
        summary.setdefault(key, []).extend(r["values"])
    table = [{"model": key.split("|")[0], "user_type": None if key.split("|")[1] == "None" else int(key.split("|")[1]),
              **{k2: v for k2, v in summarize(np.asarray(v)).items() if k2 != "accuracy"},
              "mean": float(np.mean(v))} for key, v in summary.items()]
    return {"attribute": attribute, "k": k, "prompts": list(prompts), "table": table, "rows": rows,
            "samples": samples}
