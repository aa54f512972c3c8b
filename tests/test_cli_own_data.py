"""Your own data through the CLI (issue 11): a small text JSONL fixture -> `pluralign train` with
a tiny random encoder folder -> `pluralign eval` -> `pluralign rank` for two new people, and
the bad inputs each get an error naming the file, line and field or the option."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pluralign.cli import app
from pluralign.data.io import read_dataset_folder, read_records, to_hf_dataset, write_records

from own_data import answer, pet_records, tiny_encoder_dir

CONFIG = """\
# the default preset (tuned: antisymmetric pair encoder), with a tiny model and short run
model:
  hidden_dim: 32
  embed_dim: 32
  z_dim: 32
  pooling: sum
tasks:
  n_tasks: 32
  n_target: 8
  context_max: 4
  val_tasks: 64
train:
  learning_rate: 3.0e-3
  metric_for_best_model: accuracy
  greater_is_better: true
  eval_steps: 50
  save_steps: 50
  disable_tqdm: true
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    write_records(pet_records(users_per_type=4, n_prompts=24), root / "pets.jsonl")
    tiny_encoder_dir(root / "encoder")
    (root / "config.yaml").write_text(CONFIG)
    for name, good, bad in (("cat", "cat", "dog"), ("dog", "dog", "cat")):
        rows = [{"prompt": "which pet?", "chosen": answer(good), "rejected": answer(bad)},
                {"prompt": "and now?", "chosen": answer(good), "rejected": answer("fish")}]
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "candidates.txt").write_text("".join(answer(p) + "\n" for p in ("fish", "cat", "bird", "dog")))
    return root


def invoke(root, *args):
    runner = CliRunner()
    return runner.invoke(app, [str(a) for a in args], env={"PLURALIGN_CACHE": str(root / "cache")})


def train(root, *extra, out="run", data="pets.jsonl"):
    return invoke(root, "train", "--data", root / data, "--model", "np-btl", "--out", root / out,
                  "--config", root / "config.yaml", "--embedder", root / "encoder", *extra)


def top_candidates(files, run: str) -> dict[str, str]:
    """`pluralign rank --json` for the cat person and the dog person: their top candidates."""
    tops = {}
    for person in ("cat", "dog"):
        res = invoke(files, "rank", files / run, "--choices", files / f"{person}.jsonl",
                     "--prompt", "a new question", "--candidates", files / "candidates.txt", "--json")
        assert res.exit_code == 0, res.output
        out = json.loads(res.output)
        assert out["personalized"] and out["n_choices"] == 2 and len(out["ranking"]) == 4
        tops[person] = out["ranking"][0]["candidate"]
    return tops


@pytest.mark.slow
def test_train_eval_rank_two_new_people(files):
    res = train(files, "--steps", "150")
    assert res.exit_code == 0, res.output
    assert "trained np-btl for 150 steps" in res.output and "mean pooling, 32-d" in res.output
    meta = json.loads((files / "run" / "run.json").read_text())
    assert meta["features"]["embedder"]["model"] == str((files / "encoder").resolve())
    assert meta["split"]["method"] == "seeded" and meta["split"]["group_by"] == "prompt"
    assert not list(files.glob(".run.tmp-*"))

    res = invoke(files, "eval", files / "run", "--data", files / "pets.jsonl", "--context-sizes", "0,3",
                 "--n-tasks", "60", "--out", files / "eval" / "r.json")
    assert res.exit_code == 0, res.output
    assert "np-btl / cat people" in res.output and "np-btl / dog people" in res.output
    doc = json.loads((files / "eval" / "r.json").read_text())
    assert doc["user_types"] == {"0": "cat people", "1": "dog people"}
    assert doc["models"]["np-btl"]["3"]["accuracy"] > 0.9  # the types are told apart from 3 choices
    assert (files / "eval" / "r-per-type.png").is_file()

    assert top_candidates(files, "run") == {"cat": answer("cat"), "dog": answer("dog")}

    res = invoke(files, "rank", files / "run", "--prompt", "q", "--candidate", "cat", "--candidate", "dog")
    assert res.exit_code == 0 and "with no choices (the population's view)" in res.output


