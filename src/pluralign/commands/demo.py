"""``pluralign demo``: the README's main job — a quick text bench on the built-in data, ending
with two new users whose three choices each make the same candidates rank differently."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)

#: The quick form of ``bench text`` the demo runs (a few minutes on a shared 2-core CPU).
#: Full 384-d inputs and 256-wide MLPs (a 64-d PCA with 128-wide MLPs cost NP-BTL ~8 points).
DEMO_SETTINGS = dict(models=("btl", "np-btl"), oracle=True, quick=True, max_steps=400,
                     n_eval_tasks=200, project_dim=None, hidden_dim=256, holdout_users=1)


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for results, plots and the demo text."),
    data: str = typer.Option("corpus-2mode", "--data", help="Built-in data set (see `pluralign data list`)."),
    encoder: str = typer.Option("minilm", "--encoder", help="minilm (fast) or smollm2 (last-token, as the papers)."),
    steps: int = typer.Option(None, "--steps", help="Training steps per model (default 400)."),
    seed: int = typer.Option(0, "--seed", help="Seed of data, training and the demo's choices."),
) -> None:
    """Train BTL and NP-BTL on built-in text preferences (offline), report accuracy vs context
    size, and show two new users' rankings of the same responses."""
    from ..eval.showcase import format_showcase, run_showcase, write_showcase
    from ..eval.text_bench import TextBenchConfig, run_text_bench

    settings = dict(DEMO_SETTINGS)
    if steps is not None:
        settings["max_steps"] = steps
    try:
        cfg = TextBenchConfig(data=data, encoder=encoder, seed=seed, **settings)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    bench = run_text_bench(cfg, out, log=typer.echo)
    show = run_showcase(bench, "np-btl", seed=seed)
    write_showcase(show, out)
    typer.echo(format_showcase(show))
    typer.echo(f"\nsaved to {out}/ (results.json, results.csv, accuracy.png, per_type.png, latents.png, "
               "demo.txt, demo.json)")
