"""``pluralign bench``: benchmarks that reproduce the papers' experiments (a thin Typer group;
the work is in ``pluralign.eval``)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("synthetic")
def synthetic(
    out: Path = typer.Option(Path("runs/bench-synthetic"), "--out", help="Folder for results (JSON, CSV, PNG) and runs."),
    quick: bool = typer.Option(False, "--quick", help="A few-minute run: fewer steps, tasks and models."),
    preset: str = typer.Option("tuned", "--preset", help="'paper' (NP paper App. C.1: mean pooling, lr 1e-4), 'tuned' (sum pooling, antisymmetric pair encoder, lr 3e-4) or 'tuned-plain' (tuned without the antisymmetric encoder)."),
    steps: int = typer.Option(None, "--steps", help="Training steps per model (default: the preset's)."),
    lr: float = typer.Option(None, "--lr", help="Learning rate (default: the preset's)."),
    task: list[str] = typer.Option(None, "--task", help="example-4.1, example-4.3, vpl-didactic (repeatable; default all)."),
    model: list[str] = typer.Option(None, "--model", help="Train only these models (btl, dpl, np-btl, vpl; repeatable; default: each task's own list)."),
    rho: list[float] = typer.Option(None, "--rho", help="Example 4.3 correlations (repeatable; default -1 -0.7 0 0.7)."),
    vpl_beta_max: float = typer.Option(None, "--vpl-beta-max", help="VPL's KL weight after annealing (default: the preset's; paper 1 as VPL Table 2, tuned 0.01)."),
    n_pairs: int = typer.Option(20000, "--n-pairs", help="Pairs per synthetic data set (split 50/25/25)."),
    eval_tasks: int = typer.Option(1000, "--eval-tasks", help="Test tasks per context size."),
    seed: int = typer.Option(0, "--seed", help="Seed of data, task sampling and training."),
) -> None:
    """NP paper Examples 4.1 and 4.3 and VPL's didactic mixture, with Bayes-optimal references."""
    from ..eval.synthetic_bench import SyntheticBenchConfig, run_synthetic_bench

    fields = dict(preset=preset, quick=quick, max_steps=steps, learning_rate=lr, n_pairs=n_pairs,
                  n_eval_tasks=eval_tasks, seed=seed, vpl_beta_max=vpl_beta_max)
    if task:
        fields["tasks"] = tuple(task)
    if model:
        fields["models"] = tuple(model)
    if rho:
        fields["rhos"] = tuple(rho)
    try:
        cfg = SyntheticBenchConfig(**fields)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    run_synthetic_bench(cfg, out)
    typer.echo(f"results written to {out}/")


@app.command("text")
def text(
    data: str = typer.Option("corpus-2mode", "--data", help="Built-in set (pets, pets-divergent, corpus-2mode, ...) or a records file."),
    encoder: str = typer.Option("minilm", "--encoder", help="minilm (mean pooling, fast), smollm2 (last token, as the papers) or a local model folder."),
    quick: bool = typer.Option(False, "--quick", help="A few-minute run: 400 steps, 200 test tasks per N^C."),
    out: Path = typer.Option(Path("runs/bench-text"), "--out", help="Folder for results (JSON, CSV, PNG) and runs."),
    steps: int = typer.Option(None, "--steps", help="Training steps per model (default 600, quick 400)."),
    model: list[str] = typer.Option(None, "--model", help="btl, dpl, np-btl, vpl (repeatable; default all)."),
    no_oracle: bool = typer.Option(False, "--no-oracle", help="Skip the per-type BTL oracles."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Embedding cache root (default $PLURALIGN_CACHE/embeddings)."),
    seed: int = typer.Option(0, "--seed", help="Seed of data, task sampling and training."),
) -> None:
    """Reward models on frozen-LM embeddings of text preferences: accuracy vs N^C per user type,
    the per-type oracle, the context-flip test and a PCA plot of context latents."""
    from ..eval.text_bench import TextBenchConfig, run_text_bench

    fields = dict(data=data, encoder=encoder, quick=quick, max_steps=steps, oracle=not no_oracle, seed=seed,
                  cache_dir=str(cache_dir) if cache_dir else None)
    if model:
        fields["models"] = tuple(model)
    try:
        cfg = TextBenchConfig(**fields)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    try:
        run_text_bench(cfg, out, log=typer.echo)
    except FileNotFoundError as err:
        raise typer.BadParameter(str(err), param_hint="--data") from None


@app.command("defaults")
def defaults(
    out: Path = typer.Option(Path("runs/bench-defaults"), "--out", help="Folder for results (JSON, CSV, PNG per population, summary) and runs."),
    quick: bool = typer.Option(False, "--quick", help="CI smoke run: small populations, 150 steps, 200 test tasks (checks the plumbing, not the target)."),
    population: list[str] = typer.Option(None, "--population", help="Run only these populations (repeatable; default all)."),
    model: list[str] = typer.Option(None, "--model", help="Reward models to train with the defaults (repeatable; default np-btl)."),
    eval_tasks: int = typer.Option(500, "--eval-tasks", help="Test tasks per context size."),
    mc_samples: int = typer.Option(4000, "--mc-samples", help="Dirichlet draws of the Monte Carlo Bayes posterior."),
    steps: int = typer.Option(None, "--steps", help="Override the default step budget (the run is then not the plain default)."),
    seed: int = typer.Option(0, "--seed", help="Seed of data, training and evaluation (tuning used other seeds)."),
    jobs: int = typer.Option(1, "--jobs", help="Populations trained in parallel processes (one thread each)."),
) -> None:
    """The plain default `pluralign train` on simulated populations it was not tuned on, each
    beside its Bayes-optimal line; a summary of the gap to Bayes per N^C."""
    from ..eval.defaults_bench import DefaultsBenchConfig, run_defaults_bench

    fields = dict(quick=quick, n_eval_tasks=eval_tasks, mc_samples=mc_samples, max_steps=steps, seed=seed,
                  jobs=jobs)
    if population:
        fields["populations"] = tuple(population)
    if model:
        fields["models"] = tuple(model)
    try:
        cfg = DefaultsBenchConfig(**fields)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    run_defaults_bench(cfg, out, log=typer.echo)
    typer.echo(f"results written to {out}/")
