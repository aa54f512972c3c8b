"""One training run from a user's records file, text or numeric (issue 11, item 1).

:func:`train_run` is what ``pluralign train`` does: check the records against the tasks they
must fill, split them (the file's ``split`` column, else seeded by prompt for text / by pair for
numeric data; :mod:`pluralign.data.splits`), turn options into vectors
(:mod:`pluralign.features.options`: the frozen embedder and a standardisation fitted on the
training split), and train with :func:`pluralign.train.rewards.train_reward_model`. The run
folder records the embedder, the standardisation and how the split was made, so a run loads
without its training data.

A new run is written into a temporary sibling folder and renamed to ``out`` only when training
finished, so a failure leaves nothing half-written; an existing ``out`` is resumed in place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn

from ..data.records import PreferenceRecord, prompt_text
from ..data.splits import by_split, how_split, split_records
from ..features.options import OptionFeatures, fit_features
from .loop import FitResult
from .rewards import RUN_FILE, RewardTrainConfig, TaskConfig, check_model_fields, train_reward_model


def split_method(records: Sequence[PreferenceRecord], fractions: Sequence[float], seed: int) -> dict[str, Any]:
    """How :func:`split_records` splits ``records``: the file's column, or seeded groups."""
    if records and all(r.split is not None for r in records):
        return {"method": "file", "column": "split"}
    text = not records[0].is_numeric and any(prompt_text(r.prompt) for r in records)
    return {"method": "seeded", "group_by": "prompt" if text else "pair", "seed": seed,
            "fractions": list(fractions)}


def check_pairs_per_user(parts: dict[str, list[PreferenceRecord]], tasks: TaskConfig,
                         source: str) -> list[str]:
    """Raise when no user of the train (validation) split has the pairs one task needs;
    return warnings naming the users that will be skipped."""
    needs = {"train": (tasks.n_target, f"N^T = {tasks.n_target}"),
             "validation": (tasks.context_max + tasks.n_target,
                            f"N^T = {tasks.n_target} targets + up to N^C = {tasks.context_max} context")}
    notes = []
    for split, (need, what) in needs.items():
        counts = Counter(r.user_id for r in parts[split])
        short = sorted(u for u, n in counts.items() if n < need)
        if len(short) == len(counts):
            user, most = max(counts.items(), key=lambda kv: kv[1]) if counts else ("-", 0)
            raise ValueError(
                f"{source}: no user has the {need} {split} pairs a {split} task needs ({what}); the most "
                f"any user has in the {split} split is {most} (user {user!r}). Give users more pairs, "
                f"or lower tasks.n_target / tasks.context_max in a --config file")
        if short:
            shown = ", ".join(repr(u) for u in short[:5]) + (" ..." if len(short) > 5 else "")
            notes.append(f"{source}: {len(short)} of {len(counts)} users have fewer than {need} {split} "
                         f"pairs and are left out of {split} tasks: {shown}")
    return notes


def check_out_folder(out: Path, model_name: str, text: bool, embedder: Any = None) -> None:
    """An existing non-empty ``out`` must be a run this one can resume: same model, same kind
    of options and the same embedder (resuming on other inputs would mix two runs' features in
    one folder); a folder of other files is never written into."""
    import json

    from ..features.options import embedder_spec

    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: the output folder is a file; give a new or empty folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    run_file = out / RUN_FILE
    if not run_file.is_file():
        if not (out / "last").is_dir():  # a data-parallel run in progress has last/ before run.json
            raise ValueError(f"{out}: the output folder holds other files and no {RUN_FILE}; "
                             "give a new or empty folder")
        return
    meta = json.loads(run_file.read_text())
    if meta.get("model") != model_name:
        raise ValueError(f"{out} holds a {meta.get('model')!r} run; the model is {model_name!r}. "
                         "Pick a new output folder (or delete the old run)")
    recorded = (meta.get("features") or {}).get("embedder")
    if text != (recorded is not None):
        raise ValueError(f"{out} holds a run on {'text' if recorded else 'numeric'} options; these "
                         f"records have {'text' if text else 'numeric'} options. Pick a new output folder")
    if text and embedder is not None:
        spec = embedder_spec(embedder)
        diff = sorted(k for k in spec if recorded.get(k) != spec[k])
        if diff:
            raise ValueError(f"{out} holds a run embedded with {recorded.get('model')!r}; resuming it with "
                             f"{spec['model']!r} would mix two encoders' vectors (they differ in "
                             f"{', '.join(diff)}). Pick a new output folder, or the run's embedder")


