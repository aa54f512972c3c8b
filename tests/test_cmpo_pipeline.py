"""CMPO training/evaluation pieces on a tiny random LM: cDPO steps, trunk caching, the CLI end to end."""

import json

import numpy as np
import pytest
import torch

from pluralign.data.cmpo_weights import ConditionedPair
from pluralign.data.io import write_records
from pluralign.data.records import PreferenceRecord
from pluralign.policies.cmpo.fewshot import (FewShotConfig, FewShotWeights, fewshot_step, head_rewards, head_vote,
                                             option_features, recovery, simulate_users)
from pluralign.policies.cmpo.train import (CMPOObjective, TrunkCache, build_pair_table, make_pair_steps,
                                           make_sft_steps, rows_logprobs, steerlm_prompt, table_metrics)
from pluralign.policies.logprobs import tokenize_pair
from pluralign.policies.cmpo.plural_heads import PluralConfig, PluralLM
from pluralign.policies.tiny import tiny_causal_lm, tiny_tokenizer

ATTRS = ["short", "loud"]


def pairs():
    out = []
    for i in range(6):
        out.append(ConditionedPair(f"q{i}", "ok", "okay then, fine", (1.0, 0.0), ("short",), i))
        out.append(ConditionedPair(f"q{i}", "YES!", "yes", (0.0, 1.0), ("loud",), i))
    return out


