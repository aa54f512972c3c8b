"""``pluralign generate``: a steered answer from a policy.

``--policy DIR --choices FILE``: an NP-DPO policy conditioned on a user's own choices (records
file); each way of steering is one small function below.
``--policy DIR --weights a=0.7,b=0.3``: a CMPO plural-head policy with its heads mixed by the
given attribute weights (unnamed attributes get 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _np_dpo_answer(policy_dir: Path, choices: Path, prompt: str, **gen) -> str:
    """Embed the user's choices, z = encoder(choices), answer under FiLM(z)."""
    import torch
    from transformers import AutoTokenizer

    from ..data.io import read_records
    from ..features.embed import embed_records, load_embedder
    from ..features.offline import resolve_model
    from ..policies.np_dpo.evaluate import generate_answers
    from ..policies.np_dpo.policy import NPDPOPolicy

    policy = NPDPOPolicy.from_pretrained(policy_dir)
    if policy.film is None:
        raise ValueError(f"{policy_dir} is an unconditioned policy; --choices needs an NP-DPO policy")
    records = read_records(choices)
    chosen, rejected = embed_records(records, load_embedder(model=policy.config.context_embedder))
    if chosen.shape[1] != policy.config.option_dim:
        raise ValueError(f"the choices embed to {chosen.shape[1]} features, the policy expects "
                         f"{policy.config.option_dim} (embedder {policy.config.context_embedder!r})")
    z = policy.encode(chosen[None], rejected[None], torch.ones(1, len(records), dtype=torch.bool))
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(policy.config.base_model))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return generate_answers(policy, tokenizer, [prompt], z, **gen)[0]


# --- CMPO: steered by explicit attribute weights (issue 6) ---------------------------------------

def parse_weights(text: str) -> dict[str, float]:
    """``"helpfulness=0.7,verbosity=0.3"`` -> ``{"helpfulness": 0.7, "verbosity": 0.3}``."""
    out: dict[str, float] = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError(f"--weights: {item!r} is not name=number (e.g. helpfulness=0.7,verbosity=0.3)")
    if not out:
        raise ValueError("--weights is empty")
    return out


def _cmpo_answer(policy_dir: Path, weights: str, prompt: str, *, max_new_tokens: int, do_sample: bool,
                 seed: int) -> str:
    """Answer with the CMPO plural model's heads mixed by the given attribute weights."""
    import torch

    from .cmpo import tokenizer_for
    from ..policies.cmpo.evaluate import generate_texts
    from ..policies.cmpo.plural_heads import PluralLM

    model = PluralLM.from_pretrained(policy_dir)
    lam = model.as_weights(parse_weights(weights))  # unknown names -> a clear error
    torch.manual_seed(seed)
    return generate_texts(model, tokenizer_for(model.config.base_model), [prompt], lam,
                          max_new_tokens=max_new_tokens, do_sample=do_sample)[0]


def generate(
    prompt: str = typer.Option(..., "--prompt", help="The prompt to answer."),
    policy: Path = typer.Option(..., "--policy", help="A policy folder (save_pretrained output)."),
    choices: Optional[Path] = typer.Option(None, "--choices",
                                           help="Records file of the user's choices (NP-DPO steering)."),
    weights: Optional[str] = typer.Option(None, "--weights",
                                          help="CMPO attribute weights, e.g. helpfulness=0.7,verbosity=0.3."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens"),
    sample: bool = typer.Option(False, "--sample/--greedy", help="Sample (seeded) or decode greedily."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Generate an answer steered by a user's choices and print it."""
    if not policy.exists():
        _fail(f"{policy}: no such policy folder")
    gen = dict(max_new_tokens=max_new_tokens, do_sample=sample, seed=seed)
    try:
        if choices is not None:
            if not choices.exists():
                _fail(f"{choices}: no such file")
            answer = _np_dpo_answer(policy, choices, prompt, **gen)
        elif weights is not None:
            answer = _cmpo_answer(policy, weights, prompt, **gen)
        else:
            _fail("say how to steer: --choices FILE (NP-DPO) or --weights a=0.7,b=0.3 (CMPO)")
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err))
    typer.echo(answer)