def _attach(records: Sequence[PreferenceRecord], chosen, rejected) -> list[PreferenceRecord]:
    from ..features.embed import attach_vectors

    return list(records) if records[0].is_numeric else attach_vectors(records, chosen, rejected)


def train_run(records: Sequence[PreferenceRecord], model_name: str, config: RewardTrainConfig,
              out_dir: str | os.PathLike, *, embedder: Any = None,
              make_embedder: Callable[[], Any] | None = None, data_file: str | None = None,
              describe: Callable[[int, str], str] | None = None,
              log: Callable[[str], None] = print) -> tuple[nn.Module, FitResult, OptionFeatures]:
    """Split, check, featurise and train ``records``; returns (model, fit result, features).

    ``embedder`` embeds text records (or ``make_embedder()`` builds it once the records passed
    the checks, so bad input fails before a model loads); ``describe(i, field)`` names record
    ``i``'s place in its file for messages (e.g. ``prefs.jsonl:12 field 'chosen'``).
    """
    if not records:
        raise ValueError(f"{data_file or 'records'}: no records")
    source = data_file or "records"
    check_model_fields(model_name, config.model_fields(model_name))
    out, text = Path(out_dir), not records[0].is_numeric
    check_out_folder(out, model_name, text)
    have = [r.split is not None for r in records]
    if any(have) and not all(have):
        first = have.index(False)
        raise ValueError(f"{source}: {sum(have)} of {len(records)} records have a 'split' field "
                         f"but {describe(first, 'split') if describe else f'record {first}'} has none: "
                         "give every record a split, or none (then a seeded split is made)")
    split_info = split_method(records, config.split_fractions, config.split_seed)
    how = how_split(records, config.split_fractions, config.split_seed)
    records = split_records(records, tuple(config.split_fractions), seed=config.split_seed)
    parts = by_split(records)
    for name in ("train", "validation"):
        if not parts[name]:
            raise ValueError(f"{source}: the {name} split is empty ({how}); give more prompts or "
                             "pairs, or a 'split' column")
    for note in check_pairs_per_user(parts, config.tasks, source):
        log(f"warning: {note}")
    if text and embedder is None and make_embedder is not None:
        embedder = make_embedder()
    check_out_folder(out, model_name, text, embedder)
    if not records[0].is_numeric and embedder is None:
        raise ValueError(f"{source}: text records need an embedder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feats, chosen, rejected = fit_features(records, embedder, describe=describe)
    for w in caught:
        log(f"warning: {w.message}")
    vec = _attach(records, chosen, rejected)
    extra = {"split": split_info}
    from accelerate import PartialState

    # resume in place (train_reward_model finds out/last); data-parallel processes must share
    # one folder, so they too write in place
    if (out.exists() and any(out.iterdir())) or PartialState().num_processes > 1:
        out.mkdir(parents=True, exist_ok=True)
        extra["features"] = feats.save(out)
        model, result = train_reward_model(vec, model_name, config, out, data_file=data_file, extra=extra)
        return model, result, feats
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        extra["features"] = feats.save(tmp)
        model, result = train_reward_model(vec, model_name, config, tmp, data_file=data_file, extra=extra)
        if out.exists():
            out.rmdir()  # an empty folder the user made beforehand
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    result.out_dir = out
    return model, result, feats
