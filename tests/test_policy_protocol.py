"""Selection discipline, seeds and the ICL baseline of the policy experiments (issue 16), on tiny
random models: the tuning path never reads the test split or the report seed, selection.json says
what was chosen on what, interval math by hand, the ICL template and its scoring."""

import json
import math
import random

import numpy as np
import pytest
import torch

from pluralign.policies.icl import ICLConfig, TEMPLATE, icl_logprobs, icl_pair_scores, icl_prompt
from pluralign.policies.selection import (SealedSection, SealedSplit, SelectionLog, TestSplitAccess, choose,
                                          read_selection, sealed)
from pluralign.eval.seeds import bootstrap_interval, interval_row, t_interval, write_tables
from pluralign.policies.tiny import tiny_causal_lm, tiny_tokenizer


# --- the sentinel and the selection log ------------------------------------------------------------

def test_sealed_split_refuses_every_use_as_data():
    s = SealedSplit("test", ["q1", "q2"])
    assert s.held_out_prompts == frozenset({"q1", "q2"})
    for use in (len, list, bool, lambda x: x[0], lambda x: x.records, lambda x: [r for r in x]):
        with pytest.raises(TestSplitAccess):
            use(s)
    import copy

    copy.deepcopy(s)  # copying is not reading


def test_sealed_config_section_and_selection_log(tmp_path):
    from pluralign.policies.np_dpo.experiment import ExperimentConfig

    cfg = sealed(ExperimentConfig())
    assert isinstance(cfg.report, SealedSection)
    with pytest.raises(TestSplitAccess, match="report"):
        cfg.report.seed
    assert "report" not in cfg.to_dict() and "selection" in cfg.to_dict()
    from pluralign.policies.np_dpo.experiment import SelectionConfig

    for bad in ({"report.seed": [1]}, {"behaviour.max_new_tokens": [8]}, {"film_gain": [1.0]}, {"policy.film_gain": []}):
        with pytest.raises(ValueError, match="selection.grid"):
            SelectionConfig(grid=bad)
    log = SelectionLog()
    log.record("policy.film_gain", 2.0, metric="val acc", candidates={1.0: 0.6, 2.0: 0.7})
    log.fixed("train.max_steps", 60)
    with pytest.raises(TestSplitAccess):
        log.record("x", 1, metric="acc", split="test")
    log.write(tmp_path)
    doc = json.loads((tmp_path / "selection.json").read_text())
    assert doc["settings"]["policy.film_gain"] == {"value": 2.0, "metric": "val acc", "split": "validation",
                                                   "metric_value": 0.7, "candidates": {"1.0": 0.6, "2.0": 0.7},
                                                   "note": ""}
    assert read_selection(tmp_path) == {"policy.film_gain": 2.0, "train.max_steps": 60}
    assert choose({"a": 0.5, "b": 0.7, "c": 0.7}) == "b" and choose({"a": 1.0, "b": 0.5}, False) == "b"


# --- interval math, by hand ------------------------------------------------------------------------

def test_t_interval_by_hand():
    # values 0.6, 0.7, 0.8: mean 0.7, sd 0.1, t_{0.975, 2} = 4.302653, half = 4.302653 * 0.1 / sqrt(3)
    r = t_interval([0.6, 0.7, 0.8])
    assert r["mean"] == pytest.approx(0.7) and r["sd"] == pytest.approx(0.1)
    assert r["half_width"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-5)
    assert r["low"] == pytest.approx(0.7 - 0.248414, abs=1e-5)
    assert math.isnan(t_interval([0.5])["half_width"]) and t_interval([]) ["n"] == 0
    row = interval_row([0.6, 0.7, None, 0.8], scale=100.0)
    assert row["seeds"] == 3 and row["mean"] == pytest.approx(70.0) and row["values"][2] is None


def test_bootstrap_interval_is_stratified_and_contains_the_mean():
    # constant tasks within each seed: every replicate equals the mean of the seed means
    b = bootstrap_interval([[1.0, 1.0], [0.0, 0.0, 0.0]], n_boot=200)
    assert b["mean"] == b["low"] == b["high"] == 0.5 and b["n_tasks"] == 5
    rng = np.random.default_rng(0)
    b = bootstrap_interval([rng.random(40), rng.random(40)], n_boot=500)
    assert b["low"] < b["mean"] < b["high"] and b["high"] - b["low"] < 0.25


