"""Issue 15: the fast paths compute what the paper's form computes.

The split / fused decoder equals MLP2([MLP1(y) ‖ z]); the DeepSet's pooled-then-linear h1 equals
pooling h1's outputs; prepared candidates and the many-user path equal ``reward``; checkpoints
written before the split load and give the same rewards; the vectorized sampler keeps the
task invariants; prefetching serves the same batches; ``mixed_precision: auto`` resolves.
Timing targets live in benchmarks/np_btl_throughput.py, not here.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pluralign.data.tasks import TaskSampler, collate, collate_arrays
from pluralign.nn import ConditionedRewardDecoder, DeepSetEncoder, masked_pool
from pluralign.rewards import RewardModel, build_reward_model
from pluralign.train.config import TrainConfig
from pluralign.train.accelerator import resolve_precision
from pluralign.train.prefetch import PrefetchingBatchFn

OLD = Path(__file__).parent / "fixtures" / "old_checkpoints"
D = 3


@pytest.mark.parametrize("hidden,embed_dim", [((16,), 16), ((16, 16), 16), ((16,), 2)])
def test_split_decoder_equals_concatenated_form(hidden, embed_dim):
    # embed_dim=2: fusing MLP1's last layer would cost more, the unfused split is used
    torch.manual_seed(0)
    dec = ConditionedRewardDecoder(D, 5, embed_dim=embed_dim, hidden=hidden)
    y, z = torch.randn(4, 7, D), torch.randn(4, 5)
    torch.testing.assert_close(dec(y, z), dec.forward_concat(y, z), rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # the cached fused product, and after a weight change (cache renewed)
        torch.testing.assert_close(dec(y, z), dec.forward_concat(y, z), rtol=1e-5, atol=1e-6)
        dec.embed.net[-1].weight.add_(0.5)
        torch.testing.assert_close(dec(y, z), dec.forward_concat(y, z), rtol=1e-5, atol=1e-6)
    # gradients reach the same parameters with the same values
    g1 = torch.autograd.grad(dec(y, z).sum(), list(dec.parameters()))
    g2 = torch.autograd.grad(dec.forward_concat(y, z).sum(), list(dec.parameters()))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # options of batch 1 are shared by every user
    torch.testing.assert_close(dec(y[:1], z), dec.forward_concat(y[:1].expand(4, -1, -1), z),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling", ["mean", "sum"])
@pytest.mark.parametrize("symmetry", ["none", "antisymmetric"])
def test_deepset_pooled_then_linear_equals_pooling_h1(pooling, symmetry):
    torch.manual_seed(1)
    enc = DeepSetEncoder(D, 4, pair_dim=8, hidden=(8,), pooling=pooling, pair_symmetry=symmetry)
    c, r = torch.randn(5, 6, D), torch.randn(5, 6, D)
    mask = torch.rand(5, 6) > 0.4
    mask[0] = False  # an empty context
    h = enc.pair(torch.cat([c, r], -1))
    if symmetry == "antisymmetric":
        h = h - enc.pair(torch.cat([r, c], -1))
    torch.testing.assert_close(enc.pooled(c, r, mask), masked_pool(h, mask, pooling), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["btl", "dpl", "np-btl", "vpl", "mix-btl"])
def test_prepared_candidates_and_many_users_equal_reward(name):
    torch.manual_seed(2)
    model = build_reward_model(name, option_dim=D, hidden_dim=16, n_hidden_layers=1).eval()
    ctx_c, ctx_r = torch.randn(6, 3, D), torch.randn(6, 3, D)
    z = model.personalize(ctx_c, ctx_r, torch.ones(6, 3, dtype=torch.bool))
    cands = torch.randn(11, D)
    with torch.no_grad():
        expected = model.reward(cands.unsqueeze(0).expand(6, -1, -1), z)
        prepared = model.prepare_candidates(cands)
        torch.testing.assert_close(model.score_candidates(prepared, z), expected, rtol=1e-5, atol=1e-6)
        one = z[:1] if isinstance(z, torch.Tensor) else torch.distributions.Normal(z.mean[:1], z.stddev[:1])
        torch.testing.assert_close(model.score_candidates(prepared, one), expected[:1], rtol=1e-5, atol=1e-6)
    assert len(prepared) == 11
    with pytest.raises(ValueError, match=r"candidates must be \(N, 3\)"):
        model.prepare_candidates(torch.randn(11, D + 1))


def test_a_model_built_under_inference_mode_scores_prepared_candidates():
    # its parameters are inference tensors, which have no version counter for the fused cache's key
    with torch.inference_mode():
        torch.manual_seed(3)
        model = build_reward_model("np-btl", option_dim=D).eval()  # 256 wide: the fused product is used
        assert model.decoder._fused() is not None
        z = model.personalize(torch.randn(2, 3, D), torch.randn(2, 3, D), torch.ones(2, 3, dtype=torch.bool))
        cands = torch.randn(7, D)
        expected = model.reward(cands.unsqueeze(0).expand(2, -1, -1), z)
        torch.testing.assert_close(model.score_candidates(model.prepare_candidates(cands), z), expected,
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stem", ["np-btl-1", "np-btl-2", "vpl-2"])
def test_checkpoints_from_before_the_split_load_and_agree(stem):
    io = load_file(str(OLD / "io.safetensors"))
    model = RewardModel.from_pretrained(OLD / stem)
    with torch.no_grad():
        z = model.personalize(io["context_chosen"], io["context_rejected"], io["context_mask"])
        torch.testing.assert_close(model.reward(io["options"], z), io[f"reward/{stem}"], rtol=1e-5, atol=1e-6)
        prepared = model.prepare_candidates(io["options"][0])
        torch.testing.assert_close(model.score_candidates(prepared, z)[0], io[f"reward/{stem}"][0],
                                   rtol=1e-5, atol=1e-6)


def _table(n_users=6, per_user=50):
    users = [f"u{i % n_users}" for i in range(n_users * per_user)]
    types = [int(u[1:]) % 2 for u in users]
    return users, types


@pytest.mark.parametrize("in_target", [True, False])
@pytest.mark.parametrize("per_user", [35, 400])  # small pools (key sort) and large ones (rejection)
def test_vectorized_sampler_invariants(in_target, per_user):
    users, types = _table(per_user=per_user)
    s = TaskSampler(users, context_range=(0, 10), n_target=20, context_in_target=in_target,
                    user_types=types, seed=3)
    arrays = s.sample_arrays(300, step=4)
    items = arrays.items()
    assert {it.n_context for it in items} == set(range(11))  # N^C per task, 0 included
    for it in items:
        assert len(set(it.target.tolist())) == 20 and {users[i] for i in it.target} == {it.user}
        assert all(types[i] == it.user_type for i in it.target)
        assert len(set(it.context.tolist())) == it.n_context
        if in_target:
            assert set(it.context.tolist()) <= set(it.target.tolist())
            np.testing.assert_array_equal(it.unseen, ~np.isin(it.target, it.context))
        else:
            assert not set(it.context.tolist()) & set(it.target.tolist()) and it.unseen.all()
    # deterministic per (seed, stream, step), different across steps and streams
    again = s.sample_arrays(300, step=4)
    assert np.array_equal(again.target, arrays.target) and np.array_equal(again.context, arrays.context)
    assert not np.array_equal(s.sample_arrays(300, step=5).target, arrays.target)
    assert not np.array_equal(s.sample_arrays(300, step=4, stream=1).target, arrays.target)
    assert {it.n_context for it in s.sample_arrays(20, n_context=7).items()} == {7}


def test_vectorized_draws_are_uniform_over_the_pool():
    users = ["a"] * 25  # k = 20 of 25: the key-sort path; every pair equally likely
    counts = np.bincount(TaskSampler(users, n_target=20, seed=0).sample_arrays(4000).target.ravel(),
                         minlength=25)
    assert abs(counts / counts.sum() - 1 / 25).max() < 0.004
    big = ["a"] * 1000  # the rejection path
    counts = np.bincount(TaskSampler(big, n_target=20, seed=0).sample_arrays(5000).target.ravel(),
                         minlength=1000)
    assert counts.min() > 50 and counts.max() < 160  # expected 100 each


def test_stratified_vectorized_sampler_cycles_types():
    users, types = _table()
    s = TaskSampler(users, n_target=20, user_types=types, stratify_types=True, seed=0)
    t = s.sample_arrays(10).user_type
    assert set(t[::2]) | set(t[1::2]) == {0, 1} and len(set(t[::2])) == 1 and t[0] != t[1]


def test_collate_arrays_equals_collate_of_the_same_items():
    users, types = _table()
    chosen, rejected = torch.randn(len(users), D), torch.randn(len(users), D)
    s = TaskSampler(users, n_target=20, user_types=types, seed=1)
    arrays = s.sample_arrays(32, step=2)
    a, b = collate_arrays(arrays, chosen, rejected), collate(arrays.items(), chosen, rejected)
    for field in ("context_chosen", "context_rejected", "context_mask", "target_chosen", "target_rejected",
                  "target_mask", "target_unseen", "context_index", "target_index", "user_type"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field


def test_prefetching_serves_the_same_batches():
    calls = []

    def batch_fn(step, stream):
        calls.append((step, stream))
        return (step, stream, step * 10 + stream)

    with PrefetchingBatchFn(batch_fn) as pf:
        got = [pf(s, 0) for s in range(5)] + [pf(9, 1), pf(10, 1)]
    assert got == [batch_fn(s, 0) for s in range(5)] + [batch_fn(9, 1), batch_fn(10, 1)]
    assert pf.hits == 5 and pf.misses == 2  # first call and the jump are built in the caller


def test_mixed_precision_auto_and_flag():
    assert TrainConfig(mixed_precision="auto").mixed_precision == "auto"
    assert resolve_precision("no", cpu=True) == "no" and resolve_precision("bf16", cpu=True) == "bf16"
    assert resolve_precision("auto", cpu=True) in ("no", "bf16")
    from pluralign.train.accelerator import cpu_has_native_bf16

    assert resolve_precision("auto", cpu=True) == ("bf16" if cpu_has_native_bf16() else "no")


def test_bf16_autocast_scores_close_to_fp32():
    torch.manual_seed(3)
    model = build_reward_model("np-btl", option_dim=D, hidden_dim=32, n_hidden_layers=1).eval()
    y, c, r = torch.randn(2, 9, D), torch.randn(2, 4, D), torch.randn(2, 4, D)
    m = torch.ones(2, 4, dtype=torch.bool)
    with torch.no_grad():
        ref = model.reward(y, model.personalize(c, r, m))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model.reward(y, model.personalize(c, r, m))
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), ref, rtol=0.05, atol=0.02)


def test_record_cache_reused_and_invalidated_on_change(tmp_path):
    import os

    from pluralign.data.io import write_records
    from pluralign.data.record_cache import cache_path, read_records_cached
    from pluralign.data.records import PreferenceRecord

    recs = [PreferenceRecord(user_id=f"u{i % 3}", prompt="", chosen=[0.1 * i, 1.0], rejected=[2.0, -i / 3],
                             pair_id=f"p{i}") for i in range(12)]
    path = tmp_path / "r.jsonl"
    write_records(recs, path)
    assert read_records_cached(path) == recs and cache_path(path).exists()
    stamp = cache_path(path).stat().st_mtime_ns
    assert read_records_cached(path) == recs  # from the cache (not rewritten)
    assert cache_path(path).stat().st_mtime_ns == stamp
    # same size, same modification time, other contents: the hash catches it
    st = path.stat()
    path.write_text(path.read_text().replace('"u0"', '"u9"'))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = read_records_cached(path)
    assert [r.user_id for r in again] == [r.user_id.replace("u0", "u9") for r in recs]
    assert read_records_cached(path) == again  # the rewritten cache holds the new records


def test_training_with_prefetch_gives_the_same_weights(tmp_path):
    from pluralign.data.synthetic import example41
    from pluralign.train.rewards import RewardTrainConfig, TaskConfig, train_reward_model

    records, _ = example41(n_pairs=600, seed=0)
    weights = []
    for prefetch in (False, True):
        train = TrainConfig(learning_rate=1e-3, max_steps=12, eval_steps=12, save_steps=12,
                            metric_for_best_model="accuracy", greater_is_better=True,
                            disable_tqdm=True, prefetch_batches=prefetch)
        cfg = RewardTrainConfig(model={"hidden_dim": 16, "embed_dim": 16, "z_dim": 8},
                                tasks=TaskConfig(n_tasks=8, val_tasks=16), train=train)
        torch.manual_seed(0)
        model, _ = train_reward_model(records, "np-btl", cfg, tmp_path / f"p{prefetch}")
        weights.append(model.state_dict())
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k


def test_fused_cache_follows_a_fused_adam_step():
    # fused Adam updates parameters in place without bumping their version counters; the
    # cached product must still follow (a stale one made every in-loop validation score the
    # first validation's weights)
    torch.manual_seed(3)
    dec = ConditionedRewardDecoder(D, 5, embed_dim=16, hidden=(16, 16))
    opt = torch.optim.Adam(dec.parameters(), lr=0.1, fused=True)
    y, z = torch.randn(4, 7, D), torch.randn(4, 5)
    for _ in range(2):
        with torch.no_grad():
            torch.testing.assert_close(dec(y, z), dec.forward_concat(y, z), rtol=1e-5, atol=1e-6)
        dec(y, z).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()


def test_in_loop_validation_equals_the_saved_best_checkpoint(tmp_path):
    from pluralign.data.synthetic import example41
    from pluralign.rewards.base import RewardModel
    from pluralign.train.rewards import (RewardTrainConfig, TaskConfig, make_val_fn, split_for_training,
                                         train_reward_model)

    records, _ = example41(n_pairs=600, seed=0)
    cfg = RewardTrainConfig(tasks=TaskConfig(n_tasks=16, val_tasks=32),
                            train=TrainConfig(learning_rate=3e-3, max_steps=30, eval_steps=10, save_steps=10,
                                              metric_for_best_model="nll", load_best_model_at_end=True,
                                              disable_tqdm=True),
                            model={"hidden_dim": 32, "embed_dim": 32, "z_dim": 16})
    _, result = train_reward_model(records, "np-btl", cfg, tmp_path / "run")
    val = split_for_training(records, cfg.split_fractions, cfg.split_seed)["validation"]
    fresh = make_val_fn(val, cfg.tasks)(RewardModel.from_pretrained(tmp_path / "run" / "best").eval())
    assert fresh["nll"] == pytest.approx(result.best_metrics["nll"], rel=1e-4)
