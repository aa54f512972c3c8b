"""The CMPO experiment end to end: data -> CMPO + baselines (through ``pluralign.train.loop.fit``)
-> attribute-conditioned accuracy, behaviour under lambda, few-shot weights.

Input is rated responses (several per prompt, one score per attribute: the built-in text data,
HelpSteer/OASST rows, or pairs turned back into rated responses), already split by prompt.
Every stage writes its result under ``out_dir`` and is skipped when that result exists, so an
interrupted run continues where it stopped.
"""

from __future__ import annotations

import gc
import json
import time
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ...data.cmpo_weights import (ConditionedPair, RatedResponse, attribute_pairs, convert_likert,
                                 convert_pairs, summarize)
from ...data.records import PreferenceRecord
from ...train.config import TrainConfig
from ...train.loop import fit
from .train import (CMPOObjective, build_pair_table, TrunkCache, likert_bins, make_pair_steps, make_sft_steps,
                         pad_id, steerlm_prompt, table_metrics, to_likert)
from ..logprobs import tokenize_pair
from .plural_heads import PluralConfig, PluralLM, load_base

PAIR_MODES = ("likert", "all_pairs")


@dataclass
class CMPOExperimentConfig:
    """Everything a run needs besides the data. Thesis values: beta 0.5, eps 0.1, LoRA on
    attention, constant lr, weight decay 1e-2 (§5.2); step counts sized for a CPU."""

    attributes: list[str] = field(default_factory=lambda: ["helpfulness", "verbosity"])
    base_model: str = "smollm2"
    rule: str = "power_set"
    pair_mode: str = "likert"  # §5.1.1 greatest-net-margin selection, or every within-prompt pair
    ratio_offset: float = 0.0
    beta: float = 0.5
    label_smoothing: float = 0.1
    margins: dict[str, float] = field(default_factory=dict)  # per-attribute tie margins
    lora: bool = True  # False: frozen trunk (its states are cached), heads only
    lora_rank: int = 8
    head_rank: int | None = None  # None: full heads (thesis); r: low-rank head deltas
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    batch_size: int = 4
    max_length: int = 96
    cmpo_steps: int = 100
    baseline_steps: int = 50
    baselines: list[str] = field(default_factory=lambda: ["sft", "dpo", "steerlm"])
    max_train_pairs: int | None = None
    keep_best: bool = True  # keep the best-validation checkpoint (False: the last one)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pair_mode not in PAIR_MODES:
            raise ValueError(f"pair_mode must be one of {PAIR_MODES}, got {self.pair_mode!r}")
        unknown = set(self.baselines) - {"sft", "dpo", "steerlm"}
        if unknown:
            raise ValueError(f"unknown baselines {sorted(unknown)}; choose from sft, dpo, steerlm")
        if len(self.attributes) < 1:
            raise ValueError("at least one attribute is needed")


def all_pairs(rated: Sequence[RatedResponse], attributes: Sequence[str]) -> list[PreferenceRecord]:
    """Every within-prompt pair of responses as a record with both responses' scores."""
    groups: dict[str, list[RatedResponse]] = {}
    for r in rated:
        groups.setdefault(repr(r.prompt), []).append(r)
    out = []
    for g in groups.values():
        for a, b in combinations(g, 2):
            out.append(PreferenceRecord("pool", a.prompt, a.response, b.response,
                                        attributes={x: [float(a.ratings[x]), float(b.ratings[x])]
                                                    for x in attributes}))
    return out


def conditioned_pairs(rated: Sequence[RatedResponse], config: CMPOExperimentConfig) -> list[ConditionedPair]:
    """Weight-conditioned pairs from rated responses, by ``pair_mode`` and ``rule``."""
    if config.pair_mode == "likert":
        return convert_likert(rated, config.attributes, rule=config.rule, ratio_offset=config.ratio_offset,
                              margins=config.margins)
    return convert_pairs(all_pairs(rated, config.attributes), config.attributes, rule=config.rule,
                         ratio_offset=config.ratio_offset, margins=config.margins)


