"""`pluralign train` / `pluralign eval` end to end on a small synthetic file."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pluralign.cli import app
from pluralign.data.io import write_records
from pluralign.data.records import PreferenceRecord
from pluralign.data.synthetic import example43
from pluralign.eval.results import read_json

runner = CliRunner()

CONFIG = """\
model:
  hidden_dim: 32
  embed_dim: 16
  z_dim: 16
tasks:
  n_tasks: 16
  val_tasks: 32
  context_max: 5
train:
  learning_rate: 3.0e-3
  eval_steps: 20
  save_steps: 20
  logging_steps: 10
  disable_tqdm: true
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    records, _ = example43(n_pairs=600, rho=0.0, seed=1, split=None)  # no split: a seeded one is made
    write_records(records, root / "data.jsonl")
    (root / "config.yaml").write_text(CONFIG)
    (root / "btl.yaml").write_text(CONFIG.replace("  embed_dim: 16\n  z_dim: 16\n", ""))
    return root


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


@pytest.mark.slow
def test_train_resume_and_eval(files):
    run = files / "np"
    res = invoke("train", "--data", files / "data.jsonl", "--model", "np-btl", "--out", run,
                 "--config", files / "config.yaml", "--steps", "40", "--seed", "3")
    assert res.exit_code == 0, res.output
    assert "trained np-btl for 40 steps" in res.output
    meta = json.loads((run / "run.json").read_text())
    assert meta["model"] == "np-btl" and meta["config"]["train"]["max_steps"] == 40
    assert meta["config"]["split_seed"] == 3 and meta["config"]["train"]["learning_rate"] == 3e-3
    assert meta["model_config"]["option_dim"] == 2 and meta["model_config"]["hidden_dim"] == 32
    assert set(meta["split_sizes"]) == {"train", "validation", "test"}
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    train_loss = [r["loss"] for r in log if r["event"] == "train"]
    assert len(train_loss) == 4 and train_loss[-1] < train_loss[0]
    assert (run / "best" / "model.safetensors").is_file()

    # more steps on the same folder: continues from last/ (step 40)
    res = invoke("train", "--data", files / "data.jsonl", "--model", "np-btl", "--out", run,
                 "--config", files / "config.yaml", "--steps", "50", "--seed", "3")
    assert res.exit_code == 0, res.output
    assert "resumed from step 40" in res.output and "for 50 steps" in res.output

    res = invoke("train", "--data", files / "data.jsonl", "--model", "btl", "--out", files / "btl",
                 "--config", files / "btl.yaml", "--steps", "20", "--seed", "3")
    assert res.exit_code == 0, res.output

    out = files / "eval" / "example-4.3.json"  # a dot in the stem
    res = invoke("eval", run, files / "btl", "--data", files / "data.jsonl", "--context-sizes", "0,1,5",
                 "--n-tasks", "40", "--out", out)
    assert res.exit_code == 0, res.output
    doc = read_json(out)
    assert doc["context_sizes"] == [0, 1, 5] and set(doc["models"]) == {"np-btl", "btl"}
    assert doc["task"] == "data" and doc["split"] == "test"
    for name in ("np-btl", "btl"):
        for n in ("0", "1", "5"):
            s = doc["models"][name][n]
            assert s["n"] == 40 and 0.0 <= s["accuracy"] <= 1.0
    assert doc["bayes"]["5"] > doc["bayes"]["0"]  # simulated types: the Bayes line is there
    assert doc["flip_test"]["btl"]["5"]["unchanged"] == 1.0  # BTL ignores its context
    assert (files / "eval" / "example-4.3.csv").is_file() and (files / "eval" / "example-4.3.png").is_file()
    assert "bayes-optimal" in res.output


def test_bad_inputs_are_named(files, tmp_path):
    res = invoke("train", "--data", files / "data.jsonl", "--model", "gpt", "--out", tmp_path / "x")
    assert res.exit_code == 1 and "--model must be one of" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  max_step: 3\n")
    res = invoke("train", "--data", files / "data.jsonl", "--model", "btl", "--out", tmp_path / "x",
                 "--config", bad)
    assert res.exit_code == 1 and "max_step" in res.output and "bad.yaml" in res.output
    bad.write_text("model:\n  hidden_dim: 'None'\n")
    res = invoke("train", "--data", files / "data.jsonl", "--model", "btl", "--out", tmp_path / "x",
                 "--config", bad)
    assert res.exit_code == 1 and "hidden_dim" in res.output
    text = tmp_path / "text.jsonl"
    write_records([PreferenceRecord(user_id=f"u{i % 2}", prompt=f"p{i}", chosen="a", rejected="b")
                   for i in range(40)], text)
    # text is embedded now, but 20 pairs a user cannot fill a task (checked before any model loads)
    res = invoke("train", "--data", text, "--model", "btl", "--out", tmp_path / "x")
    assert res.exit_code == 1 and "no user has the 20 train pairs" in res.output
    assert not (tmp_path / "x").exists()
    res = invoke("eval", tmp_path / "nothing", "--data", files / "data.jsonl")
    assert res.exit_code == 1 and "no such folder" in res.output
    res = invoke("eval", tmp_path, "--data", files / "data.jsonl")
    assert res.exit_code == 1 and "run.json" in res.output
    res = invoke("eval", tmp_path / "nothing", "--data", files / "data.jsonl", "--context-sizes", "1,x")
    assert res.exit_code == 1
