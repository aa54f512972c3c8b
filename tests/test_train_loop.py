"""The training loop: learning, exact resume, best checkpoint, early stop, log, frozen params."""

from __future__ import annotations

import json
import math

import pytest
import torch
from train_toy import Toy, batch_fn, step_fn, val_fn, weights

from pluralign.train import LRSchedule, TrainConfig, fit
from pluralign.train.state import load_model_weights


def quiet(**kw) -> TrainConfig:
    return TrainConfig(disable_tqdm=True, **kw)


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_loss_falls_and_outputs_written(tmp_path):
    model = Toy()
    before = val_fn(model)["loss"]
    res = fit(model, step_fn, batch_fn, quiet(learning_rate=1e-2, max_steps=60, eval_steps=20,
                                              logging_steps=10), tmp_path, val_fn=val_fn)
    after = val_fn(model)["loss"]
    assert after < 0.2 * before
    assert res.step == 60 and not res.stopped_early and res.resumed_from is None
    train = [r for r in read_log(res.log_path) if r["event"] == "train"]
    assert [r["step"] for r in train] == [10, 20, 30, 40, 50, 60]
    assert train[-1]["loss"] < 0.2 * train[0]["loss"]
    assert {"mae", "learning_rate", "elapsed_s"} <= set(train[0])
    evals = [r for r in read_log(res.log_path) if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [20, 40, 60]
    assert (tmp_path / "best" / "model.safetensors").is_file()
    assert (tmp_path / "last" / "optimizer.pt").is_file()
    assert res.best_step == min(evals, key=lambda r: r["loss"])["step"]


class Crash(RuntimeError):
    pass


def crashing(at_step: int):
    def fn(step, stream):
        if step == at_step:
            raise Crash(f"simulated crash at step {step}")
        return batch_fn(step, stream)
    return fn


@pytest.mark.parametrize("accum", [1, 2])
def test_resume_is_bit_identical(tmp_path, accum):
    cfg = quiet(learning_rate=5e-3, max_steps=12, optim="adamw", weight_decay=0.01,
                lr_scheduler_type="cosine", warmup_steps=2, max_grad_norm=1.0,
                gradient_accumulation_steps=accum, eval_steps=4, save_steps=5, logging_steps=1)
    full = Toy(seed=0)
    fit(full, step_fn, batch_fn, cfg, tmp_path / "full", val_fn=val_fn)

    interrupted = Toy(seed=0)
    with pytest.raises(Crash):
        fit(interrupted, step_fn, crashing(8), cfg, tmp_path / "resumed", val_fn=val_fn)
    fresh = Toy(seed=123)  # a new process builds its model anew; resume must overwrite it all
    res = fit(fresh, step_fn, batch_fn, cfg, tmp_path / "resumed", val_fn=val_fn)
    assert res.resumed_from == 5 and res.step == 12
    a, b = weights(full), weights(fresh)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the log reads as one run: no step twice, same numbers as the uninterrupted run
    strip = lambda rows: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]
    assert strip(read_log(tmp_path / "full" / "log.jsonl")) == strip(
        read_log(tmp_path / "resumed" / "log.jsonl"))


def test_resume_without_checkpoint_flag_starts_over(tmp_path):
    cfg = quiet(max_steps=3, save_steps=1)
    fit(Toy(), step_fn, batch_fn, cfg, tmp_path)
    res = fit(Toy(), step_fn, batch_fn, quiet(max_steps=3, resume_from_checkpoint=False), tmp_path)
    assert res.resumed_from is None
    again = fit(Toy(), step_fn, batch_fn, cfg, tmp_path)  # finished run: nothing left to do
    assert again.resumed_from == 3 and again.step == 3


def test_a_longer_budget_on_resume_stretches_the_schedule(tmp_path):
    # a finished 4-step cosine run ends at lr 0; resumed with max_steps 8 it must keep learning,
    # on the cosine of the new budget from step 4 on
    fit(Toy(), step_fn, batch_fn, quiet(learning_rate=1e-2, max_steps=4, lr_scheduler_type="cosine",
                                        logging_steps=1), tmp_path)
    res = fit(Toy(), step_fn, batch_fn, quiet(learning_rate=1e-2, max_steps=8, lr_scheduler_type="cosine",
                                              logging_steps=1), tmp_path)
    assert res.resumed_from == 4 and res.step == 8
    lrs = {r["step"]: r["learning_rate"] for r in read_log(tmp_path / "log.jsonl") if r["event"] == "train"}
    schedule = LRSchedule("cosine", 0, 8)
    for step in range(5, 9):  # the rate used by optimiser step `step` is the schedule at step - 1
        assert lrs[step] == pytest.approx(1e-2 * schedule(step - 1))
    assert lrs[5] > 0.4e-2