def test_write_tables(tmp_path):
    rows = [{"model": "np-dpo", **interval_row([0.5, 0.7], [[0.5, 0.5], [0.6, 0.8]], scale=100.0)}]
    paths = write_tables({"accuracy": rows}, {"accuracy": ["model"]}, tmp_path)
    md = paths["md"].read_text()
    assert "| np-dpo | 60.0 [" in md and "bootstrap" in md
    assert json.loads(paths["json"].read_text())["accuracy"][0]["values"] == [50.0, 70.0]
    assert paths["csv_accuracy"].read_text().startswith("model,")
    one = write_tables({"accuracy": [{"model": "cmpo", **interval_row([0.9], scale=100.0)}]},
                       {"accuracy": ["model"]}, tmp_path / "one")
    assert "| cmpo | 90.0 [one seed: no interval] | 1 |" in one["md"].read_text()


# --- the ICL template and its scoring --------------------------------------------------------------

def test_icl_template():
    assert icl_prompt("How?", []) == "How?"  # k = 0: the base model's own prompt
    text = icl_prompt("How?", [("q1", "short", "a much longer answer here"), ("q2", "ok", "no")], max_example_words=3)
    assert text.startswith(TEMPLATE["intro"]) and text.endswith("Question: How?")
    assert "Example 1\nQuestion: q1\nPreferred answer: short\nRejected answer: a much longer ..." in text
    assert text.index("Example 1") < text.index("Example 2") < text.index(TEMPLATE["outro"])


def test_icl_scoring_on_a_tiny_model():
    from pluralign.policies.logprobs import sequence_logprobs, tokenize_responses

    tok, lm = tiny_tokenizer(), tiny_causal_lm("llama")
    cfg = ICLConfig(max_length=400, batch_size=3)
    prompts = ["a?", "bb?", "c?"]
    responses = ["yes", "no no", "maybe so"]
    ex = [("q", "yes", "no")]
    got = icl_logprobs(lm, tok, [icl_prompt(p, ex) for p in prompts], responses, cfg)
    # the same numbers as the library's own scorer, one sequence at a time (batching/sorting exact)
    for i in range(3):
        b = tokenize_responses(tok, [icl_prompt(prompts[i], ex)], [responses[i]], max_length=400)
        assert got[i].item() == pytest.approx(sequence_logprobs(lm, b).item(), abs=1e-4)
    s = icl_pair_scores(lm, tok, [[], ex], ["a?", "b?"], ["yes", "ok"], ["no", "nope"], cfg)
    # no examples: the ICL prompt is the plain prompt, the implicit reward is 0, a tie (1/2)
    assert s["reward_correct"][0].item() == 0.5
    assert torch.allclose(s["icl"][[0, 2]], s["plain"][[0, 2]])
    assert s["raw_correct"][0].item() == float(s["plain"][0] > s["plain"][2])
    assert s["reward_correct"][1].item() == float((s["icl"][1] - s["plain"][1]) > (s["icl"][3] - s["plain"][3]))


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_icl_shared_prefix_scores_as_whole_sequences(arch):
    # one user's examples computed once and reused for every question: the same log-probs as
    # scoring each sequence whole, for groups of 1-4 pairs, partial batches, and prompts cut
    # from the left by max_length (the shared prefix then shrinks)
    tok, lm = tiny_tokenizer(), tiny_causal_lm(arch)
    ex_a = [("first question", "a short answer", "a long rambling answer"), ("second", "yes", "no")]
    ex_b = [("another one", "fine", "not fine at all")]
    examples = [ex_a, ex_a, ex_a, ex_b, ex_a, ex_b, []]
    prompts = ["a?", "what now?", "b b?", "c?", "longer question here?", "d?", "e?"]
    chosen = ["yes", "ok then", "maybe so", "fine", "sure", "x", "y"]
    rejected = ["no", "nope nope", "never", "bad", "not sure at all", "z", "w"]
    for max_length in (400, 120):
        cfg = ICLConfig(max_length=max_length, batch_size=3)
        whole = icl_pair_scores(lm, tok, examples, prompts, chosen, rejected, cfg, share_prefix=False)
        shared = icl_pair_scores(lm, tok, examples, prompts, chosen, rejected, cfg)
        for key in ("icl", "plain"):
            assert torch.allclose(shared[key], whole[key], atol=1e-4), (arch, max_length, key)
        assert torch.equal(shared["raw_correct"], whole["raw_correct"])
    with pytest.raises(ValueError, match="group keys"):
        icl_logprobs(lm, tok, ["a", "b"], ["x", "y"], ICLConfig(), groups=[0])


