"""``pluralign cmpo train|eval``: CMPO plural-head policies and their baselines (thesis ch. 3, 5).

    pluralign cmpo train --out runs/cmpo --data builtin --attributes concise,detailed,formal
    pluralign cmpo eval --out runs/cmpo --interpolate concise:detailed

Thin: parses options, loads the data, calls :mod:`pluralign.policies.cmpo.experiment` /
:mod:`pluralign.policies.cmpo.report`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import typer

app = typer.Typer(no_args_is_help=True, help="CMPO: plural LM heads mixed by attribute weights, cDPO.")


def _split_names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise typer.BadParameter("give at least one name, comma-separated")
    return names


def limit_prompts(rated: list, n: int | None, seed: int) -> list:
    """The responses of at most ``n`` prompts of a split (a seeded choice of prompts)."""
    prompts = list(dict.fromkeys(repr(r.prompt) for r in rated))
    if n is None or n <= 0 or len(prompts) <= n:
        return rated
    import numpy as np

    keep = {prompts[i] for i in np.random.default_rng(seed).choice(len(prompts), size=n, replace=False)}
    return [r for r in rated if repr(r.prompt) in keep]


def load_rated(data: str, attributes: list[str], seed: int = 0, prompts: list[int] | None = None):
    """``({split: [RatedResponse]}, margins)`` from ``builtin`` (``builtin:PATH`` for another corpus
    file) or a records file whose pairs carry attribute scores. ``prompts``: at most this many
    prompts of train, validation, test."""
    from ..data.cmpo_weights import builtin_rated, rated_responses

    if data == "builtin" or data.startswith("builtin:"):
        splits, margins = builtin_rated(attributes, seed=seed, path=data.partition(":")[2] or None)
    else:
        from ..data.io import read_records
        from ..data.splits import by_split, split_records

        records = read_records(data)
        if any(r.split is None for r in records):
            records = split_records(records, seed=seed, group_by="prompt")
        parts = by_split(records)
        splits, margins = {s: rated_responses(parts.get(s, []), attributes)
                           for s in ("train", "validation", "test")}, {}
    if prompts:
        splits = {s: limit_prompts(v, n, seed) for (s, v), n in zip(splits.items(), prompts)}
    return splits, margins


def _prompt_caps(text: str) -> list[int] | None:
    if not text:
        return None
    try:
        caps = [int(x) for x in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"--prompts wants three integers 'train,validation,test', got {text!r}")
    if len(caps) != 3:
        raise typer.BadParameter(f"--prompts wants three integers 'train,validation,test', got {text!r}")
    return caps


def scorers_for(data: str, attributes: list[str]) -> dict[str, Callable[[str], float]]:
    """Attribute scorers for generations: the built-in corpus' deterministic scorers."""
    if not data.startswith("builtin"):
        return {}
    from ..data.builtin.corpus import parse_user_type
    from ..data.builtin.scorers import SCORERS

    return {attr: SCORERS[attr] for attr in dict.fromkeys(parse_user_type(a)[0] for a in attributes)}


def set_threads(n: int) -> None:
    """torch CPU threads (0: torch's default). Set before any model is built."""
    if n < 0:
        raise typer.BadParameter(f"--threads must be >= 0, got {n}")
    if n:
        import torch

        torch.set_num_threads(n)


def tokenizer_for(base_model: str) -> Any:
    from transformers import AutoTokenizer

    from ..features.offline import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(base_model), local_files_only=True)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


