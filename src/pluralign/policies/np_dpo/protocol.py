"""NP-DPO's selection discipline (issue 16 item 2): ``select`` tunes on validation only, ``report``
is the one reader of the test split.

* :func:`tuning_view` loads the train and validation data and puts a
  :class:`~pluralign.policies.selection.SealedSplit` where the test split was (its prompt strings
  only, so the encoder warm start can leave them out).
* :func:`select` takes that view and a config whose ``report`` section is sealed
  (:func:`~pluralign.policies.selection.sealed`); it trains every candidate of
  ``selection.grid`` (each run's checkpoint chosen on validation by ``fit``), scores them on the
  validation users' tasks (``eval`` section: seed, tasks, N^C, N^T), keeps the best as
  ``RUN/np-dpo``, trains the baselines (fixed step counts, no tuning) and writes ``selection.json``.
* :func:`report` reads ``selection.json``, checks the config is the one selection ran with, and
  evaluates on the test split: ``report.n_tasks`` tasks per user type drawn with ``report.seed``,
  the paired design of :mod:`.evaluate` (every model, ICL included, on the same targets), steered
  answers; writes ``results.json`` / ``results.csv`` / ``accuracy_per_type.png``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ...checkpoint import load_state
from ..report_parts import ReportParts, lazy
from ..selection import SealedSplit, SelectionLog, TestSplitAccess, choose, public_dict, read_selection, sealed
from .evaluate import PolicyEvalConfig, accuracy_vs_context
from .experiment import (ExperimentConfig, done_checks, evaluate_policies, load_run_policies, prepare_experiment,
                         train_method)
from .prepare import Prepared


def config_digest(config: ExperimentConfig) -> str:
    """A hash of every section but ``report`` and ``selection``'s outcome: report refuses a run
    selected under another config."""
    text = json.dumps(public_dict(config), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def tuning_view(config: ExperimentConfig) -> Prepared:
    """Train + validation data; the test split sealed (its records never reach the caller)."""
    prep = prepare_experiment(config, splits=("train", "validation"))
    prompts = {str(r.prompt) for r in prep.splits["test"]}
    splits = {**prep.splits, "test": SealedSplit("test", prompts)}
    return dataclasses.replace(prep, splits=splits, test=SealedSplit("test"))


def apply_overrides(config: ExperimentConfig, overrides: dict[str, Any]) -> ExperimentConfig:
    """``config`` with dotted ``section.field`` values replaced (sections are dataclasses)."""
    for key, value in overrides.items():
        section, name = key.split(".", 1)
        part = getattr(config, section)
        if not dataclasses.is_dataclass(part) or name not in {f.name for f in dataclasses.fields(part)}:
            raise ValueError(f"selection.grid key {key!r}: no field {name!r} in section {section!r}")
        config = dataclasses.replace(config, **{section: dataclasses.replace(part, **{name: value})})
    return config


def grid_candidates(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in the config's order (the first is the default)."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))] or [{}]


def validation_score(doc: dict[str, Any], metric: str) -> float:
    """``final``: mean over user types of the accuracy at the largest N^C; ``mean``: over N^C too."""
    per = doc["per_type"]["np-dpo"]
    sizes = [str(n) for n in doc["context_sizes"]]
    use = sizes[-1:] if metric == "final" else sizes
    return float(np.mean([curve[n]["accuracy"] for curve in per.values() for n in use]))


def select(config: ExperimentConfig, prep: Prepared, out_dir: str | Path, log=print) -> dict[str, Any]:
    """Tune on validation; writes ``selection.json`` and the chosen ``np-dpo`` (+ baselines).

    ``prep`` must be a :func:`tuning_view` (test sealed) and ``config.report`` is sealed here,
    so nothing below can read the test split or the report seed.
    """
    if not isinstance(prep.test, SealedSplit):
        raise TestSplitAccess("select() takes tuning_view(config): the test split must be sealed")
    if prep.val is None:
        raise ValueError("selection needs validation data (task.val_tasks > 0 and a validation split)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    digest = config_digest(config)
    cfg = sealed(config)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, default=str))
    sel = SelectionLog()
    candidates = grid_candidates(config.selection.grid)
    scores: dict[int, float] = {}
    folders = [out / "np-dpo"] if len(candidates) == 1 else [out / "select" / f"candidate-{i}"
                                                              for i in range(len(candidates))]
    for i, overrides in enumerate(candidates):
        folder = folders[i]
        c = apply_overrides(cfg, overrides)
        log(f"candidate {i}: {overrides or '(the config as is)'}")
        scored = _scored(folder / "validation.json", digest, overrides)
        if scored is not None:  # trained and scored by an earlier, stopped select: the same numbers
            scores[i] = scored
            log(f"candidate {i}: kept from an earlier select, validation accuracy {scored:.3f}")
            continue
        policy = train_method(c, prep, "np-dpo", folder, log=log)
        best = folder / "best"
        if (best / "model.safetensors").exists():
            policy.load_trainable_state_dict(load_state(best)[1])
        doc = accuracy_vs_context({"np-dpo": policy}, prep.val, config.eval)
        scores[i] = validation_score(doc, config.selection.metric)
        log(f"candidate {i}: validation {config.selection.metric} accuracy {scores[i]:.3f}")
        (folder / "validation.json").write_text(json.dumps({"overrides": overrides, "score": scores[i],
                                                            "per_type": doc["per_type"], "config_digest": digest},
                                                           indent=2) + "\n")
    chosen = choose(scores)
    if not (folders[chosen] / "fit_summary.json").is_file():
        # its score was carried over without the checkpoints (validation.json kept from a run on
        # another machine): train it again, same config and seed, for report to evaluate
        log(f"candidate {chosen}: chosen; its checkpoints are missing, training it again")
        train_method(apply_overrides(cfg, candidates[chosen]), prep, "np-dpo", folders[chosen], log=log)
    if len(candidates) > 1:
        if (out / "np-dpo").exists():
            shutil.rmtree(out / "np-dpo")
        shutil.copytree(out / "select" / f"candidate-{chosen}", out / "np-dpo")
    metric = (f"np-dpo implicit-reward accuracy, {'largest N^C' if config.selection.metric == 'final' else 'mean over N^C'}"
              f", mean over user types; {config.eval.n_tasks} validation tasks per type, seed {config.eval.seed}")
    # every grid point by all its settings: keyed by one setting's value, the grid's other
    # settings would overwrite each other and show a score the chosen point never had
    grid_scores = {", ".join(f"{k}={json.dumps(candidates[i][k])}" for k in config.selection.grid): s
                   for i, s in scores.items()}
    for key in config.selection.grid:
        sel.record(key, candidates[chosen][key], metric=metric, candidates=grid_scores,
                   metric_value=scores[chosen], note=f"grid candidate {chosen} of {len(candidates)}")
    fit = json.loads((out / "np-dpo" / "fit_summary.json").read_text())
    sel.record("np-dpo checkpoint", fit["best_step"], metric=f"fit validation {config.train.metric_for_best_model}",
               metric_value=(fit["best_metrics"] or {}).get(config.train.metric_for_best_model),
               note=f"best of the validations every {config.train.eval_steps} of {fit['steps']} updates "
                    f"({config.task.val_tasks} validation tasks)")
    if "encoder_warmstart" in fit:
        sel.record("encoder warm-start checkpoint", fit["encoder_warmstart"]["best_step"],
                   metric="NP-BTL validation accuracy (validation prompts' users)",
                   metric_value=(fit["encoder_warmstart"]["validation"] or {}).get("accuracy"))
    for key in ("policy.film_gain", "policy.encoder_odd", "policy.trainable_layers", "train.max_steps"):
        if key not in config.selection.grid:
            section, name = key.split(".")
            sel.fixed(key, getattr(getattr(config, section), name))
    sel.fixed("baselines", dataclasses.asdict(config.baselines), note="fixed step counts, no validation")
    sel.fixed("behaviour (decoding)", dataclasses.asdict(config.behaviour),
              note="sampling settings fixed in the config, not tuned")
    train_baselines(cfg, prep, out, log=log)
    doc = sel.to_dict()
    doc.update(config_digest=digest, chosen_overrides=candidates[chosen])
    (out / "selection.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return doc


def train_baselines(config: ExperimentConfig, prep: Prepared, out: Path, log=print) -> None:
    """BTL-DPO and one DPO per user type (the oracle), at the config's fixed step counts, into
    ``out/btl-dpo`` and ``out/type-dpo-<t>`` (a finished one is kept: training resumes from ``last/``)."""
    if config.baselines.btl_dpo_steps:
        train_method(config, prep, "btl-dpo", out / "btl-dpo", log=log)
    if config.baselines.type_dpo_steps:
        for t in sorted(set(prep.train.types) - {-1}):
            train_method(config, prep, "type-dpo", out / f"type-dpo-{t}", user_type=t, log=log)


def missing_policies(config: ExperimentConfig, run: Path) -> list[str]:
    """The trained policies ``report`` scores whose checkpoints ``run`` lacks (``np-dpo``,
    ``btl-dpo``, ``type-dpo``): a selection.json carried over from another machine without them."""
    missing = [] if (run / "np-dpo" / "fit_summary.json").is_file() else ["np-dpo"]
    if config.baselines.btl_dpo_steps and not (run / "btl-dpo" / "best").exists():
        missing.append("btl-dpo")
    types = sorted(run.glob("type-dpo-*"))
    if config.baselines.type_dpo_steps and (not types or not all((d / "best").exists() for d in types)):
        missing.append("type-dpo")
    return missing


def train_missing(config: ExperimentConfig, run: Path, prep: Prepared | None = None, log=print) -> None:
    """Train again what :func:`missing_policies` names, under the selected ``config`` (chosen
    overrides applied) and its seed, on the train and validation splits only (``prep``, a
    :func:`tuning_view`; loaded when None): what select trained, for the evaluation part of a
    report whose selection.json was carried over."""
    missing = missing_policies(config, run)
    if not missing:
        return
    log(f"{', '.join(missing)}: checkpoints missing, training them again (same config and seed)")
    cfg = sealed(config)
    prep = prep if prep is not None else tuning_view(config)
    if "np-dpo" in missing:
        train_method(cfg, prep, "np-dpo", run / "np-dpo", log=log)
    train_baselines(cfg, prep, run, log=log)


def _scored(path: Path, digest: str, overrides: dict[str, Any]) -> float | None:
    """A candidate's validation score from ``validation.json`` (written once it is trained and
    scored) when it was made under this config and these overrides; None otherwise."""
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    if doc.get("config_digest") != digest or doc.get("overrides") != overrides:
        return None
    return float(doc["score"])


def report(config: ExperimentConfig, run_dir: str | Path, prep: Prepared | None = None, log=print,
           icl_lm: Any = None, tuning_prep: Prepared | None = None) -> dict[str, Any]:
    """The test evaluation of the selected run (the only reader of the test split). Policies
    whose checkpoints are missing are trained again first (:func:`train_missing`, on
    ``tuning_prep``), only when the evaluation part is not already done."""
    run = Path(run_dir)
    read_selection(run)  # a clear error when select has not run
    doc_sel = json.loads((run / "selection.json").read_text())
    if doc_sel.get("config_digest") != config_digest(config):
        raise ValueError(f"{run / 'selection.json'}: selected under another config (digest "
                         f"{doc_sel.get('config_digest')} vs {config_digest(config)}); run select again")
    config = apply_overrides(config, doc_sel.get("chosen_overrides") or {})
    test_eval = PolicyEvalConfig(context_sizes=config.eval.context_sizes, n_tasks=config.report.n_tasks,
                                 n_target=config.eval.n_target, seed=config.report.seed)
    cfg = dataclasses.replace(config, eval=test_eval,
                              behaviour=dataclasses.replace(config.behaviour, seed=config.report.seed))
    prep = prep if prep is not None else prepare_experiment(config, splits=("test",))
    # each piece kept on disk as it finishes: a stopped report resumes after the last one
    parts = ReportParts(run, config_digest(config), dataclasses.asdict(config.report), dataclasses.asdict(config.icl),
                        doc_sel, log=log)
    doc = parts.get("evaluation", lambda: train_missing(config, run, tuning_prep, log=log) or evaluate_policies(
        cfg, prep, load_run_policies(run), run, log=log))
    if config.report.icl:
        from ...eval.results import write_csv, write_json
        from ..icl import load_icl_model
        from .evaluate import plot_accuracy_per_type
        from .icl import icl_accuracy_vs_context, icl_behaviour

        lm = lazy(lambda: load_icl_model(config.policy.base_model), icl_lm)

        icl = parts.get("icl_accuracy", lambda: icl_accuracy_vs_context(lm(), prep.tokenizer, prep.test, test_eval,
                                                                         config.icl))
        for key in ("models", "per_type", "per_task"):
            doc[key].update(icl[key])
        b = cfg.behaviour
        prompts = doc["behaviour"]["prompts"]
        doc["behaviour"]["table"] += parts.get("icl_behaviour", lambda: icl_behaviour(
            lm(), prep.tokenizer, prep.test, prompts, k=b.k, users_per_type=b.users_per_type, attribute=b.attribute,
            seed=b.seed, max_new_tokens=b.max_new_tokens, max_example_words=config.icl.max_example_words))
        for row in doc["behaviour"]["table"][-2:]:
            log(f"  {row['model']:<18} user type {row['user_type']}: mean {b.attribute} {row['mean']:.1f}")
        write_json(doc, run / "results.json")
        write_csv(doc, run / "results.csv")
        plot_accuracy_per_type(doc, run / "accuracy_per_type.png")
    doc["checks"] = done_checks(doc)
    doc["selection"] = doc_sel
    doc["report"] = dataclasses.asdict(config.report)
    from ...eval.results import write_json

    write_json(doc, run / "results.json")
    return doc