# --- NP-DPO select / report end to end on a tiny model ---------------------------------------------

def _records():
    from pluralign.data.records import PreferenceRecord

    rng = random.Random(0)
    out = []
    for split, n_prompts in (("train", 8), ("validation", 5), ("test", 5)):
        for u in range(4):
            t = u % 2
            for i in range(n_prompts):
                short, long = "ok.", "well, " * rng.randint(2, 4) + "ok."
                c, r = (short, long) if t == 0 else (long, short)
                out.append(PreferenceRecord(f"u{u}", f"{split} q{i}?", c, r, split=split, user_latent=t,
                                            pair_id=f"{split}{i}", meta={"user_type": ["concise", "detailed"][t]}))
    return out


def _prepared(tok, sealed_test: bool):
    from pluralign.policies.np_dpo.data import PolicyData
    from pluralign.policies.np_dpo.prepare import Prepared

    recs = _records()
    splits = {s: [r for r in recs if r.split == s] for s in ("train", "validation", "test")}

    def table(rs):
        emb = [torch.tensor([[len(getattr(r, side)) / 10.0, 1.0] for r in rs]) for side in ("chosen", "rejected")]
        return PolicyData(rs, tok, chosen_emb=emb[0], rejected_emb=emb[1], max_length=48)

    if sealed_test:
        prompts = {r.prompt for r in splits["test"]}
        return Prepared({**splits, "test": SealedSplit("test", prompts)}, tok, table(splits["train"]),
                        table(splits["validation"]), SealedSplit("test"))
    return Prepared(splits, tok, None, None, table(splits["test"]))


def _config(base):
    from pluralign.policies.np_dpo.evaluate import PolicyEvalConfig
    from pluralign.policies.np_dpo.experiment import (BaselineConfig, BehaviourConfig, ExperimentConfig,
                                                      ReportConfig, SelectionConfig)
    from pluralign.policies.np_dpo.policy import NPDPOConfig
    from pluralign.policies.np_dpo.train import PolicyTaskConfig
    from pluralign.train.config import TrainConfig

    return ExperimentConfig(
        policy=NPDPOConfig(base_model=str(base), z_dim=8, encoder_hidden=16, lora_rank=4),
        task=PolicyTaskConfig(beta=0.5, n_target=3, context_max=2, val_tasks=2, max_length=48),
        train=TrainConfig(max_steps=2, learning_rate=1e-3, eval_steps=1, save_steps=1, logging_steps=1,
                          metric_for_best_model="reward_accuracy", greater_is_better=True, disable_tqdm=True),
        baselines=BaselineConfig(btl_dpo_steps=1, type_dpo_steps=1),
        eval=PolicyEvalConfig(context_sizes=(0, 2), n_tasks=2, n_target=2, seed=5),
        behaviour=BehaviourConfig(k=2, users_per_type=1, n_prompts=1, max_new_tokens=3),
        selection=SelectionConfig(grid={"policy.film_gain": [1.0, 3.0]}),
        report=ReportConfig(seed=77, n_tasks=3), icl=ICLConfig(max_length=256, max_example_words=4))