@pytest.mark.parametrize("lora,head_rank", [(True, None), (False, 4)])
def test_cdpo_steps_fit_the_pairs_and_move_only_trainable_parts(lora, head_rank):
    tok = tiny_tokenizer()
    model = PluralLM(tiny_causal_lm(), PluralConfig(attributes=ATTRS, lora=lora, head_rank=head_rank))
    objective = CMPOObjective(batch_size=6, max_length=40)
    table = build_pair_table(model, tok, pairs(), max_length=40, progress=False)
    assert (table.cache is None) == lora
    before = table_metrics(model, table, objective)
    assert before["loss"] == pytest.approx(-0.9 * np.log(0.5) - 0.1 * np.log(0.5), rel=1e-4)  # r = 0 at init
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    step_fn, batch_fn = make_pair_steps(table, objective)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(25):
        loss, _ = step_fn(model, batch_fn(step, 0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = table_metrics(model, table, objective)
    assert after["loss"] < before["loss"] - 0.05
    assert after["reward_accuracy"] > 0.8
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    # the batch drawn for (step, stream) is reproducible
    assert torch.equal(batch_fn(3, 1)["weights"], batch_fn(3, 1)["weights"])


def test_cached_rows_give_the_same_logprobs_as_the_trunk():
    tok = tiny_tokenizer()
    model = PluralLM(tiny_causal_lm(), PluralConfig(attributes=ATTRS, lora=False, head_rank=2))
    with torch.no_grad():
        model.head_u.normal_()
    seqs = [tokenize_pair(tok, p.prompt, p.chosen, max_length=40) for p in pairs()]
    cache = TrunkCache()
    rows = cache.rows(model, seqs, tok.pad_token_id, progress=False)
    assert len(cache.entries) == 12
    from pluralign.policies.logprobs import collate_tokenized
    batch = collate_tokenized(seqs, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        torch.testing.assert_close(rows_logprobs(model, rows, [0.3, 0.7]), model.logprobs(batch, [0.3, 0.7]),
                                   rtol=1e-5, atol=1e-4)


def test_cached_table_reference_with_shared_responses():
    """Responses shared by several pairs get their reference once; the table's reference of every
    pair is still the base model's log-prob of that very sequence."""
    tok = tiny_tokenizer()
    model = PluralLM(tiny_causal_lm(), PluralConfig(attributes=ATTRS, lora=False, head_rank=2))
    shared = [ConditionedPair("q", a, b, (1.0, 0.0), ("short",), 0)
              for a, b in (("ok", "fine"), ("ok", "yes"), ("fine", "yes"), ("yes", "ok"))]
    table = build_pair_table(model, tok, shared, max_length=40, progress=False)
    from pluralign.policies.logprobs import collate_tokenized
    for side, ref in (("chosen", table.reference_chosen), ("rejected", table.reference_rejected)):
        batch = collate_tokenized(getattr(table, side), pad_token_id=tok.pad_token_id)
        torch.testing.assert_close(ref, model.reference_logprobs(batch), rtol=1e-5, atol=1e-4)
    assert not torch.allclose(table.reference_chosen[:1], table.reference_chosen[2:3])


def test_sft_step_is_mean_token_nll():
    tok = tiny_tokenizer()
    model = PluralLM(tiny_causal_lm(), PluralConfig(attributes=["all"], train_heads=False))
    seqs = [tokenize_pair(tok, "q", "abc", max_length=20)] * 2
    step_fn, batch_fn = make_sft_steps(seqs, tok.pad_token_id, batch_size=2)
    loss, _ = step_fn(model, batch_fn(0, 0))
    lp = model.reference_logprobs(batch_fn(0, 0))
    assert float(loss) == pytest.approx(float(-lp.sum() / (2 * 4)), rel=1e-5)  # 3 bytes + EOS each
    assert steerlm_prompt("hi", {"a": 4, "b": 0}) == "hi\n\nAttributes: a:4,b:0"


@pytest.mark.parametrize("symmetry,features", [("none", "sum"), ("antisymmetric", "sum"),
                                               ("antisymmetric", "sum+mean")])
def test_fewshot_encoder_learns_to_recover_the_attribute(symmetry, features):
    rng = np.random.default_rng(0)
    p, k = 300, 3
    scores_a, scores_b = rng.normal(size=(p, k)), rng.normal(size=(p, k))
    # per-head rewards that track the attributes (a well-trained CMPO model), responses of 5-40 tokens
    fa, fb = (option_features(torch.tensor(s + 0.3 * rng.normal(size=(p, k)), dtype=torch.float32),
                              torch.as_tensor(rng.integers(5, 40, size=p)), features) for s in (scores_a, scores_b))
    train = simulate_users(fa, fb, scores_a, scores_b, n_users=90, pairs_per_user=15, seed=1)
    test = simulate_users(fa, fb, scores_a, scores_b, n_users=30, pairs_per_user=15, seed=2)
    enc = FewShotWeights(FewShotConfig(k=k, hidden=32, pair_symmetry=symmetry, features=features))
    enc.fit_scale(torch.cat([train.chosen, train.rejected]))
    sampler = train.sampler(context_range=(0, 5), n_target=10, seed=0)
    from pluralign.data.tasks import collate
    opt = torch.optim.Adam(enc.parameters(), lr=3e-3)
    before = recovery(enc, test, n_context=5)["recovered"]
    for step in range(150):
        loss, _ = fewshot_step(enc, collate(sampler.sample(32, step), train.chosen, train.rejected))
        opt.zero_grad()
        loss.backward()
        opt.step()
    res = recovery(enc, test, n_context=5)
    assert res["recovered"] >= 0.8 and res["recovered"] > before
    many = recovery(enc, test, n_context=5, draws=4)
    assert many["draws"] == 4 and many["users"] == 30 and many["recovered"] >= 0.75
    assert res["head_vote_recovered"] >= 0.8
    lam = enc.weights(test.chosen[:4][None], test.rejected[:4][None], torch.ones(1, 4, dtype=torch.bool))
    assert torch.allclose(lam.sum(-1), torch.ones(1)) and (lam >= 0).all()
    assert int(head_vote(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))) == 0
    if symmetry == "antisymmetric":  # swapping chosen and rejected negates the pair evidence
        a, b = test.chosen[:3][None], test.rejected[:3][None]
        mask = torch.ones(1, 3, dtype=torch.bool)
        torch.testing.assert_close(enc.encoder.pooled(a / enc.scale, b / enc.scale, mask),
                                   -enc.encoder.pooled(b / enc.scale, a / enc.scale, mask))
    with pytest.raises(ValueError, match="pair_symmetry"):
        FewShotConfig(k=k, pair_symmetry="flip")


def test_option_features_views_and_their_choice_logits(tmp_path):
    rewards = torch.tensor([[2.0, -4.0], [1.0, 3.0]])
    n = torch.tensor([4, 1])
    torch.testing.assert_close(option_features(rewards, n, "sum"), rewards)
    both = option_features(rewards, n, "sum+mean")
    torch.testing.assert_close(both, torch.tensor([[2.0, -4.0, 0.5, -1.0], [1.0, 3.0, 1.0, 3.0]]))
    with pytest.raises(ValueError, match="features"):
        option_features(rewards, n, "max")
    with pytest.raises(ValueError, match="at least one token"):
        option_features(rewards, torch.tensor([4, 0]), "sum+mean")
    with pytest.raises(ValueError, match=r"\(N, k\)"):
        option_features(rewards, torch.tensor([4]), "sum")
    with pytest.raises(ValueError, match="features"):
        FewShotConfig(features="mean")
    # logit = sum over views of tau_v * sum_j lambda_j (r_vj(c) - r_vj(r)), features divided by scale
    enc = FewShotWeights(FewShotConfig(k=2, features="sum+mean"))
    with torch.no_grad():
        enc.log_temperature.copy_(torch.tensor([2.0, 0.5]).log())
        enc.scale.copy_(torch.tensor([1.0, 2.0, 1.0, 4.0]))
    lam = torch.tensor([[0.25, 0.75]])
    logit = enc.choice_logits(lam, both[:1][None], both[1:][None])
    diff = (both[0] - both[1]) / enc.scale
    expected = 2.0 * (0.25 * diff[0] + 0.75 * diff[1]) + 0.5 * (0.25 * diff[2] + 0.75 * diff[3])
    torch.testing.assert_close(logit, expected.reshape(1, 1))
    enc.save_pretrained(tmp_path / "fs")
    again = FewShotWeights.from_pretrained(tmp_path / "fs")
    assert again.config.features == "sum+mean"
    torch.testing.assert_close(again.choice_logits(lam, both[:1][None], both[1:][None]), logit)
    # a checkpoint from before feature views (one scalar temperature) still loads
    old = FewShotWeights(FewShotConfig(k=2))
    state = {name: t.clone() for name, t in old.state_dict().items()}
    state["log_temperature"] = torch.tensor(0.3)
    from dataclasses import asdict

    from pluralign.checkpoint import save_state
    raw = asdict(old.config)
    del raw["features"]
    save_state(tmp_path / "old", state, {"kind": "cmpo-fewshot-weights", "fewshot": raw})
    loaded = FewShotWeights.from_pretrained(tmp_path / "old")
    assert loaded.config.features == "sum" and float(loaded.log_temperature.detach()[0]) == pytest.approx(0.3)


def test_head_rewards_views_on_a_tiny_model():
    tok = tiny_tokenizer()
    model = PluralLM(tiny_causal_lm(), PluralConfig(attributes=ATTRS, head_rank=2))
    with torch.no_grad():
        model.head_u.normal_(0, 0.1)  # move the heads away from the reference
    prompts, responses = ["q1", "q2"], ["ok", "okay then, fine"]
    summed = head_rewards(model, tok, prompts, responses, beta=0.5, max_length=40, progress=False)
    both = head_rewards(model, tok, prompts, responses, beta=0.5, max_length=40, features="sum+mean",
                        progress=False)
    assert summed.shape == (2, 2) and both.shape == (2, 4) and summed.abs().min() > 0
    n = torch.tensor([len(tokenize_pair(tok, p, r, max_length=40)[1]) for p, r in zip(prompts, responses)])
    torch.testing.assert_close(both, torch.cat([summed, summed / n[:, None]], 1))


@pytest.mark.slow
def test_cli_train_and_eval_end_to_end(tmp_path):
    from typer.testing import CliRunner

    from pluralign.cli import app

    base = tmp_path / "tiny"
    tiny_causal_lm().save_pretrained(base)
    tiny_tokenizer().save_pretrained(base)
    recs = []
    for i in range(16):
        for j, (a, b, sa, sb) in enumerate([("ok", "okay then fine", [1, 0], [0, 1]),
                                            ("YES", "yes", [0.5, 1], [0.4, 0]),
                                            ("NO WAY THEN", "no", [0, 1], [1, 0.2])]):
            recs.append(PreferenceRecord(f"u{i}", f"question {i}", a, b,
                                         attributes={"short": [sa[0], sb[0]], "loud": [sa[1], sb[1]]}))
    write_records(recs, tmp_path / "data.jsonl")
    run = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(app, ["cmpo", "train", "--out", str(run), "--data", str(tmp_path / "data.jsonl"),
                              "--attributes", "short,loud", "--base-model", str(base), "--no-lora",
                              "--head-rank", "2", "--steps", "4", "--baseline-steps", "2", "--max-length", "40",
                              "--learning-rate", "1e-2"])
    assert res.exit_code == 0, res.output
    for stage in ("cmpo", "sft", "dpo_short", "dpo_loud", "steerlm"):
        assert (run / stage / "model" / "model.safetensors").is_file(), stage
    res = runner.invoke(app, ["cmpo", "eval", "--out", str(run), "--interpolate", "short:loud", "--n-prompts", "2",
                              "--max-new-tokens", "4", "--fewshot-steps", "3", "--fewshot-users", "4",
                              "--fewshot-features", "sum+mean"])
    assert res.exit_code == 0, res.output
    result = json.loads((run / "eval.json").read_text())
    assert set(result["accuracy"]["short"]) == {"cmpo", "base", "sft", "dpo", "steerlm"}
    assert len(result["interpolation"]["short->loud"]["rows"]) == 5
    fewshot = json.loads((run / "fewshot.json").read_text())
    assert fewshot["rows"][0]["n_context"] == 1 and fewshot["features"] == "sum+mean"
    res = runner.invoke(app, ["cmpo", "eval", "--out", str(run), "--fewshot-features", "max"])
    assert res.exit_code == 2 and "features" in res.output
    # the few-shot part alone, another seed: eval.json is left as it was
    before = (run / "eval.json").read_text()
    res = runner.invoke(app, ["cmpo", "eval", "--out", str(run), "--no-accuracy", "--fewshot-steps", "3",
                              "--fewshot-users", "4", "--fewshot-seed", "1"])
    assert res.exit_code == 0, res.output
    assert "eq5.1" not in res.output and "few-shot lambda, 5 choices" in res.output
    assert (run / "eval.json").read_text() == before
    # the same seed again, after other work consumed the global RNG: the same result
    first = json.loads((run / "fewshot.json").read_text())["rows"]
    torch.rand(100)
    res = runner.invoke(app, ["cmpo", "eval", "--out", str(run), "--no-accuracy", "--fewshot-steps", "3",
                              "--fewshot-users", "4", "--fewshot-seed", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads((run / "fewshot.json").read_text())["rows"] == first
    res = runner.invoke(app, ["generate", "--policy", str(run / "cmpo" / "model"), "--weights", "short=0.7,loud=0.3",
                              "--prompt", "hello", "--max-new-tokens", "4"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["generate", "--policy", str(run / "cmpo" / "model"), "--weights", "funny=1",
                              "--prompt", "hello"])
    assert res.exit_code == 1 and "unknown attribute" in res.output


def test_parse_weights():
    from pluralign.commands.generate import parse_weights

    assert parse_weights("helpfulness=0.7, verbosity=0.3") == {"helpfulness": 0.7, "verbosity": 0.3}
    for bad in ("helpfulness", "a=x", "=1", ""):
        with pytest.raises(ValueError):
            parse_weights(bad)
