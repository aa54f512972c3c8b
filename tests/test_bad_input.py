"""Bad input through `pluralign train/eval/rank/data text` and `pluralign.Personalizer` (issue 11,
"Bad input"): users with fewer pairs than a task needs, text and numeric options mixed, empty
strings, an embedder folder that is not a model, a run folder of another model, texts longer than
the encoder's limit, and config values — each on a small generated JSONL and Parquet fixture.
Every case checks that the message names the file and line (Parquet: row) and the field, or the
option at fault, and that nothing is left half-written (no run folder, no results, no temp files).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from pluralign.cli import app
from pluralign.data.io import write_records
from pluralign.data.splits import split_records
from pluralign.data.synthetic import example43
from pluralign.features.options import EmbedderError, open_embedder
from pluralign.personalizer import Personalizer, RunFolderError
from pluralign.train.config import ConfigError, TrainConfig
from pluralign.train.rewards import RewardTrainConfig, TaskConfig, check_model_fields
from pluralign.train.run import train_run

from own_data import answer, pet_records, tiny_encoder_dir

CONFIG = """\
preset: tuned-plain
model: {hidden_dim: 16, embed_dim: 16, z_dim: 16}
tasks: {n_tasks: 8, n_target: 8, context_max: 4, val_tasks: 16}
train: {eval_steps: 5, save_steps: 5, max_steps: 5, disable_tqdm: true}
"""
FORMATS = ("jsonl", "parquet")


def tiny_config() -> RewardTrainConfig:
    return RewardTrainConfig(
        preset="tuned-plain", model={"hidden_dim": 16, "embed_dim": 16, "z_dim": 16},
        tasks=TaskConfig(n_tasks=8, n_target=8, context_max=4, val_tasks=16),
        train=TrainConfig(max_steps=5, eval_steps=5, save_steps=5, disable_tqdm=True))


def write_rows(rows: list[dict], path: Path) -> Path:
    """Rows as JSONL (one per line) or Parquet (one per row), exactly as given."""
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """Pets records of two user types (JSONL and Parquet), a tiny random encoder folder, and two
    runs trained for 5 steps: np-btl on the text file and np-btl on numeric Example 4.3 data."""
    root = tmp_path_factory.mktemp("bad")
    records = pet_records(users_per_type=3, n_prompts=16)
    for fmt in FORMATS:
        write_records(records, root / f"pets.{fmt}")
    (root / "config.yaml").write_text(CONFIG)
    emb = open_embedder(str(tiny_encoder_dir(root / "encoder")), cache_dir=root / "cache" / "embeddings")
    emb.progress = False
    torch.manual_seed(0)
    train_run(records, "np-btl", tiny_config(), root / "text-run", embedder=emb, log=lambda s: None)
    numeric, _ = example43(n_pairs=200, rho=0.0, seed=0, split=None)
    write_records(numeric, root / "numeric.jsonl")
    train_run(numeric, "np-btl", tiny_config(), root / "numeric-run", log=lambda s: None)
    rows = [json.loads(x) for x in (root / "pets.jsonl").read_text().splitlines()]
    split = split_records(records, (0.5, 0.25, 0.25), seed=0)  # as the text run split them
    return {"root": root, "rows": rows, "first_test": next(i for i, r in enumerate(split) if r.split == "test")}


def invoke(fx, *args) -> tuple[int, str]:
    res = CliRunner().invoke(app, [str(a) for a in args], env={"PLURALIGN_CACHE": str(fx["root"] / "cache")})
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.output


def listing(folder: Path) -> set[str]:
    """Every path under ``folder`` but the parsed-records caches beside valid input files."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if not p.name.endswith(".pluralign-cache.npz")}


# --- CLI: each case writes its fixture into a fresh folder and runs one command there ----------

def few_pairs(fx, d, fmt):
    few = [r for r in fx["rows"] if int(r["pair_id"].split(":")[0]) < 4]  # 4 prompts: 12 train pairs a user
    data = write_rows(few, d / f"few.{fmt}")
    return (["train", "--data", data, "--model", "np-btl", "--out", d / "run", "--config", fx["root"] / "config.yaml",
             "--embedder", fx["root"] / "encoder"],
            [f"few.{fmt}: no user has the 12 validation pairs", "tasks.n_target", "tasks.context_max"])


def few_pairs_eval(fx, d, fmt):
    line = fx["first_test"] + 1  # the first test-split record of the first user
    return (["eval", fx["root"] / "text-run", "--data", fx["root"] / f"pets.{fmt}", "--n-target", "60",
             "--out", d / "r.json"],
            ["no user has the 70 pairs in the test split", "--n-target 60", "--context-sizes 10",
             f"pets.{fmt}:{line})"])