@pytest.mark.slow
def test_np_dpo_select_never_reads_test_and_report_does(tmp_path, monkeypatch):
    from pluralign.policies.np_dpo.multiseed import aggregate
    from pluralign.policies.np_dpo.protocol import report, select

    tok = tiny_tokenizer()
    base = tmp_path / "tiny"
    tiny_causal_lm("llama").save_pretrained(base)
    tok.save_pretrained(base)
    config = _config(base)
    run = tmp_path / "run"
    with pytest.raises(TestSplitAccess):  # select refuses an unsealed view
        select(sealed(config), _prepared(tok, sealed_test=False), run)
    # the whole tuning path with the test split and the report section sealed: any read would raise
    doc = select(sealed(config), _prepared(tok, sealed_test=True), run)
    settings = doc["settings"]
    assert set(settings["policy.film_gain"]["candidates"]) == {"policy.film_gain=1.0", "policy.film_gain=3.0"}
    assert settings["policy.film_gain"]["split"] == "validation"
    assert settings["policy.film_gain"]["value"] == doc["chosen_overrides"]["policy.film_gain"]
    assert settings["np-dpo checkpoint"]["value"] in (1, 2) and settings["np-dpo checkpoint"]["split"] == "validation"
    assert settings["baselines"]["split"] is None  # fixed, said so
    assert "report" not in json.loads((run / "config.json").read_text())
    # a stopped select resumes: candidates already trained and scored are not scored again
    import pluralign.policies.np_dpo.protocol as np_protocol

    with monkeypatch.context() as m:
        m.setattr(np_protocol, "accuracy_vs_context", lambda *a, **k: (_ for _ in ()).throw(AssertionError("again")))
        again = select(sealed(config), _prepared(tok, sealed_test=True), run)
    assert again["settings"] == doc["settings"] and again["chosen_overrides"] == doc["chosen_overrides"]
    for d in ("np-dpo/best", "btl-dpo/best", "type-dpo-0/best", "type-dpo-1/best", "select/candidate-1/best"):
        assert (run / d / "model.safetensors").exists(), d
    # only the candidates' validation.json carried over (checkpoints lost): the scores are kept,
    # the chosen candidate alone is trained again (same seed: the same checkpoint step)
    import shutil

    for folder in [run / "np-dpo", *(run / "select").iterdir()]:
        for item in folder.iterdir():
            if item.name != "validation.json":
                shutil.rmtree(item) if item.is_dir() else item.unlink()
    with monkeypatch.context() as m:
        m.setattr(np_protocol, "accuracy_vs_context", lambda *a, **k: (_ for _ in ()).throw(AssertionError("again")))
        logs = []
        again = select(sealed(config), _prepared(tok, sealed_test=True), run, log=logs.append)
    assert again["settings"] == doc["settings"] and again["chosen_overrides"] == doc["chosen_overrides"]
    assert any("training it again" in line for line in logs)
    chosen = [d for d in (run / "select").iterdir() if (d / "best" / "model.safetensors").exists()]
    assert len(chosen) == 1 and (run / "np-dpo" / "best" / "model.safetensors").exists()
    # report: test tasks from report.seed, n_tasks of them, every model and ICL on the same targets
    res = report(config, run, prep=_prepared(tok, sealed_test=False), icl_lm=tiny_causal_lm("llama"))
    assert res["config"]["seed"] == 77 and res["config"]["n_tasks"] == 3
    assert {"np-dpo", "btl-dpo", "type-dpo (oracle)", "icl", "icl (raw likelihood)"} <= set(res["models"])
    assert res["models"]["icl"]["0"]["accuracy"] == 0.5  # no examples: ties
    assert len(res["per_task"]["np-dpo"]["0"]["2"]) == 3
    assert {r["model"] for r in res["behaviour"]["table"]} >= {"icl N^C=2", "np-dpo N^C=2"}
    # a stopped report resumes: each finished part is read back, not computed again, and the
    # results are the same; a part that is missing (or was computed under other inputs) is redone
    first = (run / "results.json").read_text()
    import pluralign.policies.np_dpo.icl as np_icl
    import pluralign.policies.np_dpo.protocol as np_protocol

    def boom(*args, **kwargs):
        raise AssertionError("computed again")

    parts = run / "report-parts"
    assert sorted(p.name for p in parts.iterdir()) == ["evaluation.json", "icl_accuracy.json", "icl_behaviour.json"]
    (parts / "icl_behaviour.json").unlink()
    monkeypatch.setattr(np_protocol, "evaluate_policies", boom)
    monkeypatch.setattr(np_icl, "icl_accuracy_vs_context", boom)
    again = report(config, run, prep=_prepared(tok, sealed_test=False), icl_lm=tiny_causal_lm("llama"))
    assert (run / "results.json").read_text() == first and again["checks"] == res["checks"]
    doc = json.loads((parts / "evaluation.json").read_text())
    (parts / "evaluation.json").write_text(json.dumps({**doc, "key": "other inputs"}))
    with pytest.raises(AssertionError, match="computed again"):
        report(config, run, prep=_prepared(tok, sealed_test=False), icl_lm=tiny_causal_lm("llama"))
    monkeypatch.undo()
    # a config changed after selection is refused
    import dataclasses

    other = dataclasses.replace(config, task=dataclasses.replace(config.task, beta=0.1))
    with pytest.raises(ValueError, match="another config"):
        report(other, run, prep=_prepared(tok, sealed_test=False), icl_lm=tiny_causal_lm("llama"))
    # carried over to another machine (scripts/keep_protocol_records.py): selection.json, the
    # candidates' validation.json and the finished report parts, no checkpoints
    res = report(config, run, prep=_prepared(tok, sealed_test=False), icl_lm=tiny_causal_lm("llama"))
    for folder in [run / "np-dpo", run / "btl-dpo", *run.glob("type-dpo-*"), *(run / "select").iterdir()]:
        for item in folder.iterdir():
            if item.name != "validation.json":
                shutil.rmtree(item) if item.is_dir() else item.unlink()
    (parts / "icl_behaviour.json").unlink()
    with monkeypatch.context() as m:  # only an ICL part left: nothing is trained again
        m.setattr(np_protocol, "train_method", boom)
        again = report(config, run, prep=_prepared(tok, sealed_test=False), icl_lm=tiny_causal_lm("llama"))
    assert again["models"] == res["models"] and again["behaviour"] == res["behaviour"]
    (parts / "evaluation.json").unlink()  # the evaluation part too: the policies are trained again
    logs = []
    again = report(config, run, prep=_prepared(tok, sealed_test=False), icl_lm=tiny_causal_lm("llama"),
                   tuning_prep=_prepared(tok, sealed_test=True), log=logs.append)
    assert any("np-dpo, btl-dpo, type-dpo: checkpoints missing" in line for line in logs)
    assert again["models"] == res["models"]  # same config and seed: the same policies
    assert np_protocol.missing_policies(config, run) == []
    # two "seeds" (the same run twice) aggregate into tables with every model and the targets
    from pluralign.policies.np_dpo.multiseed import report_finished

    assert report_finished(run)
    partial = tmp_path / "partial"  # what the evaluation part leaves before the ICL parts
    partial.mkdir()
    (partial / "results.json").write_text(json.dumps({k: v for k, v in res.items() if k != "report"}))
    assert not report_finished(partial) and not report_finished(tmp_path / "nothing")
    with pytest.raises(ValueError, match="has not finished"):
        aggregate([run, partial], tmp_path / "agg")
    agg = aggregate([run, run], tmp_path / "agg")
    acc = {(r["model"], r["type_name"], r["n_context"]): r for r in agg["tables"]["accuracy"]}
    assert acc[("icl", "concise", 0)]["mean"] == 50.0 and acc[("icl", "concise", 0)]["t_half_width"] == 0.0
    assert any(r["quantity"].startswith("np-dpo - icl") for r in agg["tables"]["targets"])
    assert (tmp_path / "agg" / "table.md").is_file()


