"""CMPO's selection discipline (issue 16 items 2, 4, 5): ``select`` on validation prompts and
simulated validation users only, ``report`` the one reader of the test split.

:func:`select` (test split sealed, ``report`` section sealed) trains CMPO and the baselines SFT,
per-attribute DPO (cDPO at ``experiment.beta``, the same beta as CMPO) and SteerLM (the CMPO
checkpoint chosen on validation cDPO loss by ``fit``), then chooses

* the greedy decoding's repetition penalty: the candidate whose lambda path
  ``selection.interpolate`` gives the highest Spearman correlation of ``selection.scorer`` with t
  on the *validation* prompts (ties: the first candidate, i.e. the config's default);
* the few-shot encoder's feature views, pair symmetry and step count: recovery of the simulated
  *validation* users' attribute from ``selection.n_context`` choices;

and writes ``selection.json``. :func:`report` evaluates the chosen configuration on the test
split: eq. 5.1 and implicit-reward accuracy of CMPO, base, SFT, DPO, SteerLM and ICL on
``report.n_pairs`` test pairs per attribute (drawn with ``report.seed``), the lambda path and ICL
users on ``report.n_prompts`` test prompts, few-shot recovery of ``report.fewshot_users`` test
users drawn with ``report.seed``; writes ``report.json`` (and ``eval.json`` / ``accuracy.csv``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from ...data.cmpo_weights import attribute_pairs
from ...train.config import check_types, config_from_dict, read_yaml
from ..icl import ICLConfig
from ..report_parts import ReportParts, lazy
from ..selection import SealedSplit, SelectionLog, TestSplitAccess, choose, public_dict, sealed
from .evaluate import interpolation, spearman
from .experiment import (CMPOExperimentConfig, _subsample, all_pairs, load_stage, missing_stages, run_training,
                         trunk_cache_for)
from .fewshot import FEATURE_VIEWS, FewShotWeights, recovery


@dataclass
class CMPODataConfig:
    """source: ``builtin``, ``builtin:PATH`` or a records file; prompts: at most this many prompts
    of train, validation, test (CPU budget); seed: the data split / prompt draw (fixed over seeds)."""

    source: str = "builtin"
    prompts: list[int] | None = None
    seed: int = 0


@dataclass
class CMPOSelectionConfig:
    """Candidates tuned on validation (the first of each list is the default, it wins ties)."""

    interpolate: list[str] = field(default_factory=lambda: ["concise", "detailed"])
    scorer: str = "length"
    repetition_penalty: list[float] = field(default_factory=lambda: [1.0, 1.2])
    n_prompts: int = 8
    max_new_tokens: int = 200
    fewshot_features: list[str] = field(default_factory=lambda: ["sum+mean", "sum"])
    fewshot_pair_symmetry: list[Literal["none", "antisymmetric"]] = field(default_factory=lambda: ["none", "antisymmetric"])
    fewshot_steps: list[int] = field(default_factory=lambda: [3000])
    fewshot_users: int = 60
    fewshot_draws: int = 1
    n_context: int = 5

    def __post_init__(self) -> None:
        check_types(self)
        if len(self.interpolate) != 2:
            raise ValueError(f"selection.interpolate wants two attributes, got {self.interpolate}")
        for f in self.fewshot_features:
            if f not in FEATURE_VIEWS:
                raise ValueError(f"selection.fewshot_features: {f!r} is not one of {FEATURE_VIEWS}")


@dataclass
class CMPOReportConfig:
    """The test evaluation; ``seed`` draws the test pairs and the simulated test users."""

    seed: int = 20261130
    n_pairs: int = 80
    n_prompts: int = 16
    fewshot_users: int = 150
    fewshot_draws: int = 4
    contexts: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    icl: bool = True

    def __post_init__(self) -> None:
        check_types(self)


@dataclass
class CMPOProtocolConfig:
    """YAML sections: data, experiment (:class:`.experiment.CMPOExperimentConfig`), selection,
    report, icl (:class:`pluralign.policies.icl.ICLConfig`)."""

    data: CMPODataConfig = field(default_factory=CMPODataConfig)
    experiment: CMPOExperimentConfig = field(default_factory=CMPOExperimentConfig)
    selection: CMPOSelectionConfig = field(default_factory=CMPOSelectionConfig)
    report: CMPOReportConfig = field(default_factory=CMPOReportConfig)
    icl: ICLConfig = field(default_factory=ICLConfig)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "CMPOProtocolConfig":
        return config_from_dict(cls, read_yaml(path), str(path))


def config_digest(config: CMPOProtocolConfig) -> str:
    return hashlib.sha1(json.dumps(public_dict(config), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _val_prompts(rated: Sequence[Any], n: int) -> list[Any]:
    return list({repr(r.prompt): r.prompt for r in rated}.values())[:n]


def select(config: CMPOProtocolConfig, splits: Mapping[str, Any], tokenizer: Any,
           scorers: Mapping[str, Callable[[str], float]], out_dir: str | Path, log=print) -> dict[str, Any]:
    """Train, then choose decoding and few-shot settings on validation; ``selection.json``."""
    if not isinstance(splits["test"], SealedSplit):
        raise TestSplitAccess("select() takes the splits with the test split sealed")
    out = Path(out_dir)
    digest = config_digest(config)
    config = sealed(config)
    exp, sel_cfg = config.experiment, config.selection
    train, val = splits["train"], splits["validation"]
    run_training(exp, train, val, out, tokenizer)
    sel = SelectionLog()
    stages = [json.loads(line) for line in (out / "stages.jsonl").read_text().splitlines() if line.strip()]
    cmpo_row = [r for r in stages if r["stage"] == "cmpo"][-1]
    sel.record("cmpo checkpoint", cmpo_row.get("best_step") if exp.keep_best else exp.cmpo_steps,
               metric="cDPO loss on the validation pairs (fit, 4 validations)", metric_value=(cmpo_row.get("val") or {}).get("loss"),
               note="keep_best" if exp.keep_best else "keep_last: the final step")
    sel.fixed("baselines", {"names": exp.baselines, "steps": exp.baseline_steps, "beta": exp.beta,
                            "label_smoothing": exp.label_smoothing},
              note="per-attribute DPO at CMPO's beta; SFT/SteerLM/DPO step counts fixed, final checkpoint")
    model = load_stage(out, "cmpo")
    first, second = sel_cfg.interpolate
    prompts = _val_prompts(val, sel_cfg.n_prompts)
    rp_scores = {}
    if sel_cfg.scorer not in scorers:  # e.g. a records file without the built-in scorers
        log(f"no scorer {sel_cfg.scorer!r} for this data: repetition penalty = the first candidate")
    for rp in sel_cfg.repetition_penalty if sel_cfg.scorer in scorers else ():
        rows = interpolation(model, tokenizer, prompts, first, second, {sel_cfg.scorer: scorers[sel_cfg.scorer]},
                             max_new_tokens=sel_cfg.max_new_tokens, repetition_penalty=rp, progress=False)
        rp_scores[rp] = spearman([r[sel_cfg.scorer] for r in rows])
        log(f"repetition penalty {rp}: validation spearman({sel_cfg.scorer}, t) = {rp_scores[rp]:.2f}")
    if rp_scores:
        rp = choose({k: (v if v == v else -2.0) for k, v in rp_scores.items()})  # nan (constant) ranks last
        sel.record("repetition_penalty", rp, candidates=rp_scores,
                   metric=f"Spearman of {sel_cfg.scorer} with t on lambda {first}->{second}, {len(prompts)} "
                          f"validation prompts, greedy")
    else:
        rp = sel_cfg.repetition_penalty[0]
        sel.fixed("repetition_penalty", rp, note=f"no scorer {sel_cfg.scorer!r} for this data: the first candidate")
    from .report import fewshot_tables, fit_fewshot_encoder

    cache = trunk_cache_for(exp, out)
    fs_scores: dict[tuple, float] = {}
    for features in sel_cfg.fewshot_features:
        tables = fewshot_tables(model, tokenizer, exp, cache,
                                {"train": (train, sel_cfg.fewshot_users * 4, exp.seed),
                                 "val": (val, sel_cfg.fewshot_users, exp.seed + 1)}, features=features)
        for symmetry in sel_cfg.fewshot_pair_symmetry:
            for steps in sel_cfg.fewshot_steps:
                key = (features, symmetry, steps)
                enc, _ = fit_fewshot_encoder(tables, len(exp.attributes), out / "fewshot-select" / "_".join(map(str, key)),
                                             steps=steps, n_context=sel_cfg.n_context, pair_symmetry=symmetry,
                                             features=features, draws=sel_cfg.fewshot_draws, seed=exp.seed)
                fs_scores[key] = recovery(enc, tables["val"], n_context=sel_cfg.n_context, seed=exp.seed,
                                          draws=sel_cfg.fewshot_draws)["recovered"]
                log(f"few-shot {key}: validation recovery {fs_scores[key]:.3f}")
    if cache is not None:
        cache.save(str(out / "trunk_cache.pt"))
    best = choose(fs_scores)
    metric = (f"attribute recovered from {sel_cfg.n_context} choices, {sel_cfg.fewshot_users} simulated validation "
              f"users x {sel_cfg.fewshot_draws} draws")
    for i, name in enumerate(("fewshot_features", "fewshot_pair_symmetry", "fewshot_steps")):
        sel.record(name, best[i], metric=metric, metric_value=fs_scores[best],
                   candidates={"/".join(map(str, k)): v for k, v in fs_scores.items()})
    if (out / "fewshot").exists():
        shutil.rmtree(out / "fewshot")
    shutil.copytree(out / "fewshot-select" / "_".join(map(str, best)), out / "fewshot")
    doc = sel.to_dict()
    doc.update(config_digest=digest, chosen={"repetition_penalty": rp, "fewshot_features": best[0],
                                             "fewshot_pair_symmetry": best[1], "fewshot_steps": best[2]})
    (out / "selection.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return doc


def report(config: CMPOProtocolConfig, splits: Mapping[str, Any], tokenizer: Any,
           scorers: Mapping[str, Callable[[str], float]], out_dir: str | Path, icl_lm: Any = None,
           log=print) -> dict[str, Any]:
    """The test evaluation of the selected run (the only reader of the test split)."""
    from .report import fewshot_tables, run_evaluation

    out = Path(out_dir)
    path = out / "selection.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no selection.json; run `pluralign cmpo select` first")
    doc_sel = json.loads(path.read_text())
    if doc_sel.get("config_digest") != config_digest(config):
        raise ValueError(f"{path}: selected under another config; run select again")
    chosen, exp, rep = doc_sel["chosen"], config.experiment, config.report
    train, test = splits["train"], splits["test"]
    pair = tuple(config.selection.interpolate)
    # each piece kept on disk as it finishes: a stopped report resumes after the last one
    parts = ReportParts(out, config_digest(config), dataclasses.asdict(rep), dataclasses.asdict(config.icl),
                        doc_sel, log=log)

    def trained() -> None:
        """The stages' weights, trained again where selection.json was carried over without them
        (a run on another machine): same config and seed, train and validation splits only. Only
        the parts that score the stages call it."""
        missing = missing_stages(exp, out)
        if missing:
            log(f"stages {', '.join(missing)}: weights missing, training them again")
            run_training(exp, train, splits["validation"], out, tokenizer)

    res = parts.get("evaluation", lambda: trained() or run_evaluation(
        out, exp, test, tokenizer, scorers, interpolate=[pair], n_pairs=rep.n_pairs, n_prompts=rep.n_prompts,
        max_new_tokens=config.selection.max_new_tokens, repetition_penalty=chosen["repetition_penalty"],
        seed=rep.seed))

    def fewshot() -> list[dict[str, Any]]:
        trained()
        model = load_stage(out, "cmpo")
        tables = fewshot_tables(model, tokenizer, exp, trunk_cache_for(exp, out),
                                {"test": (test, rep.fewshot_users, rep.seed)}, features=chosen["fewshot_features"])
        del model
        enc = FewShotWeights.from_pretrained(out / "fewshot" / "model")
        return [recovery(enc, tables["test"], n_context=c, seed=rep.seed, draws=rep.fewshot_draws)
                for c in rep.contexts]

    res["fewshot"] = parts.get("fewshot", fewshot)
    if rep.icl:
        from ..icl import load_icl_model
        from .icl import icl_accuracy, icl_steering

        lm = lazy(lambda: load_icl_model(exp.base_model), icl_lm)

        pool = all_pairs(test, exp.attributes)
        sets = {a: _subsample(attribute_pairs(pool, a, exp.margins.get(a, 0.0)), rep.n_pairs, rep.seed)
                for a in exp.attributes}  # the pairs run_evaluation scored
        icl_rows = parts.get("icl_accuracy", lambda: icl_accuracy(lm(), tokenizer, sets, train, exp, config.icl,
                                                                   rep.seed))
        for a, row in icl_rows.items():
            res["accuracy"][a]["icl"] = row
        prompts = list(dict.fromkeys(r.prompt for r in test))[:rep.n_prompts]
        res["icl_steering"] = parts.get("icl_steering", lambda: icl_steering(
            lm(), tokenizer, prompts, list(pair), train, exp, config.icl, scorers,
            max_new_tokens=config.selection.max_new_tokens, repetition_penalty=chosen["repetition_penalty"],
            seed=rep.seed))
    for item in res["interpolation"].values():
        for row in item["rows"]:
            row.pop("texts", None)
    res.update(selection=doc_sel, report=dataclasses.asdict(rep))
    (out / "report.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    return res
