"""``pluralign bench text``: reward models on frozen-LM embeddings of text preferences
(issue 4, item 5; NP paper §4.2 and Figure 3, App. C.2).

Pipeline: built-in text data (:mod:`pluralign.data.builtin`) or a records file -> option
vectors from a frozen encoder (prompt + response, :mod:`pluralign.features.embed`, cached on
disk, so a second run computes nothing) -> per-feature standardisation fitted on the training
split -> BTL / DPL / NP-BTL / VPL trained on the training split by the shared loop
(:func:`pluralign.train.rewards.train_reward_model`) -> accuracy on unseen test pairs vs N^C per
user type (:func:`pluralign.eval.results.evaluate_models`, the issue-3 results schema), with

* the **per-user oracle** (NP paper Fig. 2, dashed lines): one BTL per user type trained on that
  type's training pairs alone, scored on that type's test tasks, reported as model ``oracle``;
* the context-flip diagnostic and VPL's active units (:mod:`pluralign.eval.diagnostics`);
* the Bayes-optimal reference (exact on the same tasks: the data's simulated types are known);
* a PCA plot of context latents coloured by the true user type at several N^C
  (:mod:`pluralign.eval.latents`, NP paper Figure 3).

The splits are the data's own (built-in sets are split by prompt; Pets by sentence). Users can
be held out per type (``holdout_users``): their records are never trained or evaluated on, and
the demo (:mod:`pluralign.eval.showcase`) personalises to them as new users.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..data.records import PreferenceRecord
from ..data.splits import by_split
from ..train.config import TrainConfig
from .metrics import EvalConfig, EvalData, sample_eval_tasks, summarize, task_accuracy
from .plots import plot_accuracy, plot_per_type
from .results import evaluate_models, format_table, write_csv, write_json
from .text_config import MODEL_FIELDS, TextBenchConfig
from .text_features import Features, featurize, vector_records

# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------

def load_text_records(cfg: TextBenchConfig) -> list[PreferenceRecord]:
    """Records of ``cfg.data``: a built-in set (with this config's users and pairs per user) or a
    file; every record must carry a ``split`` (built-in sets do; else a seeded split by prompt)."""
    from ..data import builtin

    if cfg.data in builtin.REGISTRY:
        overrides: dict[str, Any] = {"pairs_per_user": cfg.pairs_per_user, "seed": cfg.seed}
        key = "users_per_group" if cfg.data.startswith("pets") else "users_per_type"
        overrides[key] = cfg.users_per_type
        return builtin.load(cfg.data, **overrides)
    path = Path(cfg.data)
    if not path.exists():
        raise FileNotFoundError(f"--data {cfg.data!r} is neither a built-in set "
                                f"({', '.join(builtin.REGISTRY)}) nor an existing file")
    from ..data.io import read_records
    from ..data.splits import split_records

    return split_records(read_records(path), seed=cfg.seed, group_by="auto")


def type_names(records: list[PreferenceRecord]) -> dict[int, str]:
    """``{user_latent: name}`` from ``meta["user_type"]`` (``"type t"`` where absent)."""
    names: dict[int, str] = {}
    for r in records:
        if isinstance(r.user_latent, int):
            names.setdefault(r.user_latent, str(r.meta.get("user_type", f"type {r.user_latent}")))
    return dict(sorted(names.items()))


def holdout(records: list[PreferenceRecord], per_type: int) -> tuple[list[PreferenceRecord], dict[int, str]]:
    """Remove the first ``per_type`` users (sorted by id) of every type; returns the remaining
    records and ``{type: held-out user}`` (the first one of each type)."""
    if per_type == 0:
        return records, {}
    users: dict[int, list[str]] = {}
    for r in records:
        if isinstance(r.user_latent, int) and r.user_id not in users.setdefault(r.user_latent, []):
            users[r.user_latent].append(r.user_id)
    out = {t: sorted(u)[:per_type] for t, u in sorted(users.items())}
    gone = {u for us in out.values() for u in us}
    return [r for r in records if r.user_id not in gone], {t: us[0] for t, us in out.items()}


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------

def _train_config(cfg: TextBenchConfig, name: str) -> Any:
    from ..train.rewards import RewardTrainConfig, TaskConfig

    steps = cfg.steps
    eval_steps = min(cfg.eval_steps, steps)
    train = TrainConfig(learning_rate=cfg.learning_rate, max_steps=steps, eval_steps=eval_steps,
                        save_steps=steps, logging_steps=max(1, eval_steps // 2),
                        metric_for_best_model="accuracy", greater_is_better=True,
                        load_best_model_at_end=True, resume_from_checkpoint=False,
                        seed=cfg.seed, disable_tqdm=not cfg.progress)
    model = {"hidden_dim": cfg.hidden_dim, **MODEL_FIELDS.get(name, {})}
    if name in ("np-btl", "vpl"):  # widths of z^C and MLP1(y) follow the hidden width (paper: 256)
        model["embed_dim"] = cfg.hidden_dim
        if name == "np-btl":
            model["z_dim"] = cfg.hidden_dim
    if name == "vpl":
        model["anneal_steps"] = steps
    model.update(cfg.model_fields.get(name, {}))
    tasks = TaskConfig(n_tasks=cfg.n_tasks, n_target=cfg.n_target,
                       context_max=min(max(cfg.context_sizes), cfg.n_target), val_tasks=256, seed=cfg.seed)
    return RewardTrainConfig(model=model, tasks=tasks, train=train, preset=None)  # its own settings


def train_one(records: list[PreferenceRecord], name: str, cfg: TextBenchConfig, out: Path,
              log: Callable[[str], None], label: str | None = None) -> tuple[torch.nn.Module, dict]:
    """Train reward model ``name`` on ``records`` (train/validation splits); returns (model, info)."""
    from ..train.rewards import train_reward_model

    label = label or name
    t0 = time.perf_counter()
    model, result = train_reward_model(records, name, _train_config(cfg, name), out)
    seconds = time.perf_counter() - t0
    info = {"model": name, "steps": result.step, "best_step": result.best_step,
            "best_val": result.best_metrics, "train_seconds": round(seconds, 1),
            "model_config": model.config.to_dict()}
    log(f"  trained {label}: {result.step} steps in {seconds:.0f}s, best validation accuracy "
        f"{100 * result.best_metrics.get('accuracy', float('nan')):.1f}% at step {result.best_step}")
    return model.eval(), info


def train_models(records: list[PreferenceRecord], cfg: TextBenchConfig, out: Path,
                 log: Callable[[str], None] = print) -> tuple[dict[str, torch.nn.Module], dict[int, torch.nn.Module], dict]:
    """All of ``cfg.models`` on all users, and one BTL oracle per user type on that type alone."""
    models, runs = {}, {}
    for name in cfg.models:
        models[name], runs[name] = train_one(records, name, cfg, out / "runs" / name, log)
    oracles: dict[int, torch.nn.Module] = {}
    if cfg.oracle:
        for t, tname in type_names(records).items():
            own = [r for r in records if r.user_latent == t]
            oracles[t], runs[f"oracle-{t}"] = train_one(own, "btl", cfg, out / "runs" / f"oracle-{t}", log,
                                                        label=f"oracle for {tname} (BTL on its pairs only)")
    return models, oracles, runs


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------

def oracle_curves(oracles: dict[int, torch.nn.Module], data: EvalData, ecfg: EvalConfig
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each type's oracle on that type's tasks (the same tasks the other models get):
    ``(curve over all tasks, {"<type>": curve})``."""
    tasks = sample_eval_tasks(data, ecfg)
    curve, per_type = {}, {}
    for n, items in tasks.items():
        accs = []
        for t, model in oracles.items():
            own = [it for it in items if it.user_type == t]
            if not own:
                continue
            acc = task_accuracy(model, own, data, ecfg.batch_size)
            per_type.setdefault(str(t), {})[str(n)] = summarize(acc)
            accs.append(acc)
        curve[str(n)] = summarize(np.concatenate(accs) if accs else np.zeros(0))
    return curve, per_type


def format_per_type(doc: dict[str, Any], names: dict[int, str]) -> str:
    """Accuracy (%) per model and user type at every N^C."""
    sizes = [str(n) for n in doc["context_sizes"]]
    lines = ["accuracy per user type (%)", "  " + "model".ljust(22) + "".join(f"N^C={n}".rjust(9) for n in sizes)]
    for model, types in (doc.get("per_type") or {}).items():
        for t, curve in sorted(types.items()):
            label = f"{model} / {names.get(int(t), t)}"
            lines.append("  " + label.ljust(22) + "".join(
                (f"{100 * curve[n]['accuracy']:.1f}" if n in curve else "-").rjust(9) for n in sizes))
    return "\n".join(lines)


@dataclass
class TextBench:
    """Everything a text-bench run made: the results document and what the demo reuses."""

    doc: dict[str, Any]
    records: list[PreferenceRecord]  # text records used (held-out users removed)
    heldout: list[PreferenceRecord]  # records of the held-out users
    features: Features
    models: dict[str, torch.nn.Module]
    oracles: dict[int, torch.nn.Module]
    type_names: dict[int, str]


def run_text_bench(cfg: TextBenchConfig, out_dir: str | Path, *, embedder: Any = None,
                   log: Callable[[str], None] = print) -> TextBench:
    """Embed, train, evaluate and plot; writes ``results.json``, ``results.csv``,
    ``accuracy.png``, ``per_type.png`` and ``latents.png`` to ``out_dir``."""
    from .latents import latent_separation, plot_latents

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    # one thread: on a shared 2-core machine more threads made each step several times slower
    torch.set_num_threads(1)
    all_records = load_text_records(cfg)
    names = type_names(all_records)
    records, held_users = holdout(all_records, cfg.holdout_users)
    heldout = [r for r in all_records if r.user_id in set(held_users.values())]
    log(f"data {cfg.data}: {len(records)} pairs of {len({r.user_id for r in records})} users, types "
        f"{', '.join(names.values()) or 'unknown'}" + (f"; held out {', '.join(held_users.values())}"
                                                       if held_users else ""))
    # embed everything at once (held-out users' pairs too: the demo needs them; the cache dedupes)
    feats = featurize(records + heldout, cfg, embedder, log)
    n = len(records)
    vec = vector_records(records, dataclasses.replace(feats, chosen=feats.chosen[:n], rejected=feats.rejected[:n]))
    splits = by_split(vec)
    trainable = splits["train"] + splits["validation"]
    log(f"training {', '.join(cfg.models)}" + (" + per-type oracles" if cfg.oracle else "")
        + f" for {cfg.steps} steps each")
    models, oracles, runs = train_models(trainable, cfg, out, log)
    test = EvalData.from_records(splits["test"])
    ecfg = EvalConfig(context_sizes=cfg.context_sizes, n_tasks=cfg.n_eval_tasks, n_target=cfg.n_target,
                      seed=cfg.seed + 12345)
    meta = {"bench_config": dataclasses.asdict(cfg), "train_steps": cfg.steps, "runs": runs,
            "embedding": feats.stats, "user_types": {str(k): v for k, v in names.items()},
            "split_sizes": {k: len(v) for k, v in splits.items()},
            "data_info": {"records": len(records), "users": len({r.user_id for r in records}),
                          "prompts": len({repr(r.prompt) for r in records}),
                          "distinct_pairs": len({r.pair_id for r in records if r.pair_id is not None}),
                          "heldout_users": sorted(held_users.values())}}
    doc = evaluate_models(models, test, ecfg, task=f"text:{Path(cfg.data).name}", **meta)
    if oracles:
        curve, per_type = oracle_curves(oracles, test, ecfg)
        doc["models"]["oracle"] = curve
        doc.setdefault("per_type", {})["oracle"] = per_type
    latent_models = {k: m for k, m in models.items() if m.uses_latent}  # the context models
    if latent_models:
        points = plot_latents(latent_models, test, ecfg, cfg.latent_context_sizes, out / "latents.png", names)
        doc["latent_separation"] = latent_separation(points)
    doc["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    write_json(doc, out / "results.json")
    write_csv(doc, out / "results.csv")
    plot_accuracy(doc, out / "accuracy.png", title=f"{cfg.data} ({cfg.encoder} embeddings)")
    plot_per_type(doc, out / "per_type.png")
    log(format_table(doc))
    log(format_per_type(doc, names))
    for name, sep in (doc.get("latent_separation") or {}).items():
        log(f"latent separation ({name}): nearest-centroid type accuracy " + ", ".join(
            f"N^C={k}: {100 * v['centroid_accuracy']:.0f}%" for k, v in sep.items()))
    log(f"wrote {out}/results.json, results.csv, accuracy.png, per_type.png"
        + (", latents.png" if latent_models else "") + f" ({doc['wall_seconds']:.0f}s)")
    return TextBench(doc, records, heldout, feats, models, oracles, names)
