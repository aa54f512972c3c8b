"""``pluralign rl data|bench|aggregate``: personalised control on Maze-Navigation (VPL §4, App. D–E). A thin Typer
group; the work is in ``pluralign.rl``. MuJoCo, gymnasium-robotics and d3rlpy come with
``pip install 'pluralign[rl]'`` and are imported only when a command runs."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(2)


def _size_range(text: str) -> tuple[int, int]:
    """``"2-8"`` -> (2, 8); ``"8"`` -> (8, 8)."""
    lo, _, hi = text.partition("-")
    try:
        return int(lo), int(hi or lo)
    except ValueError:
        raise ValueError(f"--relabel-context takes MIN-MAX or N pairs, got {text!r}") from None


@app.command("data")
def data(
    out: Path = typer.Option(Path("runs/maze-data"), "--out", help="Folder for data.safetensors + manifest.json."),
    maze: str = typer.Option("medium", "--maze", help="Maze map: medium (D4RL maze2d-medium) or umaze."),
    episodes: int = typer.Option(800, "--episodes", help="Episodes to record."),
    episode_len: int = typer.Option(50, "--episode-len", help="Steps per episode (one z per episode when relabelled)."),
    noise: float = typer.Option(0.5, "--noise", help="Std of the Gaussian noise on the waypoint controller's force."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Generate the offline dataset: a noisy waypoint controller driving to random goals (D4RL maze2d)."""
    from ..rl.dataset import MazeDataConfig, generate, save
    from ..rl.env import MissingRLDependency
    from ..rl.maze import MazeError

    try:
        ds = generate(MazeDataConfig(maze=maze, n_episodes=episodes, episode_len=episode_len, noise=noise, seed=seed))
    except (MissingRLDependency, MazeError, ValueError) as err:
        _fail(err)
    save(ds, out)
    typer.echo(f"{len(ds.observations)} steps ({ds.n_episodes} episodes) written to {out}/")


