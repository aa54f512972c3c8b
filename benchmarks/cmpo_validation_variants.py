"""CMPO training variants scored on the *validation* split only (issue 16; docs/cmpo.md, "Concise
against SFT, on validation"). On the three protocol seeds CMPO's eq. 5.1 accuracy for `concise`
was level with SFT's (+0.8 [-5.6, 7.3] points); this script asks, without the test split, whether
a setting of the protocol's experiment section would change that, before any protocol rerun.

Each variant is the protocol config's experiment section with KEY=VALUE overrides; it trains CMPO
(the protocol's checkpoint rule, best validation cDPO loss) in ``<out>/seed-<s>/<name>/``; SFT is
trained once beside the first variant. Then eq. 5.1 and implicit-reward accuracy of every model on
*every* oriented validation pair (concise 71, detailed 71, formal 87 with the protocol's data).
The test split is sealed: any read raises ``TestSplitAccess``.

    python benchmarks/cmpo_validation_variants.py --seed 0 protocol beta0.5:beta=0.5 all-pairs:pair_mode=all_pairs
    python benchmarks/cmpo_validation_variants.py --seed 0 protocol beta0.01:beta=0.01 --diagnose concise
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np

from pluralign.commands.cmpo import load_rated, set_threads, tokenizer_for
from pluralign.data.cmpo_weights import attribute_pairs
from pluralign.policies.cmpo.experiment import CMPOExperimentConfig, all_pairs, load_stage, run_training, trunk_cache_for
from pluralign.policies.cmpo.protocol import CMPOProtocolConfig
from pluralign.policies.cmpo.report import run_evaluation, vertex_logprobs_of
from pluralign.policies.selection import SealedSplit
from settings import parse_settings


def variant(text: str, base: CMPOExperimentConfig) -> tuple[str, dict]:
    """``NAME[:KEY=VALUE,...]`` -> (name, overrides typed as the experiment config's defaults)."""
    name, _, rest = text.partition(":")
    return name, parse_settings([item for item in rest.split(",") if item], base, what=f"variant {name}:")


def cell(v: dict) -> str:
    """``eq. 5.1 / implicit-reward accuracy (n)`` in %; the base model has no implicit reward."""
    ra = "" if v["reward_accuracy"] is None else f" / {100 * v['reward_accuracy']:.1f}"
    return f"{100 * v['preference_accuracy']:.1f}{ra} ({v['n']})"


def gap_report(out: Path, exp: CMPOExperimentConfig, rated, tok, attribute: str) -> str:
    """Why eq. 5.1 moves or not for ``attribute``: on its oriented pairs, the base model's
    log-likelihood gap log pi_ref(y_c) - log pi_ref(y_r) against CMPO's implicit-reward gap (the
    head's shift of that log-ratio under lambda = e_attribute); eq. 5.1 is right where their sum is > 0."""
    pairs = attribute_pairs(all_pairs(rated, exp.attributes), attribute, exp.margins.get(attribute, 0.0))
    model, cache = load_stage(out, "cmpo"), trunk_cache_for(exp, out)
    prompts = [p.prompt for p in pairs]
    vc = vertex_logprobs_of(model, tok, prompts, [p.chosen for p in pairs], exp, cache).numpy()
    vr = vertex_logprobs_of(model, tok, prompts, [p.rejected for p in pairs], exp, cache).numpy()
    j = 1 + exp.attributes.index(attribute)
    ref, imp = vc[:, 0] - vr[:, 0], (vc[:, j] - vc[:, 0]) - (vr[:, j] - vr[:, 0])
    length = lambda text: len(tok(str(text), add_special_tokens=False)["input_ids"])  # noqa: E731
    shorter = np.array([length(p.chosen) < length(p.rejected) for p in pairs])
    wrong = ref <= 0
    return (f"{attribute}, {len(pairs)} pairs: chosen shorter in {shorter.sum()}; median |base gap| "
            f"{np.median(np.abs(ref)):.0f} nats, median |head's shift| {np.median(np.abs(imp)):.0f} nats; base "
            f"wrong on {wrong.sum()}, the head's shift right on {(imp[wrong] > 0).sum()} of them, eq. 5.1 "
            f"flipped to right on {((ref + imp)[wrong] > 0).sum()}; base right but eq. 5.1 wrong on "
            f"{((~wrong) & (ref + imp <= 0)).sum()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs="+", help="NAME[:KEY=VALUE,...]; the first also trains SFT")
    ap.add_argument("--config", default="benchmarks/cmpo_smollm2_protocol.yaml")
    ap.add_argument("--seed", type=int, default=0, help="experiment.seed (training, batch order)")
    ap.add_argument("--out", default="runs/cmpo-val-variants")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--diagnose", default=None, help="an attribute: base gap against the head's shift (gap_report)")
    args = ap.parse_args()
    set_threads(args.threads)
    cfg = CMPOProtocolConfig.from_yaml(args.config)
    splits, margins = load_rated(cfg.data.source, cfg.experiment.attributes, cfg.data.seed, cfg.data.prompts)
    splits["test"] = SealedSplit("test", [repr(r.prompt) for r in splits["test"]])
    base = dataclasses.replace(cfg.experiment, seed=args.seed, margins=cfg.experiment.margins or margins)
    tok = tokenizer_for(base.base_model)
    root = Path(args.out) / f"seed-{args.seed}"
    table: dict[str, dict] = {}
    cache = None
    for i, text in enumerate(args.variants):
        name, overrides = variant(text, base)
        exp = dataclasses.replace(base, baselines=["sft"] if i == 0 else [], **overrides)
        out = root / name
        out.mkdir(parents=True, exist_ok=True)
        if cache is not None and not (out / "trunk_cache.pt").exists():
            shutil.copy(cache, out / "trunk_cache.pt")  # the frozen trunk's states: the same for every variant
        run_training(exp, splits["train"], splits["validation"], out, tok)
        cache = out / "trunk_cache.pt" if (out / "trunk_cache.pt").exists() else cache
        res = run_evaluation(out, exp, splits["validation"], tok, {}, n_pairs=None, seed=args.seed)
        table[name] = {"overrides": overrides, "accuracy": res["accuracy"]}
        if args.diagnose:
            table[name]["diagnosis"] = gap_report(out, exp, splits["validation"], tok, args.diagnose)
    first = table[next(iter(table))]["accuracy"]
    lines = [f"validation, seed {args.seed}: eq. 5.1 / implicit-reward accuracy, % (n pairs)",
             f"{'variant':<22}" + "".join(f"{a:>26}" for a in base.attributes)]
    rows = [("sft", {a: first[a]["sft"] for a in base.attributes}),
            ("base", {a: first[a]["base"] for a in base.attributes})]
    rows += [(f"cmpo {n}", {a: t["accuracy"][a]["cmpo"] for a in base.attributes}) for n, t in table.items()]
    for label, cells in rows:
        lines.append(f"{label:<22}" + "".join(f"{cell(cells[a]):>26}" for a in base.attributes))
    lines.append("CMPO - SFT, eq. 5.1 (points): " + "; ".join(
        f"{n}: " + ", ".join(f"{a} {100 * (t['accuracy'][a]['cmpo']['preference_accuracy'] - first[a]['sft']['preference_accuracy']):+.1f}"
                             for a in base.attributes) for n, t in table.items()))
    lines += [f"{n}: {t['diagnosis']}" for n, t in table.items() if "diagnosis" in t]
    text = "\n".join(lines)
    print(text)
    (root / "table.txt").write_text(text + "\n")
    (root / "table.json").write_text(json.dumps(table, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
