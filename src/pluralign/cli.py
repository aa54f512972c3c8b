"""The ``pluralign`` command. Thin: each group lives in ``pluralign.commands.*``, parses its
options and calls the library."""

from __future__ import annotations

import typer

from .commands import bench, cmpo, data, demo, generate, policy, rank, rewards, rl, serve

app = typer.Typer(help="Few-shot steerable alignment: personalised reward models and LM policies.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(data.app, name="data", help="Generate, validate and inspect preference data.")
app.add_typer(bench.app, name="bench", help="Benchmarks that reproduce the papers' experiments.")
app.add_typer(policy.app, name="policy", help="NP-DPO steerable policies (FiLM-conditioned LMs).")
app.add_typer(cmpo.app, name="cmpo", help="CMPO plural-head policies steered by attribute weights.")
app.add_typer(rl.app, name="rl", help="Personalised control: offline RL on latent-conditioned rewards (Maze-Navigation).")
app.add_typer(serve.app, name="serve", help="Serve a trained run over HTTP with a database (see docs/serve.md).")
app.command("train")(rewards.train)
app.command("eval")(rewards.evaluate)
app.command("rank")(rank.rank)
app.command("generate")(generate.generate)
app.command("demo")(demo.demo)

if __name__ == "__main__":
    app()