@app.command("train")
def train(
    out: Path = typer.Option(..., help="Run folder (stages already trained there are skipped)."),
    data: str = typer.Option("builtin", help="'builtin' (the shipped SmolLM2 corpus) or a records file "
                                             "(JSONL/Parquet) whose pairs carry attribute scores."),
    attributes: str = typer.Option("concise,detailed,formal", help="Steering attributes = heads, comma-separated."),
    base_model: str = typer.Option("smollm2", help="Base causal LM: 'smollm2' (offline) or a local folder."),
    rule: str = typer.Option("power_set", help="Weight rule: power_set (eq. 3.2), negative (A.1), ratio (A.2)."),
    pair_mode: str = typer.Option("likert", help="likert (§5.1.1 greatest net margin) or all_pairs."),
    lora: bool = typer.Option(True, help="LoRA on attention (thesis); --no-lora trains the heads on a frozen, cached trunk."),
    head_rank: int = typer.Option(0, help="0: full heads (thesis); r > 0: rank-r head deltas."),
    steps: int = typer.Option(100, help="CMPO optimiser steps."),
    baseline_steps: int = typer.Option(50, help="Steps of each baseline."),
    baselines: str = typer.Option("sft,dpo,steerlm", help="Baselines to train ('' for none)."),
    batch_size: int = typer.Option(4),
    max_length: int = typer.Option(96, help="Tokens per prompt+response."),
    learning_rate: float = typer.Option(5e-5),
    beta: float = typer.Option(0.5, help="cDPO beta (thesis 0.5)."),
    label_smoothing: float = typer.Option(0.1, help="cDPO epsilon (thesis 0.1)."),
    max_train_pairs: int = typer.Option(0, help="Cap on training pairs (0: all)."),
    prompts: str = typer.Option("", help="At most this many prompts of 'train,validation,test' (CPU budget)."),
    keep_best: bool = typer.Option(True, "--keep-best/--keep-last", help="Keep the best-validation checkpoint, or the final one."),
    seed: int = typer.Option(0),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads (0: torch's default)."),
) -> None:
    """Convert the data to weight-conditioned pairs, train CMPO and the baselines."""
    from ..policies.cmpo.experiment import CMPOExperimentConfig, run_training

    set_threads(threads)
    attrs = _split_names(attributes)
    caps = _prompt_caps(prompts)
    splits, margins = load_rated(data, attrs, seed, caps)
    config = CMPOExperimentConfig(
        attributes=attrs, base_model=base_model, rule=rule, pair_mode=pair_mode, margins=margins, lora=lora,
        head_rank=head_rank or None, learning_rate=learning_rate, batch_size=batch_size, max_length=max_length,
        cmpo_steps=steps, baseline_steps=baseline_steps, beta=beta, label_smoothing=label_smoothing,
        baselines=[b for b in baselines.split(",") if b.strip()], max_train_pairs=max_train_pairs or None,
        keep_best=keep_best, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "data.json").write_text(json.dumps({"data": data, "seed": seed, "prompts": caps}) + "\n")
    run_training(config, splits["train"], splits["validation"], out, tokenizer_for(base_model))
    typer.echo(f"trained: {out}")


@app.command("eval")
def evaluate(
    out: Path = typer.Option(..., help="Run folder written by `pluralign cmpo train`."),
    interpolate: str = typer.Option("", help="Attribute pairs 'a:b,c:d' to interpolate lambda between."),
    n_pairs: int = typer.Option(40, help="Test pairs per attribute."),
    n_prompts: int = typer.Option(8, help="Test prompts for generation."),
    max_new_tokens: int = typer.Option(48),
    repetition_penalty: float = typer.Option(1.0, help="Greedy decoding's repetition penalty (1.0: off, the thesis)."),
    accuracy: bool = typer.Option(True, help="Attribute-conditioned accuracy and the lambda interpolation "
                                  "(eval.json, accuracy.csv); --no-accuracy runs the few-shot part alone."),
    fewshot: bool = typer.Option(True, help="Train/evaluate few-shot lambda inference."),
    fewshot_steps: int = typer.Option(3000, help="Few-shot encoder steps (about 10 s per 3000 on a CPU)."),
    fewshot_users: int = typer.Option(60, help="Test users (train users: 4x)."),
    fewshot_pair_symmetry: str = typer.Option("none", help="Few-shot encoder pairs: none (NP paper) or antisymmetric."),
    fewshot_draws: int = typer.Option(1, help="Context draws per test user (recovery averaged over them)."),
    fewshot_features: str = typer.Option("sum+mean", help="Few-shot option features: sum+mean (implicit rewards, "
                                         "summed and per response token) or sum (summed only)."),
    fewshot_seed: int = typer.Option(0, help="Seed of the simulated few-shot users and the encoder."),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads (0: torch's default)."),
) -> None:
    """Attribute-conditioned accuracy vs baselines, behaviour under lambda, few-shot lambda."""
    from ..policies.cmpo.experiment import CMPOExperimentConfig
    from ..policies.cmpo.fewshot import FewShotConfig
    from ..policies.cmpo.report import run_evaluation, run_fewshot

    set_threads(threads)
    if not (out / "experiment.json").is_file():
        raise typer.BadParameter(f"{out} has no experiment.json; run `pluralign cmpo train` first")
    try:  # refuse bad few-shot options now, not after the evaluation's minutes
        FewShotConfig(pair_symmetry=fewshot_pair_symmetry, features=fewshot_features)
    except ValueError as err:
        raise typer.BadParameter(str(err))
    config = CMPOExperimentConfig(**json.loads((out / "experiment.json").read_text()))
    source = json.loads((out / "data.json").read_text())
    splits, _ = load_rated(source["data"], config.attributes, source["seed"], source.get("prompts"))
    pairs = []
    for item in (t for t in interpolate.split(",") if t.strip()):
        a, _, b = item.partition(":")
        if a not in config.attributes or b not in config.attributes:
            raise typer.BadParameter(f"--interpolate {item!r}: both must be among {config.attributes}")
        pairs.append((a, b))
    tok = tokenizer_for(config.base_model)
    written = []
    if accuracy:
        res = run_evaluation(out, config, splits["test"], tok, scorers_for(source["data"], config.attributes),
                             interpolate=pairs, n_pairs=n_pairs, n_prompts=n_prompts,
                             max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty)
        typer.echo(f"{'attribute':<12}{'model':<10}{'eq5.1 acc':>10}{'reward acc':>12}{'n':>5}")
        for a, models in res["accuracy"].items():
            for m, v in models.items():
                ra = "-" if v["reward_accuracy"] is None else f"{v['reward_accuracy']:.3f}"
                typer.echo(f"{a:<12}{m:<10}{v['preference_accuracy']:>10.3f}{ra:>12}{v['n']:>5}")
        for key, item in res["interpolation"].items():
            for name, s in item["summary"].items():
                typer.echo(f"lambda {key}: {name} = {[round(v, 2) for v in s['values']]} "
                           f"(spearman {s['spearman']:.2f})")
        written += [out / "eval.json", out / "accuracy.csv"]
    if fewshot:
        fs = run_fewshot(out, config, splits["train"], splits["validation"], splits["test"], tok,
                         steps=fewshot_steps, users=fewshot_users, pair_symmetry=fewshot_pair_symmetry,
                         draws=fewshot_draws, features=fewshot_features, seed=fewshot_seed)
        for row in fs["rows"]:
            typer.echo(f"few-shot lambda, {row['n_context']} choices: attribute recovered for "
                       f"{row['recovered']:.1%} of {row['users']} test users x {row['draws']} draws (head vote {row['head_vote_recovered']:.1%})")
        written.append(out / "fewshot.json")
    typer.echo("results: " + (", ".join(map(str, written)) or "none (--no-accuracy --no-fewshot)"))