def test_best_checkpoint_is_kept_and_loaded(tmp_path):
    scores = iter([0.5, 0.8, 0.6, 0.7])
    seen = {}

    def scripted_val(model):
        seen[len(seen)] = weights(model)
        return {"accuracy": next(scores)}

    model = Toy()
    res = fit(model, step_fn, batch_fn,
              quiet(learning_rate=1e-2, max_steps=8, eval_steps=2, metric_for_best_model="accuracy",
                    greater_is_better=True, load_best_model_at_end=True), tmp_path, val_fn=scripted_val)
    assert res.best_step == 4 and res.best_metric == 0.8
    meta = json.loads((tmp_path / "best" / "trainer_metrics.json").read_text())
    assert meta == {"step": 4, "accuracy": 0.8}
    now = weights(model)
    for k in now:  # load_best_model_at_end restored the weights seen at step 4
        assert torch.equal(now[k], seen[1][k]), k
    probe = Toy(seed=9)
    assert load_model_weights(tmp_path / "best", probe)
    assert all(torch.equal(probe.state_dict()[k], seen[1][k]) for k in now)


def test_early_stopping(tmp_path):
    values = iter([1.0, 0.9, 0.95, 0.91, 0.5, 0.4])
    res = fit(Toy(), step_fn, batch_fn,
              quiet(max_steps=100, eval_steps=3, early_stopping_patience=2),
              tmp_path, val_fn=lambda m: {"loss": next(values)})
    assert res.stopped_early and res.step == 12 and res.best_step == 6
    evals = [r for r in read_log(tmp_path / "log.jsonl") if r["event"] == "eval"]
    assert [r["is_best"] for r in evals] == [True, True, False, False]
    # resuming a run that stopped early does not train further
    again = fit(Toy(), step_fn, batch_fn, quiet(max_steps=100, eval_steps=3, early_stopping_patience=2),
                tmp_path, val_fn=lambda m: {"loss": 0.0})
    assert again.step == 12 and again.stopped_early


def test_only_trainable_parameters_change(tmp_path):
    model = Toy()
    model.net[0].weight.requires_grad_(False)
    frozen_before = model.net[0].weight.detach().clone()
    trained_before = model.net[3].weight.detach().clone()
    fit(model, step_fn, batch_fn, quiet(learning_rate=1e-2, max_steps=5), tmp_path)
    assert torch.equal(model.net[0].weight, frozen_before)
    assert torch.equal(model.frozen, torch.ones(1))
    assert not torch.equal(model.net[3].weight, trained_before)


def test_no_trainable_parameters_is_an_error(tmp_path):
    model = Toy().requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad"):
        fit(model, step_fn, batch_fn, quiet(max_steps=1), tmp_path)


def test_missing_monitored_metric_and_nan_loss(tmp_path):
    with pytest.raises(KeyError, match="metric_for_best_model"):
        fit(Toy(), step_fn, batch_fn, quiet(max_steps=2, eval_steps=1), tmp_path / "a",
            val_fn=lambda m: {"acc": 1.0})
    nan_step = lambda m, b: (m(b["x"]).sum() * float("nan"), {})
    with pytest.raises(FloatingPointError, match="step 0"):
        fit(Toy(), nan_step, batch_fn, quiet(max_steps=2), tmp_path / "b")


def test_model_save_pretrained_is_used_for_best(tmp_path):
    class WithSave(Toy):
        def save_pretrained(self, directory):
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "marker.txt").write_text("own format")

    fit(WithSave(), step_fn, batch_fn, quiet(max_steps=2, eval_steps=1), tmp_path, val_fn=val_fn)
    assert (tmp_path / "best" / "marker.txt").read_text() == "own format"


def test_lr_schedules():
    cos = LRSchedule("cosine", warmup=2, total=12)
    assert [cos(s) for s in (0, 1, 2)] == [0.0, 0.5, 1.0]
    assert math.isclose(cos(7), 0.5) and cos(12) == 0.0 and cos(20) == 0.0
    lin = LRSchedule("linear", warmup=0, total=10)
    assert lin(0) == 1.0 and math.isclose(lin(5), 0.5) and lin(10) == 0.0
    assert LRSchedule("constant", warmup=0, total=10)(9) == 1.0


def test_learning_rate_is_logged_per_schedule(tmp_path):
    fit(Toy(), step_fn, batch_fn, quiet(learning_rate=1.0e-2, max_steps=4, lr_scheduler_type="linear",
                                        logging_steps=1), tmp_path)
    lrs = [r["learning_rate"] for r in read_log(tmp_path / "log.jsonl")]
    assert lrs == pytest.approx([1e-2, 7.5e-3, 5e-3, 2.5e-3])


def test_bf16_mixed_precision_learns_and_settings_can_change(tmp_path):
    model = Toy()
    before = val_fn(model)["loss"]
    fit(model, step_fn, batch_fn, quiet(learning_rate=1e-2, max_steps=40, mixed_precision="bf16"),
        tmp_path / "bf16")
    assert val_fn(model)["loss"] < 0.3 * before
    # a later run in the same process with other precision settings works (state is reset)
    res = fit(Toy(), step_fn, batch_fn, quiet(max_steps=2), tmp_path / "fp32")
    assert res.step == 2