def mixed_options(fx, d, fmt):
    rows = [dict(r) for r in fx["rows"][:30]]
    rows[3]["rejected"] = [0.1, 0.2]
    if fmt == "parquet":  # a Parquet column has one type: every row of this one is numeric
        for r in rows:
            r["rejected"] = [0.1, 0.2]
    data = write_rows(rows, d / f"mixed.{fmt}")
    return (["train", "--data", data, "--model", "np-btl", "--out", d / "run"],
            [f"mixed.{fmt}:4: field 'rejected': is vector but chosen is text"])


def mixed_options_eval(fx, d, fmt):
    rows = [dict(r) for r in fx["rows"][:30]] + [{"user_id": "x", "prompt": "p", "chosen": [1.0], "rejected": [2.0]}]
    if fmt == "parquet":
        return (["eval", fx["root"] / "text-run", "--data", fx["root"] / "numeric.jsonl", "--out", d / "r.json"],
                ["numeric.jsonl:", "field 'chosen': the records have numeric options but the run was "
                                   "trained on text options"])
    data = write_rows(rows, d / "mixed.jsonl")
    return (["eval", fx["root"] / "text-run", "--data", data, "--out", d / "r.json"],
            ["mixed.jsonl:31: field 'chosen': vector option in a file of text options (line 1)"])


def mixed_choices(fx, d, fmt):
    rows = [{"prompt": "p", "chosen": answer("cat"), "rejected": answer("dog")},
            {"prompt": "p", "chosen": [1.0, 2.0], "rejected": [2.0, 1.0]}]
    if fmt == "parquet":  # one type per column: a numeric person for a text run (no user_id: optional)
        rows = [{**r, "chosen": [1.0, 2.0], "rejected": [2.0, 1.0]} for r in rows]
        expect = ["choices.parquet:1: field 'chosen': a numeric vector, but this run was trained on text options"]
    else:
        expect = ["choices.jsonl:2: field 'chosen': vector option in a file of text options (line 1)"]
    data = write_rows(rows, d / f"choices.{fmt}")
    return (["rank", fx["root"] / "text-run", "--choices", data, "--prompt", "q", "--candidate", "a"], expect)


def mixed_candidates(fx, d, fmt):
    (d / "cands.jsonl").write_text('"a text"\n[0.5, 1.0]\n')
    return (["rank", fx["root"] / "text-run", "--prompt", "q", "--candidates", d / "cands.jsonl"],
            ["cands.jsonl:2: a numeric vector, but this run was trained on text options"])


def empty_strings(fx, d, fmt):
    rows = [dict(r) for r in fx["rows"][:30]]
    rows[1]["chosen"], rows[4]["user_id"] = "  ", ""
    data = write_rows(rows, d / f"empty.{fmt}")
    return (["train", "--data", data, "--model", "btl", "--out", d / "run"],
            [f"empty.{fmt}:2: field 'chosen': empty text", f"empty.{fmt}:5: field 'user_id': missing"])


def empty_choice(fx, d, fmt):
    rows = [{"user_id": "me", "prompt": "p", "chosen": answer("cat"), "rejected": answer("dog")},
            {"user_id": "me", "prompt": "p", "chosen": answer("cat"), "rejected": ""}]
    data = write_rows(rows, d / f"choices.{fmt}")
    return (["rank", fx["root"] / "text-run", "--choices", data, "--prompt", "q", "--candidate", "a"],
            [f"choices.{fmt}:2: field 'rejected': empty text"])


def empty_candidate(fx, d, fmt):
    return (["rank", fx["root"] / "text-run", "--prompt", "q", "--candidate", "a", "--candidate", " "],
            ["--candidate #2: empty text"])


def not_a_model(fx, d, fmt):
    (d / "enc").mkdir()
    return (["train", "--data", fx["root"] / f"pets.{fmt}", "--model", "np-btl", "--out", d / "run",
             "--config", fx["root"] / "config.yaml", "--embedder", d / "enc"], ["--embedder", "has no config.json"])


def no_tokenizer(fx, d, fmt):
    (d / "enc").mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(fx["root"] / "encoder" / name, d / "enc" / name)
    return (["train", "--data", fx["root"] / f"pets.{fmt}", "--model", "np-btl", "--out", d / "run",
             "--config", fx["root"] / "config.yaml", "--embedder", d / "enc"],
            ["--embedder", "model weights but no tokenizer"])


def other_models_checkpoint(fx, d, fmt):
    (d / "mixed").mkdir()
    shutil.copy(fx["root"] / "numeric-run" / "run.json", d / "mixed" / "run.json")
    shutil.copytree(fx["root"] / "text-run" / "best", d / "mixed" / "best")
    before = ["rank", d / "mixed", "--prompt", "q", "--candidate", "a"]
    cmd = before if fmt == "jsonl" else ["eval", d / "mixed", "--data", fx["root"] / "pets.parquet",
                                         "--out", d / "r.json"]
    return cmd, ["mixed: best/ holds another run's model: run.json records option_dim = 2, best/ has 32"]


