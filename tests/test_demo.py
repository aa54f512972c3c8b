"""``pluralign demo`` and ``pluralign bench text`` through the CLI at toy size (tiny random encoder,
tiny Pets), and the showcase: two held-out users of different types, the same candidates ranked
for each, the rankings' agreement with each user's true preference."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pluralign.cli import app
from pluralign.commands import demo as demo_cmd
from pluralign.eval import text_bench
from pluralign.eval.showcase import _true_order_agreement, format_showcase, run_showcase
from pluralign.eval.text_bench import TextBenchConfig, run_text_bench

from test_text_bench import TINY, tiny_encoder_dir

runner = CliRunner()


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return tiny_encoder_dir(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PLURALIGN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_true_order_agreement():
    attrs = [{"length": 10}, {"length": 50}, {"length": 90}]
    assert _true_order_agreement(np.array([3.0, 2.0, 1.0]), attrs, "length", -1) == 1.0
    assert _true_order_agreement(np.array([3.0, 2.0, 1.0]), attrs, "length", +1) == 0.0
    assert _true_order_agreement(np.array([1.0, 3.0, 2.0]), attrs, "length", +1) == pytest.approx(2 / 3)
    assert _true_order_agreement(np.array([1.0, 2.0]), [{"x": 1}, {}], "x", 1) is None
    # pairs within the tie margin are not counted: only 10 vs 90 remains (ordered right)
    assert _true_order_agreement(np.array([1.0, 3.0, 2.0]), attrs, "length", +1, margin=40) == 1.0


def test_showcase_needs_heldout_users(tmp_path, encoder, cache):
    cfg = TextBenchConfig(**TINY, encoder=encoder, models=("np-btl",), oracle=False, max_steps=2, max_length=64)
    bench = run_text_bench(cfg, tmp_path / "out", log=lambda m: None)
    with pytest.raises(ValueError, match="held-out users"):
        run_showcase(bench)
    with pytest.raises(ValueError, match="was not trained"):
        run_showcase(bench, "vpl")


@pytest.mark.slow
def test_demo_command_ranks_candidates_per_user(tmp_path, encoder, cache, monkeypatch):
    small = {k: v for k, v in TINY.items() if k not in ("data", "progress")}
    monkeypatch.setattr(demo_cmd, "DEMO_SETTINGS", {**demo_cmd.DEMO_SETTINGS, **small, "project_dim": 8,
                                                    "max_steps": 3, "n_eval_tasks": 20, "max_length": 64})
    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "--out", str(out), "--data", "pets-divergent", "--encoder", encoder])
    assert res.exit_code == 0, res.output
    show = json.loads((out / "demo.json").read_text())
    assert [u["true_type"] for u in show["users"]] == ["dog-group", "cat-group"]
    assert all(len(u["choices"]) == 3 for u in show["users"])
    assert all(u["user_id"].endswith("-000") for u in show["users"])  # held out of training
    k = len(show["candidates"])
    assert k == 5
    for u in show["users"] + [show["btl"]]:
        assert sorted(u["ranking"]) == list(range(1, k + 1)) and len(u["rewards"]) == k
        # the ranking is the rewards sorted, best first
        assert [u["rewards"][i - 1] for i in u["ranking"]] == sorted(u["rewards"], reverse=True)
    for u in show["users"]:
        assert u["rule"] == [u["true_type"], 1, 0.0]
        assert 0.0 <= u["agreement_with_true_preference"] <= 1.0
    text = (out / "demo.txt").read_text()
    assert "User A (dog-group-000" in text and "User B (cat-group-000" in text and "Ranking by np-btl" in text
    assert text.strip() == format_showcase(show).strip()
    assert "Ranking by np-btl" in res.output
    for f in ("results.json", "results.csv", "accuracy.png", "latents.png"):
        assert (out / f).is_file()


@pytest.mark.slow
def test_bench_text_cli_reuses_the_cache(tmp_path, encoder, cache, monkeypatch):
    # the CLI's defaults at toy size: patch the config's defaults the command builds on
    fields = {k: v for k, v in TINY.items() if k not in ("data",)}
    monkeypatch.setattr(text_bench, "TextBenchConfig",
                        lambda **kw: TextBenchConfig(**{**fields, **kw, "max_length": 64}))
    args = ["bench", "text", "--data", "pets-divergent", "--encoder", encoder, "--steps", "2",
            "--model", "btl", "--no-oracle"]
    first = runner.invoke(app, args + ["--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, args + ["--out", str(tmp_path / "b")])
    assert second.exit_code == 0, second.output
    a = json.loads((tmp_path / "a" / "results.json").read_text())["embedding"]
    b = json.loads((tmp_path / "b" / "results.json").read_text())["embedding"]
    assert a["texts_computed"] > 0 and b["texts_computed"] == 0 and b["model_calls"] == 0
    assert "0 texts computed, 0 model calls" in second.output


def test_bench_text_cli_errors(tmp_path):
    res = runner.invoke(app, ["bench", "text", "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)])
    assert res.exit_code != 0 and "neither a built-in set" in res.output
    res = runner.invoke(app, ["bench", "text", "--model", "gpt", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "unknown model" in res.output


def test_candidates_exclude_the_users_choices():
    from pluralign.data.records import PreferenceRecord
    from pluralign.eval.showcase import pick_candidates

    recs = [PreferenceRecord(user_id="u", prompt="p", chosen=f"a{i}", rejected=f"b{i}", split="test",
                             attributes={"length": [i, i + 10]}) for i in range(4)]
    recs.append(PreferenceRecord(user_id="u", prompt="q", chosen="x", rejected="y", split="test"))
    prompt, cands, attrs = pick_candidates(recs, set(), 5, np.random.default_rng(0), frozenset({"a0", "b0"}))
    assert prompt == "p" and len(cands) == 5 and not {"a0", "b0"} & set(cands)
    assert attrs["b2"] == {"length": 12}
    prompt, _, _ = pick_candidates(recs, {"p"}, 5, np.random.default_rng(0))
    assert prompt == "q"  # prompts the users chose on are avoided when others exist