def train_config(config: CMPOExperimentConfig, steps: int) -> TrainConfig:
    """Constant lr, AdamW, weight decay (§5.2); validation 4 times a run, the best kept."""
    return TrainConfig(learning_rate=config.learning_rate, max_steps=steps, optim="adamw",
                       weight_decay=config.weight_decay, eval_steps=max(steps // 4, 1),
                       save_steps=max(steps, 1), logging_steps=max(1, min(10, steps)),
                       load_best_model_at_end=config.keep_best, seed=config.seed,
                       use_cpu=not torch.cuda.is_available(), resume_from_checkpoint=False)


def _subsample(items: list, n: int | None, seed: int) -> list:
    if n is None or len(items) <= n:
        return items
    keep = np.random.default_rng(seed).choice(len(items), size=n, replace=False)
    return [items[i] for i in sorted(keep)]


class Stage:
    """A trained model folder under the run directory (``done`` once its weights are saved)."""

    def __init__(self, out_dir: Path, name: str):
        self.dir = out_dir / name
        self.model_dir = self.dir / "model"

    @property
    def done(self) -> bool:
        return (self.model_dir / "model.safetensors").is_file()


def _fresh(config: CMPOExperimentConfig, attributes: list[str], train_heads: bool) -> PluralLM:
    base = load_base(config.base_model)
    return PluralLM(base, PluralConfig(attributes=attributes, base_model=config.base_model,
                                       lora=config.lora, lora_rank=config.lora_rank,
                                       lora_alpha=2.0 * config.lora_rank, train_heads=train_heads,
                                       head_rank=config.head_rank))


def _log(out_dir: Path, row: dict) -> None:
    with open(out_dir / "stages.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k != "params"}))


def train_pairs_model(name: str, out_dir: Path, tokenizer: Any, config: CMPOExperimentConfig,
                      pairs: list[ConditionedPair], attributes: list[str], *, train_heads: bool,
                      constant_weights: Sequence[float] | None, steps: int,
                      val_pairs: list[ConditionedPair] | None = None,
                      trunk_cache: TrunkCache | None = None) -> None:
    """cDPO on ``pairs`` (CMPO: k heads; per-attribute DPO: k = 1, lambda = [1])."""
    stage = Stage(out_dir, name)
    if stage.done:
        return
    t0 = time.time()
    model = _fresh(config, attributes, train_heads)
    objective = CMPOObjective(beta=config.beta, label_smoothing=config.label_smoothing,
                              batch_size=config.batch_size, max_length=config.max_length, seed=config.seed)
    table = build_pair_table(model, tokenizer, pairs, max_length=config.max_length,
                             constant_weights=constant_weights, trunk_cache=trunk_cache)
    val_fn = None
    if val_pairs:
        val_table = build_pair_table(model, tokenizer, val_pairs, max_length=config.max_length,
                                     constant_weights=constant_weights, trunk_cache=trunk_cache)
        val_fn = lambda m: table_metrics(m, val_table, objective)  # noqa: E731
    step_fn, batch_fn = make_pair_steps(table, objective)
    result = fit(model, step_fn, batch_fn, train_config(config, steps), stage.dir / "fit", val_fn=val_fn)
    model.save_pretrained(stage.model_dir, {"stage": name})
    _log(out_dir, {"stage": name, "pairs": len(pairs), "steps": steps, "wall_s": round(time.time() - t0, 1),
                   "train": result.train_metrics, "val": result.best_metrics, "best_step": result.best_step,
                   "params": model.parameter_report()})
    del model
    gc.collect()


def train_sft_model(name: str, out_dir: Path, tokenizer: Any, config: CMPOExperimentConfig,
                    prompts: list[Any], responses: list[Any], steps: int,
                    trunk_cache: TrunkCache | None = None) -> None:
    """SFT (or SteerLM's ACM when the prompts carry ratings) on (prompt, response) pairs."""
    stage = Stage(out_dir, name)
    if stage.done:
        return
    t0 = time.time()
    trunk_cache = trunk_cache or TrunkCache()
    # SFT adapts what the run adapts: LoRA, or (frozen trunk) its single head
    model = _fresh(config, ["all"], train_heads=not config.lora)
    seqs = [tokenize_pair(tokenizer, p, r, max_length=config.max_length) for p, r in zip(prompts, responses)]
    cache = None if config.lora else trunk_cache.rows(model, seqs, pad_id(tokenizer))
    step_fn, batch_fn = make_sft_steps(seqs, pad_id(tokenizer), batch_size=config.batch_size, seed=config.seed,
                                       cache=cache)
    result = fit(model, step_fn, batch_fn, train_config(config, steps), stage.dir / "fit")
    model.save_pretrained(stage.model_dir, {"stage": name})
    _log(out_dir, {"stage": name, "sequences": len(seqs), "steps": steps,
                   "wall_s": round(time.time() - t0, 1), "train": result.train_metrics})
    del model
    gc.collect()


def steerlm_ratings(rated: Sequence[RatedResponse], attributes: Sequence[str]) -> dict[str, np.ndarray]:
    """Quantile edges per attribute: raw scores -> SteerLM's 0..4 Likert ratings (from train)."""
    return {a: likert_bins([float(r.ratings[a]) for r in rated]) for a in attributes}


def steerlm_condition(prompt: Any, attribute: str, attributes: Sequence[str]) -> Any:
    """§5.4: the attribute of interest rated 4, every other attribute 0."""
    return steerlm_prompt(prompt, {a: (4 if a == attribute else 0) for a in attributes})


def dpo_pairs(rated: Sequence[RatedResponse], attribute: str, config: CMPOExperimentConfig) -> list[ConditionedPair]:
    """Every within-prompt pair with y_c ≻_a y_r (§5.3.1's per-attribute DPO data), lambda = [1]."""
    oriented = attribute_pairs(all_pairs(rated, config.attributes), attribute, config.margins.get(attribute, 0.0))
    return [ConditionedPair(r.prompt, r.chosen, r.rejected, (1.0,), (attribute,), i) for i, r in enumerate(oriented)]


def trunk_cache_for(config: CMPOExperimentConfig, out: Path) -> TrunkCache | None:
    return None if config.lora else TrunkCache.load(str(out / "trunk_cache.pt"))


def run_training(config: CMPOExperimentConfig, train: Sequence[RatedResponse], val: Sequence[RatedResponse],
                 out_dir: str | Path, tokenizer: Any) -> dict[str, Any]:
    """Train CMPO and the requested baselines; returns the data summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "experiment.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    attrs = list(config.attributes)
    cache = trunk_cache_for(config, out)
    pairs = _subsample(conditioned_pairs(train, config), config.max_train_pairs, config.seed)
    val_pairs = _subsample(conditioned_pairs(val, config), 48, config.seed)
    summary = {"train_responses": len(train), "train_pairs": summarize(pairs), "val_pairs": len(val_pairs)}
    (out / "data_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    train_pairs_model("cmpo", out, tokenizer, config, pairs, attrs, train_heads=True, constant_weights=None,
                      steps=config.cmpo_steps, val_pairs=val_pairs, trunk_cache=cache)
    if cache is not None:
        cache.save(str(out / "trunk_cache.pt"))
    if "sft" in config.baselines:
        train_sft_model("sft", out, tokenizer, config, [r.prompt for r in train], [r.response for r in train],
                        config.baseline_steps, trunk_cache=cache)
    if "dpo" in config.baselines:
        for a in attrs:
            own = _subsample(dpo_pairs(train, a, config), config.max_train_pairs, config.seed)
            train_pairs_model(f"dpo_{a}", out, tokenizer, config, own, [a], train_heads=not config.lora,
                              constant_weights=[1.0], steps=config.baseline_steps, trunk_cache=cache)
    if cache is not None:
        cache.save(str(out / "trunk_cache.pt"))
    if "steerlm" in config.baselines:
        edges = steerlm_ratings(train, attrs)
        prompts = [steerlm_prompt(r.prompt, {a: to_likert(float(r.ratings[a]), edges[a]) for a in attrs})
                   for r in train]
        train_sft_model("steerlm", out, tokenizer, config, prompts, [r.response for r in train],
                        config.baseline_steps, trunk_cache=cache)
        (out / "steerlm_edges.json").write_text(json.dumps({a: e.tolist() for a, e in edges.items()}) + "\n")
    if cache is not None:
        cache.save(str(out / "trunk_cache.pt"))
    return summary


def missing_stages(config: CMPOExperimentConfig, out_dir: str | Path) -> list[str]:
    """The stages :func:`run_training` trains for ``config`` whose weights are not in ``out_dir``."""
    names = ["cmpo"] + [b for b in ("sft", "steerlm") if b in config.baselines]
    names += [f"dpo_{a}" for a in config.attributes] if "dpo" in config.baselines else []
    return [n for n in names if not Stage(Path(out_dir), n).done]


def load_stage(out_dir: str | Path, name: str) -> PluralLM:
    return PluralLM.from_pretrained(Path(out_dir) / name / "model")


def stage_names(out_dir: str | Path) -> list[str]:
    """Trained policy stages of a run (``cmpo``, ``sft``, ``dpo_<a>``, ``steerlm``)."""
    names = (p.parent.parent.name for p in Path(out_dir).glob("*/model/model.safetensors"))
    return sorted(n for n in names if n == "cmpo" or n == "sft" or n == "steerlm" or n.startswith("dpo_"))


ScorerMap = dict[str, Callable[[str], float]]
