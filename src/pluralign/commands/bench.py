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
    preset: str = typer.Option("tuned", "--preset", help="'paper' (NP paper App. C.1: mean pooling, lr 1e-4), 'tuned' (sum pooling, antisymmetric pair encoder, NP-BTL lapse 0.05 after 1000 steps, lr 1e-3; here constant, for a fixed step count), 'tuned-no-lapse' (tuned without the lapse) or 'tuned-plain' (tuned without the antisymmetric encoder, lr 3e-4)."),
    steps: int = typer.Option(None, "--steps", help="Training steps per model (default: the preset's)."),
    lr: float = typer.Option(None, "--lr", help="Learning rate (default: the preset's)."),
    task: list[str] = typer.Option(None, "--task", help="example-4.1, example-4.3, vpl-didactic (repeatable; default all)."),
    model: list[str] = typer.Option(None, "--model", help="Train only these models (btl, dpl, np-btl, vpl; repeatable; default: each task's own list)."),
    rho: list[float] = typer.Option(None, "--rho", help="Example 4.3 correlations (repeatable; default -1 -0.7 0 0.7)."),
    vpl_beta_max: float = typer.Option(None, "--vpl-beta-max", help="VPL's KL weight after annealing (default: the preset's; paper 1 as VPL Table 2, tuned 0.01)."),
    n_pairs: int = typer.Option(20000, "--n-pairs", help="Pairs per synthetic data set (split 50/25/25)."),
    eval_tasks: int = typer.Option(1000, "--eval-tasks", help="Test tasks per context size."),
    seed: int = typer.Option(0, "--seed", help="Seed of data, task sampling and training."),
    hidden_layers: int = typer.Option(None, "--hidden-layers", help="Hidden layers of every MLP (1: the NP paper's code; default: the model configs')."),
) -> None:
    """NP paper Examples 4.1 and 4.3 and VPL's didactic mixture, with Bayes-optimal references."""
    from ..eval.synthetic_bench import SyntheticBenchConfig, run_synthetic_bench

    fields = dict(preset=preset, quick=quick, max_steps=steps, learning_rate=lr, n_pairs=n_pairs,
                  n_eval_tasks=eval_tasks, seed=seed, vpl_beta_max=vpl_beta_max,
                  n_hidden_layers=hidden_layers)
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
    model: list[str] = typer.Option(None, "--model", help="Reward models to train with the defaults (repeatable; default: pluralign train's default, mix-btl; add np-btl to compare)."),
    eval_tasks: int = typer.Option(500, "--eval-tasks", help="Test tasks per context size."),
    mc_samples: int = typer.Option(4000, "--mc-samples", help="Dirichlet draws of the Monte Carlo Bayes posterior."),
    steps: int = typer.Option(None, "--steps", help="Override the default step budget (the run is then not the plain default)."),
    seed: int = typer.Option(0, "--seed", help="Seed of data, training and evaluation (tuning used other seeds)."),
    jobs: int = typer.Option(1, "--jobs", help="Populations trained in parallel processes (one thread each)."),
    split: str = typer.Option("test", "--split", help="Score on 'test' (the bench) or 'validation' (for tuning, with a --seed other than 0)."),
    config: Path = typer.Option(None, "--config", help="Train this `pluralign train --config` YAML file instead of the plain default (tuning a candidate default)."),
) -> None:
    """The plain default `pluralign train` on simulated populations it was not tuned on, each
    beside its Bayes-optimal line; a summary of the gap to Bayes per N^C."""
    from ..eval.defaults_bench import DefaultsBenchConfig, run_defaults_bench

    fields = dict(quick=quick, n_eval_tasks=eval_tasks, mc_samples=mc_samples, max_steps=steps, seed=seed,
                  jobs=jobs, split=split, train_config=str(config) if config else None)
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


@app.command("defaults-seeds")
def defaults_seeds(
    runs: list[Path] = typer.Argument(..., help="Folders of `pluralign bench defaults --seed S` runs, one per seed."),
    out: Path = typer.Option(Path("runs/bench-defaults-seeds"), "--out", help="Folder for table.md/.json/_gap_to_bayes.csv and targets.json."),
) -> None:
    """The defaults bench over seeds: gap to the Bayes line, mean and 95 % t-interval over the
    runs' seeds, and the target judged on the mean and on every seed."""
    from ..eval.defaults_seeds import aggregate_defaults

    try:
        aggregate_defaults(runs, out, log=typer.echo)
    except (FileNotFoundError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"tables written to {out}/")