@app.command("bench")
def bench(
    out: Path = typer.Option(Path("runs/bench-rl"), "--out", help="Folder for results (JSON, CSV, PNG), dataset and runs."),
    quick: bool = typer.Option(False, "--quick", help="The CI form: 2 goals, small data and few IQL steps (a few minutes)."),
    goals: list[int] = typer.Option(None, "--goals", help="User goal counts K (repeatable; default 2 and 10)."),
    policy: list[str] = typer.Option(None, "--policy", help="btl, dpl, np-btl, vpl, vpl+spo, vpl+batchnorm, vpl+maxnorm, mix-btl, mix-btl+spo, mix-btl+maxnorm, oracle, ... (repeatable; default btl, dpl, np-btl, vpl, vpl+spo, oracle, mix-btl+maxnorm, vpl+maxnorm)."),
    queries: list[int] = typer.Option(None, "--queries", help="Numbers of answered queries at test time (repeatable)."),
    queries_strategy: list[str] = typer.Option(None, "--queries-strategy", help="How test users' queries are chosen: random, active (information gain, pluralign.active); repeatable, default both. Active curves are reported as <policy>/active."),
    dataset: Path = typer.Option(None, "--dataset", help="A dataset folder from 'pluralign rl data' (default: generate one)."),
    iql_steps: int = typer.Option(None, "--iql-steps", help="IQL gradient steps per policy (default 6000 up to five goals, 9000 beyond; a value given sets every goal count)."),
    iql_hidden: int = typer.Option(None, "--iql-hidden", help="Width of IQL's MLPs (actor, critics, value; default 256 up to 5 goals and 512 beyond, as VPL's Table 3 sizes IQL by the number of users (it has 4 x 1024 beyond); 256 for every K before 2026-12-03's second change, 128 before that and in --quick). A value given sets every goal count."),
    iql_layers: int = typer.Option(None, "--iql-layers", help="Depth of IQL's MLPs (default 2; the paper's is 2 up to 5 users, 4 beyond). A value given sets every goal count."),
    reward_steps: int = typer.Option(None, "--reward-steps", help="Training steps per reward model (default 4000)."),
    users: int = typer.Option(None, "--users", help="Simulated users who label state pairs for the reward models (default 500)."),
    pairs_per_user: int = typer.Option(None, "--pairs-per-user", help="State pairs each of them labels (default 28)."),
    local_pairs: float = typer.Option(None, "--local-pairs", help="Fraction of those pairs drawn a few steps apart within one episode instead of at random (default 0: the paper's random pairs)."),
    refine_pairs: int = typer.Option(None, "--refine-pairs", help="How many of those pairs each user labels in a second round, among the states Mix-BTL (trained on the first round) rates highest for them: pairs near their goal (default 8; 0: one round of random pairs, the paper's)."),
    comparison_size: int = typer.Option(None, "--comparison-size", help="SPO's comparison set (Alg. 3): how many dataset states a state's win rate is taken against (default 500; the paper's table: 1,000; quick 200)."),
    label_noise: float = typer.Option(None, "--label-noise", help="Probability a training label is flipped."),
    query_noise: float = typer.Option(None, "--query-noise", help="Probability a test user's answer is flipped."),
    vpl_relabel_z: str = typer.Option(None, "--vpl-relabel-z", help="z VPL relabels episodes with: prior (Alg. 2, samples of p(z)) or posterior (means of q(z | a training user's pairs, --relabel-context))."),
    vpl_posterior: str = typer.Option(None, "--vpl-posterior", help="How a test user's answers become VPL's z and choose its active questions: particles (default: the weighted medoid of 512 training users' z reweighted by the answers) or variational (the mean of q(z | answers), the paper's)."),
    vpl_policy_z: str = typer.Option(None, "--vpl-policy-z", help="What VPL's policy reads of z: latent (default: z itself, the paper's), profile (the reward under z at 128 fixed dataset states, standardised) or peak (the position of the highest of 2,048)."),
    mix_relabel_z: str = typer.Option(None, "--mix-relabel-z", help="z Mix-BTL relabels episodes with: prior (default: one of its rewards per episode, drawn from its prior; the policy then reads the test user's most probable one) or posterior (weights of a training user's 2-8 pairs; the policy reads weights)."),
    relabel_context: str = typer.Option(None, "--relabel-context", help="Pairs of a training user whose z relabels an episode (NP-BTL, VPL): MIN-MAX or N (default 8; 2-8 before 2026-12-03)."),
    state_view: str = typer.Option(None, "--state-view", help="What the reward models see of a state: pcell (default: position + a one-hot of the maze cell) or raw (the observation x, y, vx, vy, as the paper). The policy always sees the observation."),
    oracle_z: str = typer.Option(None, "--oracle-z", help="What the oracle's policy is told of the goal: goal (default: a one-hot of its index) or position (its coordinates; the default before 2026-12-03's third change)."),
    jobs: int = typer.Option(None, "--jobs", help="Policies trained at once, each in a worker process with its share of the CPU cores (default 0: one per core; 1: one at a time in this process). The results do not depend on it."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Success rate per user goal vs answered queries for BTL, DPL, NP-BTL, VPL, VPL+SPO and the oracle."""
    from ..rl.bench import run_bench
    from ..rl.config import RLBenchConfig
    from ..rl.dataset import DatasetError
    from ..rl.env import MissingRLDependency
    from ..rl.maze import MazeError

    changes: dict = {"seed": seed}
    if goals:
        changes["goal_counts"] = tuple(goals)
    if policy:
        changes["policies"] = tuple(policy)
    if queries:
        changes["context_sizes"] = tuple(queries)
    if queries_strategy:
        changes["query_strategies"] = tuple(queries_strategy)
    for name, value in (("reward_steps", reward_steps), ("label_noise", label_noise), ("query_noise", query_noise),
                        ("vpl_relabel_z", vpl_relabel_z), ("vpl_posterior", vpl_posterior),
                        ("vpl_policy_z", vpl_policy_z), ("mix_relabel_z", mix_relabel_z), ("n_users", users),
                        ("pairs_per_user", pairs_per_user),
                        ("local_pairs", local_pairs), ("refine_pairs", refine_pairs), ("state_view", state_view),
                        ("comparison_size", comparison_size), ("oracle_z", oracle_z), ("jobs", jobs)):
        if value is not None:
            changes[name] = value
    try:
        if relabel_context is not None:
            changes["relabel_context"] = _size_range(relabel_context)
        cfg = RLBenchConfig.quick(**changes) if quick else RLBenchConfig(**changes)
        iql = {name: value for name, value in (("steps", iql_steps), ("hidden", iql_hidden), ("layers", iql_layers))
               if value is not None}
        if iql:  # a value given sets every goal count's IQL
            cfg = cfg.with_iql(**iql)
        run_bench(cfg, out, dataset_dir=dataset, log=typer.echo)
    except (MissingRLDependency, DatasetError, MazeError, ValueError) as err:
        _fail(err)
    typer.echo(f"results written to {out}/")


@app.command("aggregate")
def aggregate(
    runs: list[Path] = typer.Argument(..., help="--out folders of 'pluralign rl bench', one per seed."),
    out: Path = typer.Option(..., "--out", help="Folder for the tables (JSON, markdown, CSV), mean results and plots."),
) -> None:
    """Means and 95 % t-intervals over seeds of the RL bench, and issue 14's targets per seed."""
    from ..rl.seeds import aggregate as aggregate_seeds

    try:
        result = aggregate_seeds(runs, out)
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(err)
    for k, res in result.items():
        typer.echo(f"## {k} goals, seeds {res['seeds']}\n")
        typer.echo(Path(res["paths"]["md"]).read_text())
        typer.echo("\n".join(res["summary"]) + "\n")
    typer.echo(f"written to {out}/")