# --- CMPO select / report / seeds on a tiny model --------------------------------------------------

@pytest.mark.slow
def test_cmpo_protocol_seeds_baselines_and_icl(tmp_path, monkeypatch):
    import dataclasses

    from typer.testing import CliRunner

    from pluralign.cli import app
    from pluralign.commands.cmpo import load_rated
    from pluralign.data.io import write_records
    from pluralign.data.records import PreferenceRecord
    from pluralign.policies.cmpo.experiment import CMPOExperimentConfig
    from pluralign.policies.cmpo.multiseed import run_seeds
    from pluralign.policies.cmpo.protocol import (CMPOProtocolConfig, CMPOReportConfig, CMPOSelectionConfig,
                                                  report, select)

    base = tmp_path / "tiny"
    tiny_causal_lm().save_pretrained(base)
    tok = tiny_tokenizer()
    tok.save_pretrained(base)
    recs = []
    for i in range(16):
        for a, b, sa, sb in [("ok", "okay then fine", [1, 0], [0, 1]), ("YES", "yes", [0.5, 1], [0.4, 0]),
                             ("NO WAY THEN", "no", [0, 1], [1, 0.2])]:
            recs.append(PreferenceRecord(f"u{i}", f"question {i}", a, b,
                                         attributes={"short": [sa[0], sb[0]], "loud": [sa[1], sb[1]]}))
    write_records(recs, tmp_path / "data.jsonl")
    splits, _ = load_rated(str(tmp_path / "data.jsonl"), ["short", "loud"])
    exp = CMPOExperimentConfig(attributes=["short", "loud"], base_model=str(base), lora=False, head_rank=2,
                               cmpo_steps=4, baseline_steps=2, max_length=40, learning_rate=1e-2, beta=0.05)
    cfg = CMPOProtocolConfig(
        experiment=exp, icl=ICLConfig(k=2, max_length=200, max_example_words=3),
        selection=CMPOSelectionConfig(interpolate=["short", "loud"], repetition_penalty=[1.0, 1.3], n_prompts=2,
                                      max_new_tokens=4, fewshot_features=["sum", "sum+mean"],
                                      fewshot_pair_symmetry=["none"], fewshot_steps=[3], fewshot_users=4, n_context=2),
        report=CMPOReportConfig(seed=99, n_pairs=6, n_prompts=2, fewshot_users=4, fewshot_draws=1, contexts=[1, 2]))
    scorers = {"length": lambda t: float(len(t.split()))}

    def splits_for(seal):
        return {**splits, "test": SealedSplit("test")} if seal else splits

    with pytest.raises(TestSplitAccess):
        select(sealed(cfg), splits, tok, scorers, tmp_path / "bad")
    run_seeds(cfg, [1], splits_for, tok, scorers, tmp_path / "seeds")
    sel = json.loads((tmp_path / "seeds" / "seed-1" / "selection.json").read_text())["settings"]
    assert set(sel["repetition_penalty"]["candidates"]) == {"1.0", "1.3"}
    assert set(sel["fewshot_features"]["candidates"]) == {"sum/none/3", "sum+mean/none/3"}
    assert sel["fewshot_features"]["split"] == "validation" and sel["baselines"]["value"]["beta"] == 0.05
    rep = json.loads((tmp_path / "seeds" / "seed-1" / "report.json").read_text())
    # the baselines ran at the reported beta in the same experiment and table, ICL beside them
    assert set(rep["accuracy"]["short"]) == {"cmpo", "base", "sft", "dpo", "steerlm", "icl"}
    assert rep["accuracy"]["short"]["icl"]["k"] == 2 and set(rep["icl_steering"]) == {"short", "loud"}
    assert [r["n_context"] for r in rep["fewshot"]] == [1, 2] and rep["report"]["seed"] == 99
    from pluralign.policies.cmpo.multiseed import aggregate

    res = aggregate([tmp_path / "seeds" / "seed-1"] * 2, tmp_path / "agg0")  # as if two seeds
    models = {(r["attribute"], r["model"], r["measure"]) for r in res["tables"]["accuracy"]}
    assert ("loud", "dpo", "implicit reward") in models and ("loud", "icl", "eq. 5.1") in models
    assert all(r["seeds"] == 2 for r in res["tables"]["accuracy"] + res["tables"]["fewshot"])
    rec = [r for r in res["tables"]["fewshot"] if r["quantity"] == "recovered" and r["n_context"] == 2][0]
    assert rec["mean"] == pytest.approx(100 * rep["fewshot"][1]["recovered"])
    assert any(r["quantity"].startswith("cmpo - icl") for r in res["tables"]["targets"])
    other = dataclasses.replace(cfg, experiment=dataclasses.replace(exp, beta=0.5))
    with pytest.raises(ValueError, match="another config"):
        report(other, splits, tok, scorers, tmp_path / "seeds" / "seed-1")
    # a stopped report resumes from its finished parts (report_parts.py) and writes the same report
    import pluralign.policies.cmpo.icl as cmpo_icl
    import pluralign.policies.cmpo.report as cmpo_report

    def boom(*args, **kwargs):
        raise AssertionError("computed again")

    run = tmp_path / "seeds" / "seed-1"
    first = (run / "report.json").read_text()
    assert sorted(p.name for p in (run / "report-parts").iterdir()) == [
        "evaluation.json", "fewshot.json", "icl_accuracy.json", "icl_steering.json"]
    for module, name in ((cmpo_report, "run_evaluation"), (cmpo_report, "fewshot_tables"),
                         (cmpo_icl, "icl_accuracy"), (cmpo_icl, "icl_steering")):
        monkeypatch.setattr(module, name, boom)
    from pluralign.policies.cmpo.multiseed import for_seed

    report(for_seed(cfg, 1), splits, tok, scorers, run)
    assert (run / "report.json").read_text() == first
    monkeypatch.undo()
    # selection.json, the chosen few-shot encoder and the report parts carried over without the
    # stages' weights: report trains them again (same seed) and scores them as the first time
    import shutil

    from pluralign.policies.cmpo.experiment import missing_stages

    for name in ("cmpo", "sft", "steerlm", "dpo_short", "dpo_loud"):
        shutil.rmtree(run / name)
    (run / "trunk_cache.pt").unlink()
    (run / "report-parts" / "evaluation.json").unlink()
    assert missing_stages(exp, run) == ["cmpo", "sft", "steerlm", "dpo_short", "dpo_loud"]
    logs = []
    again = report(for_seed(cfg, 1), splits, tok, scorers, run, log=logs.append)
    assert missing_stages(exp, run) == [] and any("training them again" in line for line in logs)
    assert again["accuracy"] == json.loads(first)["accuracy"]
    # with every part that scores the stages finished, a report without their weights trains nothing
    shutil.rmtree(run / "cmpo")
    report(for_seed(cfg, 1), splits, tok, scorers, run)
    assert missing_stages(exp, run) == ["cmpo"]
    out = CliRunner().invoke(app, ["cmpo", "aggregate", str(tmp_path / "seeds" / "seed-1"),
                                   str(tmp_path / "seeds" / "seed-1"), "--out", str(tmp_path / "agg")])
    assert out.exit_code == 0, out.output
    assert "| short | icl | eq. 5.1 |" in out.output


