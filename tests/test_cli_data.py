"""``pluralign data``: synth, inspect, validate, list; --help everywhere; bad files exit non-zero
listing every problem."""

import json

import pytest
from typer.testing import CliRunner

from pluralign.commands.data import app
from pluralign.data.io import read_records

runner = CliRunner()


@pytest.mark.parametrize("cmd", [[], ["synth"], ["inspect"], ["validate"], ["list"]])
def test_help_everywhere(cmd):
    result = runner.invoke(app, cmd + ["--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_root_cli_registers_data():
    from pluralign.cli import app as root

    result = runner.invoke(root, ["data", "--help"])
    assert result.exit_code == 0 and "synth" in result.output and "inspect" in result.output


def test_list_names_every_generator():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    for name in ("example41", "example43", "kmode", "simplex", "vpl-didactic"):
        assert name in result.output
    assert "--rho" in result.output and "--conflict-rate" in result.output


def test_synth_then_inspect(tmp_path):
    out, info = tmp_path / "d.jsonl", tmp_path / "info.json"
    result = runner.invoke(app, ["synth", "example43", "--out", str(out), "--pairs", "800", "--rho", "-0.7",
                                 "--seed", "2", "--info", str(info)])
    assert result.exit_code == 0, result.output
    assert "wrote 1600 records" in result.output
    meta = json.loads(info.read_text())
    assert meta["params"]["rho"] == -0.7 and meta["n_pairs"] == 800
    assert len(read_records(out)) == 1600
    result = runner.invoke(app, ["inspect", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "z=0: 1 user(s), 800 records" in text and "conflict rate (types)" in text
    assert "split train            800 records, 400 pairs" in text
    summary = json.loads(runner.invoke(app, ["inspect", str(out), "--json"]).output)
    assert summary["n_users"] == 2 and summary["option_dim"] == 2
    assert abs(summary["type_conflict_rate"] - meta["conflict_rate"]) < 1e-12
    assert summary["splits"]["test"] == {"records": 400, "pairs": 200}


def test_synth_parquet_noise_conflict_and_no_split(tmp_path):
    out = tmp_path / "d.parquet"
    result = runner.invoke(app, ["synth", "example41", "-o", str(out), "--pairs", "400", "--noise", "0.1",
                                 "--conflict-rate", "0.25", "--no-split"])
    assert result.exit_code == 0, result.output
    summary = json.loads(runner.invoke(app, ["inspect", str(out), "--json"]).output)
    assert summary["flipped"] == 80 and summary["type_conflict_rate"] == pytest.approx(0.25)
    assert set(summary["splits"]) == {"none"}


def test_synth_simplex_and_vpl(tmp_path):
    out = tmp_path / "s.jsonl"
    r = runner.invoke(app, ["synth", "simplex", "-o", str(out), "--pairs", "300", "--users", "6",
                            "--pairs-per-user", "40", "--k", "3"])
    assert r.exit_code == 0, r.output
    summary = json.loads(runner.invoke(app, ["inspect", str(out), "--json"]).output)
    assert summary["n_users"] == 6 and "continuous" in summary["user_types"]
    r = runner.invoke(app, ["synth", "vpl-didactic", "-o", str(tmp_path / "v.jsonl"), "--pairs", "200",
                            "--modes", "3", "--sigma", "0.2"])
    assert r.exit_code == 0, r.output


def test_synth_rejects_unknown_generator_and_foreign_options(tmp_path):
    r = runner.invoke(app, ["synth", "nope", "-o", str(tmp_path / "x.jsonl")])
    assert r.exit_code != 0 and "unknown generator" in r.output
    r = runner.invoke(app, ["synth", "example41", "-o", str(tmp_path / "x.jsonl"), "--rho", "0.5"])
    assert r.exit_code == 2 and "does not take --rho" in r.output
    r = runner.invoke(app, ["synth", "example43", "-o", str(tmp_path / "x.jsonl"), "--pairs", "50",
                            "--rho", "1.0", "--conflict-rate", "0.5"])
    assert r.exit_code == 2 and "conflict rate" in r.output
    assert not (tmp_path / "x.jsonl").exists()


def test_invalid_file_lists_every_problem_and_exits_non_zero(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"user_id": "a", "chosen": [1, 2], "rejected": [1, 2]}\n'
                   '{"user_id": "b", "chosen": [1, 2], "rejected": [0, 2], "split": "dev"}\n'
                   '{"chosen": [1, 2], "rejected": [0, 2]}\n')
    for cmd in ("inspect", "validate"):
        r = runner.invoke(app, [cmd, str(bad)])
        assert r.exit_code == 1
        assert f"{bad}:1: field 'rejected'" in r.output
        assert f"{bad}:2: field 'split'" in r.output
        assert f"{bad}:3: field 'user_id'" in r.output
        assert "3 problem(s)" in r.output


def test_missing_file_and_valid_file(tmp_path):
    r = runner.invoke(app, ["inspect", str(tmp_path / "none.jsonl")])
    assert r.exit_code == 1 and "no such file" in r.output
    good = tmp_path / "g.jsonl"
    good.write_text('{"user_id": "a", "prompt": "Q", "chosen": "x", "rejected": "y"}\n')
    r = runner.invoke(app, ["validate", str(good)])
    assert r.exit_code == 0 and "1 valid records" in r.output
    r = runner.invoke(app, ["inspect", str(good)])
    assert r.exit_code == 0 and "options" in r.output and "text" in r.output
