"""`pluralign rl aggregate`: the RL bench's success rates over seeds (pluralign.rl.seeds).

Pure JSON in, tables out: no MuJoCo or d3rlpy needed, so these run without the rl extra."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from pluralign.cli import app
from pluralign.rl.report import first_reaching, summary_lines
from pluralign.rl.seeds import aggregate, mean_doc, read_runs, success_rows, target_rows

SIZES = [0, 1, 2, 4, 8]


def bench_doc(seed: int, spo: float, vpl: float, active: list[float], k: int = 2, oracle: float = 1.0) -> dict:
    """A `pluralign rl bench` result in its schema: flat curves but for vpl/active and vpl+spo."""
    def curve(values):
        return {str(n): {"success": float(v), "stderr": 0.0, "n": 20} for n, v in zip(SIZES, values)}

    models = {"btl": curve([0.5] * 5), "vpl": curve([0.0, vpl, vpl, vpl, vpl]), "vpl/active": curve(active),
              "vpl+spo": curve([0.0, spo, spo, spo, spo]), "oracle": curve([oracle] * 5)}
    per_goal = {m: {n: [c["success"]] * k for n, c in cur.items()} for m, cur in models.items()}
    return {"task": f"maze-medium-{k}goals", "context_sizes": SIZES, "models": models, "per_goal": per_goal,
            "goals": [[1, 1], [6, 5]][:k], "config": {"seed": seed}}


def write_runs(root, docs):
    runs = []
    for i, doc in enumerate(docs):
        run = root / f"run{i}"
        run.mkdir(parents=True)
        (run / f"maze-{len(doc['goals'])}goals.json").write_text(json.dumps(doc))
        runs.append(run)
    return runs


def three_seeds():
    return [bench_doc(1, 0.2, 0.1, [0, 0.1, 0.2, 0.1, 0.3]), bench_doc(2, 0.3, 0.3, [0, 0.1, 0.1, 0.2, 0.2]),
            bench_doc(3, 0.4, 0.2, [0, 0.3, 0.3, 0.3, 0.3])]


def test_success_rows_are_seed_means_with_a_t_interval_worked_by_hand():
    rows = {(r["policy"], r["n_queries"]): r for r in success_rows(three_seeds())}
    r = rows[("vpl+spo", 8)]
    # 20, 30, 40 %: mean 30, sd 10, t_{0.975, 2} = 4.3027 -> half-width 4.3027 * 10 / sqrt(3) = 24.84
    assert r["values"] == pytest.approx([20, 30, 40])
    assert r["mean"] == pytest.approx(30.0)
    assert r["t_half_width"] == pytest.approx(4.302653 * 10 / math.sqrt(3), rel=1e-5)
    assert (r["t_low"], r["t_high"]) == pytest.approx((30 - 24.8414, 30 + 24.8414), abs=1e-3)
    assert r["seeds"] == 3
    assert rows[("oracle", 0)]["t_half_width"] == pytest.approx(0.0)


def test_targets_are_read_per_seed():
    rows = {r["quantity"].split(" (")[0].split(":")[0]: r for r in target_rows(three_seeds(), k=2)}
    gap = rows["vpl+spo - oracle"]
    assert gap["values"] == pytest.approx([-80, -70, -60]) and gap["met_every_seed"] is False
    spo_vs_vpl = rows["vpl+spo - vpl"]
    assert spo_vs_vpl["values"] == pytest.approx([10, 0, 20]) and spo_vs_vpl["met_every_seed"] is True
    # seed 1: vpl/active reaches vpl's 10 % at n = 1; seed 2: 30 % is never reached; seed 3: 20 % at n = 1
    active = rows["vpl/active"]
    assert active["values"] == [1.0, None, 1.0] and active["seeds"] == 2 and active["met_every_seed"] is False


def test_mix_btl_spo_targets_sit_beside_vpl_spo():
    """The library's best policy is checked against the same oracle gap and query budget."""
    docs = three_seeds()
    for doc, (ours, active) in zip(docs, [(0.95, 0.96), (0.9, 0.9), (0.85, 0.8)]):
        doc["models"]["mix-btl+spo"] = {n: dict(c, success=ours) for n, c in doc["models"]["oracle"].items()}
        doc["models"]["mix-btl+spo/active"] = {n: dict(c, success=active if n != "0" else 0.0)
                                               for n, c in doc["models"]["oracle"].items()}
    rows = {r["quantity"].split(" (")[0].split(":")[0]: r for r in target_rows(docs, k=2)}
    gap = rows["mix-btl+spo - oracle"]
    assert gap["values"] == pytest.approx([-5, -10, -15]) and gap["met_every_seed"] is False  # 15 > 10
    active = rows["mix-btl+spo/active"]
    assert active["values"] == [1.0, 1.0, None] and active["met_every_seed"] is False  # 80 % never reaches 85
    assert any(line.startswith("target mix-btl+spo within 10 points") and "met" in line
               for line in summary_lines(docs[0]))
    # the gap with active answers is read beside the random one (docs/rl.md reports 10 goals on it)
    active_gap = rows["mix-btl+spo/active - oracle"]
    assert active_gap["values"] == pytest.approx([-4, -10, -20]) and active_gap["met_every_seed"] is False
    assert "target mix-btl+spo/active within 10 points of the oracle (n=8): 96 vs 100 -> met" in summary_lines(docs[0])
    assert "vpl/active - oracle" not in rows  # VPL's gap is not a target, with either answers