def resume_other_model(fx, d, fmt):
    shutil.copytree(fx["root"] / "text-run", d / "run")
    if fmt == "jsonl":
        return (["train", "--data", fx["root"] / "pets.jsonl", "--model", "vpl", "--out", d / "run"],
                ["run holds a 'np-btl' run; the model is 'vpl'"])
    return (["train", "--data", fx["root"] / "numeric.jsonl", "--model", "np-btl", "--out", d / "run"],
            ["run holds a run on text options; these records have numeric options"])


def resume_other_embedder(fx, d, fmt):
    shutil.copytree(fx["root"] / "text-run", d / "run")
    return (["train", "--data", fx["root"] / f"pets.{fmt}", "--model", "np-btl", "--out", d / "run",
             "--config", fx["root"] / "config.yaml", "--embedder", fx["root"] / "encoder", "--max-length", "64"],
            ["would mix two encoders' vectors (they differ in max_length)"])


def checkpoint_not_run(fx, d, fmt):
    return (["rank", fx["root"] / "text-run" / "best", "--prompt", "q", "--candidate", "a"],
            ["no run.json", "it is a checkpoint of the run", "give that folder"])


def bad_config_value(fx, d, fmt):
    (d / "c.yaml").write_text("model:\n  pair_symmetry: nope\n")
    return (["train", "--data", fx["root"] / "numeric.jsonl", "--model", "np-btl", "--out", d / "run",
             "--config", d / "c.yaml"],
            ["c.yaml: model.pair_symmetry: 'nope' is not one of 'none', 'antisymmetric'"])


def data_text_bad_option(fx, d, fmt):
    return (["data", "text", "pets", "--pairs-per-user", "0", "--out", d / f"t.{fmt}"],
            ["--pairs-per-user must be at least 1, got 0"])


CASES = [few_pairs, few_pairs_eval, mixed_options, mixed_options_eval, mixed_choices, mixed_candidates,
         empty_strings, empty_choice, empty_candidate, not_a_model, no_tokenizer, other_models_checkpoint,
         resume_other_model, resume_other_embedder, checkpoint_not_run, bad_config_value, data_text_bad_option]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_cli_names_the_place_and_writes_nothing(fx, tmp_path, case, fmt):
    args, expected = case(fx, tmp_path, fmt)
    before, runs_before = listing(tmp_path), listing(fx["root"])
    code, output = invoke(fx, *args)
    assert code == 1, output
    assert "Traceback" not in output
    for text in expected:
        assert text in output, output
    assert listing(tmp_path) == before  # no run folder, no results, no temporary folder
    assert listing(fx["root"]) == runs_before  # and the runs it read are as they were


# --- warnings that name the line: long texts, users left out of evaluation -------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_eval_warnings_name_file_and_line(fx, tmp_path, fmt):
    rows = [dict(r) for r in fx["rows"]]
    line = fx["first_test"] + 1
    rows[line - 1]["rejected"] = "cat " * 300  # over the tiny encoder's 128 positions
    user = rows[line - 1]["user_id"]
    # this user keeps one test prompt: too few pairs for a task with N^C up to 4
    test_prompts = {r["prompt"] for r, s in zip(rows, split_records(pet_records(3, 16), seed=0)) if s.split == "test"}
    keep = rows[line - 1]["prompt"]
    rows = [r for r in rows if not (r["user_id"] == user and r["prompt"] in test_prompts and r["prompt"] != keep)]
    data = write_rows(rows, tmp_path / f"long.{fmt}")
    code, output = invoke(fx, "eval", fx["root"] / "text-run", "--data", data, "--context-sizes", "0,4",
                          "--n-tasks", "5", "--out", tmp_path / "r.json")
    assert code == 0, output
    assert f"long.{fmt}:{line}: field 'rejected'" in output and "limit of 128 tokens" in output
    assert "1 of 6 users lack the 12 pairs in the test split" in output
    assert f"{user!r} has 6 (from {data}:{line})" in output
    assert listing(tmp_path) == {data.name, "r.json", "r.csv", "r.png", "r-per-type.png"}


def test_rank_warnings_name_file_and_line(fx, tmp_path):
    (tmp_path / "cands.txt").write_text("a\n\n" + "cat " * 300 + "\n")
    write_rows([{"prompt": "p", "chosen": "dog " * 300, "rejected": "cat"}], tmp_path / "me.jsonl")
    code, output = invoke(fx, "rank", fx["root"] / "text-run", "--prompt", "q", "--candidates",
                          tmp_path / "cands.txt", "--choices", tmp_path / "me.jsonl")
    assert code == 0, output
    assert "cands.txt:3" in output and "me.jsonl:1: field 'chosen'" in output


