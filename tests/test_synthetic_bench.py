"""`pluralign bench synthetic` end to end at toy size: files, schema, Bayes lines, plots."""

import json

import pytest
from typer.testing import CliRunner

from pluralign.cli import app
from pluralign.eval.results import validate_results
from pluralign.eval.synthetic_bench import SyntheticBenchConfig


def test_config_validation():
    with pytest.raises(ValueError, match="preset"):
        SyntheticBenchConfig(preset="nope")
    with pytest.raises(ValueError, match="unknown task"):
        SyntheticBenchConfig(tasks=("example-9",))
    with pytest.raises(ValueError, match="rhos"):
        SyntheticBenchConfig(rhos=(1.5,))
    cfg = SyntheticBenchConfig(quick=True)
    assert cfg.steps == 300 and cfg.n_eval_tasks <= 300
    assert cfg.pick(("btl", "np-btl", "vpl"), ("np-btl",)) == ("np-btl",)
    assert SyntheticBenchConfig(models=("vpl",)).pick(("btl", "vpl"), ("btl",)) == ("vpl",)


@pytest.mark.slow
def test_bench_synthetic_cli_writes_results(tmp_path):
    out = tmp_path / "bench"
    result = CliRunner().invoke(app, [
        "bench", "synthetic", "--quick", "--steps", "4", "--n-pairs", "400", "--eval-tasks", "12",
        "--task", "example-4.1", "--task", "example-4.3", "--rho", "0", "--task", "vpl-didactic",
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    for stem in ("example-4.1", "example-4.3-rho-0", "vpl-didactic"):
        doc = json.loads((out / f"{stem}.json").read_text())
        validate_results(doc)
        assert doc["task"] == stem and doc["context_sizes"] == [0, 1, 3, 5, 10]
        assert (out / f"{stem}.png").stat().st_size > 0 and (out / f"{stem}.csv").exists()
    ex41 = json.loads((out / "example-4.1.json").read_text())
    assert set(ex41["models"]) == {"btl", "np-btl"}
    assert ex41["bayes"]["1"] == pytest.approx(0.875) and ex41["paper"]["np-btl"]["10"] == 0.972
    ex43 = json.loads((out / "example-4.3-rho-0.json").read_text())
    assert ex43["single_context_error"]["bayes"] == pytest.approx(0.25)
    assert 0 <= ex43["single_context_error"]["models"]["np-btl"]["error"] <= 1
    curves = json.loads((out / "vpl-didactic.json").read_text())["reward_curves"]
    assert len(curves["annotators"]) == 4 and len(curves["grid"]) == 101
    assert (out / "example-4.3-error.png").exists() and (out / "vpl-didactic-rewards.png").exists()