def test_nothing_to_reach_is_not_a_pass():
    doc = bench_doc(1, 0.2, 0.0, [0.0] * 5)
    assert math.isnan(first_reaching(doc, "vpl"))


def test_mean_doc_keeps_the_bench_schema():
    mean = mean_doc(three_seeds())
    cell = mean["models"]["vpl+spo"]["8"]
    assert cell["success"] == pytest.approx(0.3)
    assert cell["stderr"] == pytest.approx(0.1 / math.sqrt(3))
    assert cell["n"] == 60
    assert mean["seeds"] == [1, 2, 3]
    assert mean["per_goal"]["vpl+spo"]["8"] == pytest.approx([0.3, 0.3])


def test_aggregate_writes_tables_mean_results_and_a_plot(tmp_path):
    runs = write_runs(tmp_path, three_seeds())
    res = aggregate(runs, tmp_path / "out")
    assert list(res) == [2]
    for name in ("maze-2goals-seeds.md", "maze-2goals-seeds.json", "maze-2goals-seeds_success.csv",
                 "maze-2goals-seeds_targets.csv", "maze-2goals-mean.json", "maze-2goals-mean.csv",
                 "maze-2goals-seeds.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    assert any(line.startswith("target vpl+spo within 10 points") and "not met" in line for line in res[2]["summary"])


def test_bad_runs_are_clear_errors(tmp_path):
    docs = three_seeds()
    docs[2]["config"]["seed"] = 1
    with pytest.raises(ValueError, match="more than one run"):
        read_runs(write_runs(tmp_path / "dup", docs), 2)
    other = three_seeds()
    other[1]["context_sizes"] = [0, 8]
    other[1]["models"] = {m: {n: c for n, c in cur.items() if n in ("0", "8")} for m, cur in other[1]["models"].items()}
    with pytest.raises(ValueError, match="queries"):
        read_runs(write_runs(tmp_path / "sizes", other), 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no maze-<K>goals.json"):
        aggregate([tmp_path / "empty"], tmp_path / "out")


def test_cli_aggregate(tmp_path):
    runs = write_runs(tmp_path, three_seeds())
    result = CliRunner().invoke(app, ["rl", "aggregate", *map(str, runs), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "| vpl+spo | 8 | 30.0 [5.2, 54.8] | 3 |" in result.output
    bad = CliRunner().invoke(app, ["rl", "aggregate", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "not a folder" in bad.output


def test_one_run_summary_does_not_pass_active_queries_with_nothing_to_reach():
    lines = summary_lines(bench_doc(1, 0.2, 0.0, [0.0] * 5))
    vpl = [line for line in lines if line.startswith("target vpl with active")]
    assert vpl and vpl[0].endswith("not met (nothing to reach)")
    reach = summary_lines(bench_doc(1, 0.2, 0.1, [0, 0, 0.1, 0.1, 0.1]))
    assert any(line.startswith("target vpl with active") and line.endswith("first at n = 2 -> met") for line in reach)


def test_every_policy_with_an_active_curve_is_checked_against_the_budget():
    """Not a fixed list: a policy the user names (here vpl+maxnorm) with a ``/active`` curve gets
    the active-query target in one run's summary and in the seeds' targets; one without does not."""
    docs = three_seeds()
    for doc in docs:
        doc["models"]["vpl+maxnorm"] = {n: dict(c, success=0.2) for n, c in doc["models"]["oracle"].items()}
        doc["models"]["vpl+maxnorm/active"] = {n: dict(c, success=0.0 if n in ("0", "1") else 0.3)
                                               for n, c in doc["models"]["oracle"].items()}
    rows = {r["quantity"].split(":")[0]: r for r in target_rows(docs, k=2)}
    assert rows["vpl+maxnorm/active"]["values"] == [2.0, 2.0, 2.0] and rows["vpl+maxnorm/active"]["met_every_seed"]
    assert "vpl+spo/active" not in rows
    lines = summary_lines(docs[0])
    assert any(line.startswith("target vpl+maxnorm with active") and line.endswith("first at n = 2 -> met")
               for line in lines)
    assert not any(line.startswith("target vpl+spo with active") for line in lines)
