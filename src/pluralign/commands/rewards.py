"""``pluralign train`` and ``pluralign eval``: reward models on a records file with text options
(embedded by a frozen encoder the run records) or numeric ones (synthetic data, embeddings)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)

from ..train.presets import DEFAULT_MODEL

MODEL_NAMES = ("btl", "dpl", "np-btl", "vpl", "mix-btl")


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _read(file: Path):
    """Records of a JSONL/Parquet file or a saved ``datasets`` folder (files through the parsed
    records cache beside them), or every problem on stderr."""
    from ..data.io import read_records
    from ..data.record_cache import read_records_cached
    from ..data.records import RecordValidationError

    if not file.exists():
        _fail(f"{file}: no such file")
    try:
        return read_records(file) if file.is_dir() else read_records_cached(file)
    except RecordValidationError as err:
        for p in err.problems[:50]:
            typer.echo(str(p), err=True)
        _fail(f"{file}: {len(err.problems)} problem(s); nothing was loaded")
    except ValueError as err:
        _fail(str(err))


def locator(file: Path):
    """``describe(i, field)`` -> ``FILE:LINE: field 'FIELD'`` (field None: ``FILE:LINE``) for
    record i of ``file`` (JSONL: the i-th non-blank line, as the reader numbers them; Parquet and
    datasets: row i + 1)."""
    from ..data.io import record_lines

    lines = record_lines(file) if file.is_file() and file.suffix.lower() in (".jsonl", ".json", ".ndjson") else None

    def describe(i: int, field: str | None) -> str:
        at = f"{file}:{lines[i] if lines else i + 1}"
        return at if field is None else f"{at}: field '{field}'"

    return describe


def _check_eval_users(part, describe, data: Path, split: str, n_target: int, context_max: int) -> None:
    """Name the users of the evaluated split with fewer pairs than an evaluation task needs
    (N^T targets + the largest N^C as disjoint context): a warning when some are, an error
    when all are, each with the options that set the need."""
    from collections import Counter

    need = n_target + context_max
    counts = Counter(r.user_id for r in part)
    first = {}
    for i, r in enumerate(part):
        first.setdefault(r.user_id, i)
    short = sorted((u for u, n in counts.items() if n < need), key=lambda u: first[u])
    if not short:
        return
    shown = "; ".join(f"{u!r} has {counts[u]} (from {describe(first[u], None)})" for u in short[:3])
    more = f"; ... {len(short) - 3} more" if len(short) > 3 else ""
    what = (f"{need} pairs in the {split} split that a task needs (--n-target {n_target} + "
            f"the largest --context-sizes {context_max})")
    if len(short) == len(counts):
        _fail(f"{data}: no user has the {what}: {shown}{more}. Lower --n-target or --context-sizes, "
              "or give users more pairs")
    typer.echo(f"warning: {data}: {len(short)} of {len(counts)} users lack the {what} and are left out: "
               f"{shown}{more}", err=True)


def _context_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        _fail(f"--context-sizes must be comma-separated integers, got {text!r}")
    if not sizes or any(n < 0 for n in sizes):
        _fail(f"--context-sizes must be non-negative integers, got {text!r}")
    return sizes


def train(
    data: Path = typer.Option(..., "--data", help="Records: .jsonl, .parquet or a saved `datasets` folder; "
                              "text (TRL plain or conversational) or numeric options, plus user_id."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Reward model: mix-btl (the default: a mixture of rewards with an exact posterior), np-btl, vpl, btl or dpl. See docs/rewards.md."),
    out: Path = typer.Option(..., "--out", help="Run folder: best/, last/, log.jsonl, run.json."),
    config: Optional[Path] = typer.Option(None, "--config",
                                          help="YAML with sections model, tasks, train (see docs/training.md)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Override train.max_steps (default: a budget that scales with the data; early stopping ends most runs sooner)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the loop, sampler and split seeds."),
    preset: str = typer.Option("tuned", "--preset", help="Defaults for what the config leaves unset: 'tuned' (sum pooling, antisymmetric pair encoder, NP-BTL lapse 0.05 after 1000 plain steps, lr 1e-3 with a half-cosine decay, VPL beta_max 0.01, Mix-BTL's initial scale 1 or 0.1 chosen by validation NLL, trained to convergence), 'paper' (NP paper App. C.1: mean pooling, lr 1e-4, 2000 steps; VPL beta_max 1), 'tuned-no-lapse' (tuned without the lapse) or 'tuned-plain'. See docs/defaults.md."),
    embedder: Optional[str] = typer.Option(None, "--embedder",
                                           help="Text encoder: minilm (default), smollm2, or a local "
                                                "Hugging Face model folder. Recorded in the run."),
    max_length: int = typer.Option(256, "--max-length", help="Tokens per prompt + response; longer "
                                   "texts lose the start of the prompt (a warning says how many)."),
) -> None:
    """Train a reward model; text options are embedded with a frozen encoder (cached on disk).
    Resumes from OUT/last when it exists."""
    import dataclasses

    from ..train.config import ConfigError
    from ..train.presets import PRESETS
    from ..train.rewards import RUN_FILE, RewardTrainConfig, check_model_fields
    from ..train.run import train_run

    if model not in MODEL_NAMES:
        _fail(f"--model must be one of {', '.join(MODEL_NAMES)}, got {model!r}")
    if preset not in PRESETS:
        _fail(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    try:
        cfg = RewardTrainConfig.from_yaml(config, preset=preset) if config else RewardTrainConfig(preset=preset)
        if steps is not None or seed is not None:
            train_cfg = dataclasses.replace(cfg.train, **({"max_steps": steps} if steps is not None else {}),
                                            **({"seed": seed} if seed is not None else {}))
            tasks = dataclasses.replace(cfg.tasks, seed=seed) if seed is not None else cfg.tasks
            cfg = dataclasses.replace(cfg, train=train_cfg, tasks=tasks,
                                      split_seed=seed if seed is not None else cfg.split_seed,
                                      step_budget=cfg.step_budget and steps is None)
        check_model_fields(model, cfg.model_fields(model),
                           f"{config}: model" if config else f"--preset {preset}: model")
    except (ConfigError, ValueError) as err:
        _fail(str(err))
    records = _read(data)
    if not records:
        _fail(f"{data}: no records")
    text = not records[0].is_numeric
    if embedder is not None and not text:
        _fail(f"--embedder applies to text options; {data} has numeric options")
    if (out / RUN_FILE).is_file():
        _check_resume(out, model, data)
    try:
        from ..features.options import DEFAULT_EMBEDDER, open_embedder

        def make_embedder():
            typer.echo(f"{data}: {len(records)} text pairs of {len({r.user_id for r in records})} users; "
                       f"embedding prompt + response with {embedder or DEFAULT_EMBEDDER}", err=True)
            return open_embedder(embedder or DEFAULT_EMBEDDER, max_length=max_length)

        _, result, feats = train_run(records, model, cfg, out, make_embedder=make_embedder, data_file=str(data),
                                     describe=locator(data), log=lambda s: typer.echo(s, err=True))
    except (ConfigError, ValueError, TypeError) as err:
        _fail(str(err))
    from accelerate import PartialState

    if not PartialState().is_main_process:  # one report per distributed run
        return
    best = ", ".join(f"{k}={v:.4f}" for k, v in result.best_metrics.items())
    typer.echo(f"trained {model} for {result.step} steps"
               + (f" (resumed from step {result.resumed_from})" if result.resumed_from else "")
               + (" (stopped early)" if result.stopped_early else ""))
    typer.echo(f"best validation at step {result.best_step}: {best}")
    sel = json.loads((out / RUN_FILE).read_text()).get("selection")
    if sel:
        tried = ", ".join(f"{v}: {m:.4f}" for v, m in sel["candidates"].items())
        typer.echo(f"{sel['field']} chosen on validation: {sel['chosen']} ({sel['metric']} of each: {tried})")
    typer.echo(f"model: {result.best_dir}   log: {result.log_path}")
    if feats.is_text:
        typer.echo(f"embedder: {feats.spec['model']} ({feats.spec['pooling']} pooling, {feats.spec['dim']}-d, "
                   f"max {feats.spec['max_length']} tokens), recorded in {out / RUN_FILE}")


def _check_resume(out: Path, model: str, data: Path) -> None:
    """Says when a resumed run continues on other data (:func:`pluralign.train.run.check_out_folder`
    refuses another model, kind of options or embedder)."""
    from ..train.rewards import RUN_FILE

    meta = json.loads((out / RUN_FILE).read_text())
    if meta.get("model") == model and meta.get("data") not in (None, str(data)):
        typer.echo(f"warning: {out} was trained on {meta['data']}; resuming it on {data}", err=True)


def evaluate(
    runs: list[Path] = typer.Argument(..., help="Run folder(s) written by `pluralign train`."),
    data: Path = typer.Option(..., "--data", help="The records file the runs were trained on."),
    context_sizes: str = typer.Option("0,1,3,5,10", "--context-sizes", help="N^C values, comma-separated."),
    out: Path = typer.Option(Path("results.json"), "--out", help="results.json (CSV and PNG beside it)."),
    n_tasks: int = typer.Option(500, "--n-tasks", help="Test tasks per context size."),
    n_target: Optional[int] = typer.Option(None, "--n-target", help="N^T (default: the run's)."),
    split: str = typer.Option("test", "--split", help="Split to evaluate on."),
    seed: int = typer.Option(12345, "--seed", help="Seed of the evaluation tasks."),
    task: Optional[str] = typer.Option(None, "--task", help="Task name in the results (default: data file stem)."),
) -> None:
    """Accuracy on unseen target pairs vs N^C, per user type, with the Bayes line and the
    context-flip / active-unit diagnostics; writes JSON, CSV and PNG and prints a table. Text
    records are embedded with the runs' recorded embedder."""
    from ..data.splits import how_split, split_records
    from ..eval.metrics import EvalConfig, EvalData
    from ..eval.plots import plot_accuracy, plot_per_type
    from ..eval.results import evaluate_models, format_table, write_csv, write_json
    from ..eval.text_bench import format_per_type, type_names
    from ..personalizer import Personalizer

    if split not in ("train", "validation", "test"):
        _fail(f"--split must be train, validation or test, got {split!r}")
    if out.is_dir():
        _fail(f"--out {out} is a folder; give a file name such as {out / 'results.json'}")
    sizes = _context_sizes(context_sizes)
    models, split_keys, targets, features = {}, set(), set(), []
    for run in runs:
        try:
            p = Personalizer.from_pretrained(run)
        except (ValueError, FileNotFoundError) as err:
            _fail(str(err))
        cfg = p.run["config"]
        split_keys.add((tuple(cfg["split_fractions"]), cfg["split_seed"]))
        targets.add(cfg["tasks"]["n_target"])
        name = p.model_name if p.model_name not in models else f"{p.model_name} ({run.name})"
        models[name] = p.model
        features.append((run, p.features))
    if len(split_keys) > 1:
        _fail(f"the runs were split differently ({sorted(split_keys)}); evaluate them separately")
    run0, feats = features[0]
    for run, other in features[1:]:
        if not feats.same_as(other):
            _fail(f"{run} and {run0} read options differently (embedder or standardisation); "
                  "evaluate them separately")
    fractions, split_seed = split_keys.pop()
    records = _read(data)
    if not records:
        _fail(f"{data}: no records")
    how = how_split(records, fractions, split_seed)
    records = split_records(records, fractions, seed=split_seed)
    index = [i for i, r in enumerate(records) if r.split == split]  # record -> its place in the file
    part = [records[i] for i in index]
    if not part:
        _fail(f"{data}: the {split} split is empty ({how}, as the runs were trained); "
              "pick another --split, or give more prompts or pairs")
    where = locator(data)
    describe = lambda i, field: where(index[i], field)  # noqa: E731
    target = n_target if n_target is not None else max(targets)
    _check_eval_users(part, describe, data, split, target, max(sizes))
    import warnings

    from ..data.tasks import SkippedUsersWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        warnings.simplefilter("ignore", SkippedUsersWarning)  # _check_eval_users named them
        try:
            chosen, rejected = feats.record_vectors(part, describe)
            eval_data = EvalData.from_records(part, chosen, rejected)
            cfg = EvalConfig(context_sizes=sizes, n_tasks=n_tasks, seed=seed, n_target=target)
            names = type_names(records)
            doc = evaluate_models(models, eval_data, cfg, task=task or data.stem,
                                  runs=[str(r) for r in runs], data_file=str(data), split=split,
                                  user_types={str(k): v for k, v in names.items()})
        except (ValueError, TypeError) as err:
            _fail(str(err) if str(err).startswith(str(data)) else f"{data}: {err}")
    for w in caught:  # e.g. long texts cut (the message names the file and line)
        typer.echo(f"warning: {w.message}", err=True)
    # beside the JSON, same stem ("example-4.1.json" -> "example-4.1.csv": not with_suffix); all
    # written in a temporary folder first and moved into place together, so a failure leaves none
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.stem}.tmp-", dir=out.parent))
    try:
        write_json(doc, stage / out.name)
        write_csv(doc, stage / (out.stem + ".csv"))
        plot_accuracy(doc, stage / (out.stem + ".png"))
        per_type = plot_per_type(doc, stage / (out.stem + "-per-type.png"))
        for f in sorted(stage.iterdir()):
            os.replace(f, out.parent / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    csv_path, png_path = out.with_name(out.stem + ".csv"), out.with_name(out.stem + ".png")
    per_type = per_type and out.with_name(per_type.name)
    typer.echo(format_table(doc))
    if doc.get("per_type"):
        typer.echo(format_per_type(doc, names))
    typer.echo(f"wrote {out}, {csv_path}, {png_path}" + (f", {per_type}" if per_type else ""))