def test_cli_report_needs_a_selection_and_aggregate_needs_results(tmp_path):
    from typer.testing import CliRunner

    from pluralign.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["policy", "report", "--run", str(tmp_path)])
    assert res.exit_code == 1 and "selection.json" in res.output and "select step" in res.output
    res = runner.invoke(app, ["policy", "aggregate", str(tmp_path), "--out", str(tmp_path / "t")])
    assert res.exit_code == 1 and "results.json" in res.output
    res = runner.invoke(app, ["policy", "seeds", "--out", str(tmp_path), "--seeds", "a,b"])
    assert res.exit_code == 1 and "--seeds" in res.output
    res = runner.invoke(app, ["cmpo", "aggregate", str(tmp_path), "--out", str(tmp_path / "t")])
    assert res.exit_code == 1 and "report.json" in res.output


def test_report_parts_keep_reuse_and_redo(tmp_path):
    from pluralign.policies.report_parts import ReportParts, lazy

    def boom():
        raise AssertionError("computed again")

    quiet = {"log": lambda s: None}
    assert ReportParts(tmp_path, "cfg", {"seed": 1}, **quiet).get("x", lambda: {"v": (1, 2)}) == {"v": [1, 2]}
    assert ReportParts(tmp_path, "cfg", {"seed": 1}, **quiet).get("x", boom) == {"v": [1, 2]}  # kept
    assert ReportParts(tmp_path, "cfg", {"seed": 2}, **quiet).get("x", lambda: 3) == 3  # other inputs: redone
    (tmp_path / "report-parts" / "x.json").write_text('{"key": "tru')  # a torn file: redone
    assert ReportParts(tmp_path, "cfg", {"seed": 2}, **quiet).get("x", lambda: 4) == 4
    loads = []
    get = lazy(lambda: loads.append(1) or "model")
    assert get() == get() == "model" and loads == [1]
    assert lazy(boom, "given")() == "given"