@app.command("active")
def active(
    out: Path = typer.Option(Path("runs/bench-active"), "--out", help="Folder for results (JSON, CSV, PNG) and trained models."),
    quick: bool = typer.Option(False, "--quick", help="A CI-sized run: few training steps, 60 users, small data."),
    task: list[str] = typer.Option(None, "--task", help="example-4.1, example-4.3, kmode, text (repeatable; default all)."),
    model: list[str] = typer.Option(None, "--model", help="np-btl, vpl (repeatable; default both)."),
    strategy: list[str] = typer.Option(None, "--strategy", help="random, uncertainty, info-gain (repeatable; default all)."),
    steps: int = typer.Option(None, "--steps", help="Training steps per model (default 300; quick 40)."),
    split: str = typer.Option("test", "--split", help="Users to evaluate: 'test' (report) or 'validation' (tuning)."),
    eval_tasks: int = typer.Option(300, "--eval-tasks", help="Simulated users per curve."),
    pool_size: int = typer.Option(100, "--pool-size", help="Candidate questions per user."),
    n_pairs: int = typer.Option(8000, "--n-pairs", help="Pairs per synthetic data set (split 50/25/25)."),
    kmode_k: int = typer.Option(4, "--kmode-k", help="K of the K-mode users (>= 4)."),
    rho: float = typer.Option(0.7, "--rho", help="Example 4.3 correlation."),
    text_data: str = typer.Option("corpus-2mode", "--text-data", help="Built-in text set of the text task."),
    noise: list[float] = typer.Option(None, "--noise", help="Answer-flip rates of the robustness runs (repeatable; default 0.1 0.25 0.5)."),
    robust_task: str = typer.Option("text", "--robust-task", help="Task the robustness runs use."),
    n_samples: int = typer.Option(16, "--n-samples", help="Draws of VPL's q(z | answers) per question."),
    n_candidates: int = typer.Option(32, "--n-candidates", help="Pool pairs scored per question under q samples (App. B's sampling search)."),
    n_particles: int = typer.Option(64, "--n-particles", help="Particles of the NP-BTL posterior (training users' contexts)."),
    particle_context: str = typer.Option("10,10", "--particle-context", help="min,max context size of a particle."),
    lapse: float = typer.Option(0.05, "--lapse", help="Answer lapse rate of the particle likelihood."),
    vpl_posterior: str = typer.Option("variational", "--vpl-posterior", help="'variational' (q samples, App. B) or 'particles'."),
    vpl_beta_max: float = typer.Option(1.0, "--vpl-beta-max", help="VPL's KL weight after annealing on the synthetic tasks."),
    reuse: bool = typer.Option(False, "--reuse", help="Load the models a previous run saved in --out instead of training."),
    seed: int = typer.Option(0, "--seed", help="Seed of data, training and users."),
) -> None:
    """Active query selection (VPL App. B): accuracy vs questions answered for random,
    uncertainty and information-gain questions, against the Bayes-optimal questioner."""
    from ..eval.active_bench import ActiveBenchConfig, run_active_bench
    from ..eval.active_eval import SelectionConfig

    try:
        lo, hi = (int(v) for v in particle_context.split(","))
        if vpl_posterior not in ("variational", "particles"):
            raise ValueError(f"--vpl-posterior must be 'variational' or 'particles', got {vpl_posterior!r}")
        fields = dict(quick=quick, steps=steps, split=split, n_eval_tasks=eval_tasks, pool_size=pool_size,
                      n_pairs=n_pairs, kmode_k=kmode_k, rho=rho, text_data=text_data, robust_task=robust_task,
                      n_particles=n_particles, particle_context=(lo, hi), reuse=reuse, seed=seed,
                      vpl_beta_max=vpl_beta_max,
                      selection=SelectionConfig(n_samples=n_samples, n_candidates=n_candidates,
                                                vpl_posterior=vpl_posterior, lapse=lapse))
        for key, values in (("tasks", task), ("models", model), ("strategies", strategy), ("noise_levels", noise)):
            if values:
                fields[key] = tuple(values)
        cfg = ActiveBenchConfig(**fields)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    run_active_bench(cfg, out, log=typer.echo)
    typer.echo(f"results written to {out}/")