@pytest.mark.slow
def test_btl_says_it_ranks_the_same_for_everyone(files):
    (files / "btl.yaml").write_text("model:\n  hidden_dim: 32\ntasks:" + CONFIG.split("\ntasks:")[1])  # BTL: no set-encoder fields
    res = invoke(files, "train", "--data", files / "pets.jsonl", "--model", "btl", "--out", files / "btl",
                 "--config", files / "btl.yaml", "--embedder", files / "encoder", "--steps", "10")
    assert res.exit_code == 0, res.output
    res = invoke(files, "rank", files / "btl", "--choices", files / "cat.jsonl", "--prompt", "q",
                 "--candidates", files / "candidates.txt")
    assert res.exit_code == 0, res.output
    assert "btl ranks the same for everyone" in res.output


@pytest.mark.slow
def test_mix_btl_train_eval_rank_and_ask_two_new_people(files):
    (files / "mix.yaml").write_text("model:\n  hidden_dim: 32\n  n_components: 4\ntasks:" + CONFIG.split("\ntasks:")[1])
    res = invoke(files, "train", "--data", files / "pets.jsonl", "--model", "mix-btl", "--out", files / "mix",
                 "--config", files / "mix.yaml", "--embedder", files / "encoder", "--steps", "150")
    assert res.exit_code == 0, res.output
    res = invoke(files, "eval", files / "mix", "--data", files / "pets.jsonl", "--context-sizes", "0,3",
                 "--n-tasks", "60", "--out", files / "eval-mix" / "r.json")
    assert res.exit_code == 0, res.output
    assert json.loads((files / "eval-mix" / "r.json").read_text())["models"]["mix-btl"]["3"]["accuracy"] > 0.9
    assert top_candidates(files, "mix") == {"cat": answer("cat"), "dog": answer("dog")}
    # the next question: the exact posterior over the components scores the pool
    from pluralign import Personalizer

    p = Personalizer.from_pretrained(files / "mix")
    pool = [("q", answer("cat"), answer("dog")), ("q", answer("fish"), answer("fish"))]
    assert p.next_question(p.user([]), pool)[0] == 0  # cat vs dog tells the types apart; fish vs fish nothing


def test_dataset_folder_and_conversational_records_read_like_jsonl(files, tmp_path):
    records = read_records(files / "pets.jsonl")[:40]
    to_hf_dataset(records, conversational=True).save_to_disk(str(tmp_path / "ds"))
    back = read_dataset_folder(tmp_path / "ds")
    assert len(back) == 40 and back[0].user_id == records[0].user_id
    assert back[0].chosen == [{"role": "assistant", "content": records[0].chosen}]
    with pytest.raises(ValueError, match="not one saved by datasets"):
        read_dataset_folder(tmp_path)


def test_bad_input_is_named_and_nothing_is_written(files, tmp_path):
    rows = [json.loads(x) for x in (files / "pets.jsonl").read_text().splitlines()]
    # empty text and a numeric option in a text file: file, line and field
    bad = [dict(r) for r in rows[:5]]
    bad[1]["chosen"] = "  "
    bad[3]["rejected"] = [0.1, 0.2]
    (tmp_path / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bad))
    res = invoke(files, "train", "--data", tmp_path / "bad.jsonl", "--model", "np-btl", "--out", tmp_path / "r1")
    assert res.exit_code == 1
    assert "bad.jsonl:2: field 'chosen': empty text" in res.output
    assert "bad.jsonl:4: field 'rejected': is vector but chosen is text" in res.output
    # users with fewer pairs than a task needs
    few = [r for r in read_records(files / "pets.jsonl") if int(r.pair_id.split(":")[0]) < 2]
    write_records(few, tmp_path / "few.jsonl")  # 12 pairs a user, ~6 in train: a task needs 8
    res = train(files, data=tmp_path / "few.jsonl", out=tmp_path / "r2")
    assert res.exit_code == 1 and "no user has the" in res.output and "tasks.n_target" in res.output
    # an encoder folder that is not a model
    (tmp_path / "notamodel").mkdir()
    res = invoke(files, "train", "--data", files / "pets.jsonl", "--model", "btl", "--out", tmp_path / "r3",
                 "--embedder", tmp_path / "notamodel")
    assert res.exit_code == 1 and "--embedder" in res.output and "no config.json" in res.output
    assert not any(tmp_path.glob("r[123]*")) and not any(tmp_path.glob(".r*"))
    # a folder that is not a run
    res = invoke(files, "rank", tmp_path, "--prompt", "q", "--candidate", "x")
    assert res.exit_code == 1 and "no run.json" in res.output
    # choices of several people without --user
    res = invoke(files, "rank", tmp_path, "--choices", files / "pets.jsonl", "--candidate", "x")
    assert res.exit_code == 1 and "pick one with --user" in res.output