def test_a_resumed_seed_keeps_a_finished_select_of_the_same_config(tmp_path, monkeypatch):
    # a stopped multi-seed run restarts each unfinished seed; one whose select is done (its
    # selection.json, written last, carries this config's digest) must go straight to report
    import pluralign.policies.np_dpo.protocol as P
    from pluralign.policies.np_dpo.experiment import run_experiment

    config = _config(tmp_path / "no-model-needed")
    run = tmp_path / "run"
    run.mkdir()
    calls = []
    monkeypatch.setattr(P, "tuning_view", lambda c: None)
    monkeypatch.setattr(P, "select", lambda *a, **k: calls.append("select"))
    doc = {"checks": {}, "task": "t", "context_sizes": [0], "bayes": None, "models": {}}
    monkeypatch.setattr(P, "report", lambda c, r, log: calls.append("report") or dict(doc))
    (run / "selection.json").write_text(json.dumps({"settings": {}, "config_digest": P.config_digest(sealed(config))}))
    logs = []
    run_experiment(config, run, log=logs.append)
    assert calls == ["report"] and logs[0].startswith("select: kept")
    assert json.loads((run / "results.json").read_text())["timing_s"]["select"] < 1
    # another config (another digest) selects again
    (run / "selection.json").write_text(json.dumps({"settings": {}, "config_digest": "another"}))
    calls.clear()
    run_experiment(config, run, log=logs.append)
    assert calls == ["select", "report"]