def test_data_text_says_when_users_have_too_few_pairs(fx, tmp_path):
    code, output = invoke(fx, "data", "text", "pets", "--pairs-per-user", "6", "--users-per-type", "2",
                          "--out", tmp_path / "small.jsonl")
    assert code == 0 and "no user has the 20 train pairs" in output and "--pairs-per-user" in output
    assert len((tmp_path / "small.jsonl").read_text().splitlines()) == 24  # the file is whole


# --- the Python API names the choice or candidate and its field -------------------------------

API_CASES = [
    ("mixed kinds", lambda p: p.user([{"prompt": "p", "chosen": "a", "rejected": "b"},
                                      {"prompt": "p", "chosen": [1.0], "rejected": [2.0]}]),
     "choice 1: field 'chosen': a numeric vector, but this run was trained on text options"),
    ("empty choice", lambda p: p.user([{"prompt": "p", "chosen": "a", "rejected": " "}]),
     "choice 0: field 'rejected': empty text"),
    ("empty candidate", lambda p: p.rank("q", ["a", ""]), "candidate 1: empty text"),
    ("vector candidate", lambda p: p.rank("q", ["a", [1.0, 2.0]]),
     "candidate 1: a numeric vector, but this run was trained on text options"),
    ("named by the caller", lambda p: p.user([{"chosen": "a"}], lambda i, f: f"mine.jsonl:{i + 7}: field {f!r}"),
     "mine.jsonl:7: field 'rejected': missing"),
]


@pytest.mark.parametrize("call,expected", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_personalizer_names_the_choice_and_field(fx, call, expected):
    p = Personalizer.from_pretrained(fx["root"] / "text-run", cache_dir=fx["root"] / "cache" / "embeddings")
    with pytest.raises(ValueError) as err:
        call(p)
    assert expected in str(err.value)


def test_personalizer_numeric_choices_of_the_wrong_length(fx):
    p = Personalizer.from_pretrained(fx["root"] / "numeric-run")
    with pytest.raises(ValueError, match=r"choice 0: field 'chosen': a vector of 3 numbers; the model expects 2"):
        p.user([{"chosen": [1.0, 2.0, 3.0], "rejected": [0.0, 1.0, 2.0]}])
    with pytest.raises(ValueError, match="choice 0: field 'chosen': text, but this run was trained on numeric"):
        p.user([{"chosen": "a", "rejected": "b"}])


def test_personalizer_refuses_a_run_of_other_parts(fx, tmp_path):
    (tmp_path / "run.json").write_text((fx["root"] / "numeric-run" / "run.json").read_text())
    (tmp_path / "best").symlink_to(fx["root"] / "text-run" / "best")
    with pytest.raises(RunFolderError, match="run.json records option_dim = 2, best/ has 32"):
        Personalizer.from_pretrained(tmp_path)


def test_embedder_without_tokenizer_is_refused(fx, tmp_path):
    for name in ("config.json", "model.safetensors"):
        shutil.copy(fx["root"] / "encoder" / name, tmp_path / name)
    with pytest.raises(EmbedderError, match="no tokenizer"):
        open_embedder(str(tmp_path), cache_dir=tmp_path / "cache")


# --- config values: the documented ones are writable, others named --------------------------

@pytest.mark.parametrize("value", ["none", "antisymmetric"])
def test_pair_symmetry_values_are_writable_in_yaml(tmp_path, value):
    (tmp_path / "c.yaml").write_text(f"model:\n  pair_symmetry: {value}\n")
    cfg = RewardTrainConfig.from_yaml(tmp_path / "c.yaml")
    assert cfg.model_fields("np-btl")["pair_symmetry"] == value
    check_model_fields("np-btl", cfg.model_fields("np-btl"))
    check_model_fields("vpl", cfg.model_fields("vpl"))


@pytest.mark.parametrize("value,message", [
    ("nope", "'nope' is not one of 'none', 'antisymmetric'"),
    ("None", "'None' is not one of 'none', 'antisymmetric'"),
    ("null", "null is not allowed (expected one of 'none', 'antisymmetric')"),
    ("off", "False is not one of 'none', 'antisymmetric' (YAML reads yes/no/on/off unquoted as true/false"),
])
def test_pair_symmetry_unknown_values_are_named(tmp_path, value, message):
    (tmp_path / "c.yaml").write_text(f"model:\n  pair_symmetry: {value}\n")
    cfg = RewardTrainConfig.from_yaml(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="c.yaml: model.pair_symmetry: ") as err:
        check_model_fields("np-btl", cfg.model_fields("np-btl"), f"{tmp_path / 'c.yaml'}: model")
    assert message in str(err.value)
