"""pluralign.rl: maze distances, user labels, relabelling (VPL Alg. 2/3, App. D.3), the dataset
format, bad input, and (slow) the quick bench end to end."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pluralign.rewards import build_reward_model
from pluralign.rl.dataset import DatasetError, MazeDataConfig, MazeDataset, load, save
from pluralign.rl.env import MissingRLDependency, require
from pluralign.rl.maze import U_MAZE, GeodesicField, Maze, MazeError, spread_goals
from pluralign.rl.queries import active_answers, latents, random_answers
from pluralign.rl.relabel import batch_norm, max_norm, oracle_rewards, progress_rewards, relabel
from pluralign.rl.users import answer, draw_pairs, label_pairs, preference_records
from pluralign.rl.views import state_view

# U-maze: free cells (1,1) (1,2) (1,3) / (2,3) / (3,1) (3,2) (3,3); (3,1) is 2 cells below
# (1,1) in a straight line but 6 cells away through the maze.
UMAZE = Maze.from_map(U_MAZE, "umaze")


def test_cell_distances_by_hand():
    d = UMAZE.cell_distances((1, 1))
    expected = {(1, 1): 0, (1, 2): 1, (1, 3): 2, (2, 3): 3, (3, 3): 4, (3, 2): 5, (3, 1): 6}
    for cell, v in expected.items():
        assert d[cell] == v
    assert np.isinf(d[0, 0]) and np.isinf(d[2, 1])  # walls


def test_geodesic_follows_the_maze_not_the_straight_line():
    f1 = GeodesicField(UMAZE, (1, 1), res=1)  # res 1: the cell graph, no diagonals possible here
    centres = UMAZE.cell_to_xy(np.array([(1, 2), (2, 3), (3, 1)]))
    np.testing.assert_allclose(f1(centres), [1.0, 3.0, 6.0])
    f = GeodesicField(UMAZE, (1, 1), res=5)
    straight = np.linalg.norm(centres[2] - UMAZE.cell_to_xy(np.array((1, 1))))
    assert straight == pytest.approx(2.0)
    # around the wall: at least the 4 cells of the corridor's inner side, at most the cell path
    assert 4.0 < f(centres[2]) <= 6.0
    assert f(UMAZE.cell_to_xy(np.array((1, 1)))) == pytest.approx(0.0)
    # velocity columns are ignored
    assert f(np.array([*centres[0], 3.0, -2.0])) == pytest.approx(1.0)


def test_cell_xy_round_trip_and_coordinates():
    m = Maze.named("medium")
    assert m.cell_to_xy(np.array((1, 1))).tolist() == [-2.5, 2.5]  # gymnasium-robotics' convention
    cells = np.array(m.free_cells())
    np.testing.assert_array_equal(m.xy_to_cell(m.cell_to_xy(cells)), cells)


def test_bad_maze_and_goals():
    with pytest.raises(MazeError, match="outside the 5x5 map"):
        GeodesicField(UMAZE, (7, 1))
    with pytest.raises(MazeError, match=r"\(2, 1\) is a wall"):
        UMAZE.check_cell((2, 1), "goal cell")
    with pytest.raises(MazeError, match="unknown maze"):
        Maze.named("huge")
    with pytest.raises(MazeError, match="0 \\(free\\) and 1 \\(wall\\)"):
        Maze.from_map([[0, 2]])
    with pytest.raises(MazeError, match="cannot place 8 goals"):
        spread_goals(UMAZE, 8)
    goals = spread_goals(Maze.named("medium"), 10)
    assert len(set(goals)) == 10


def test_label_pairs_by_hand():
    a_chosen, keep = label_pairs(np.array([1.0, 3.0, 2.0]), np.array([2.0, 1.0, 2.0]))
    assert a_chosen.tolist() == [True, False, False]
    assert keep.tolist() == [True, True, False]  # a tie cannot be decided
    flipped, _ = label_pairs(np.array([1.0, 3.0]), np.array([2.0, 1.0]), 1.0, np.random.default_rng(0))
    assert flipped.tolist() == [False, True]
    with pytest.raises(ValueError, match="noise"):
        label_pairs(np.zeros(1), np.ones(1), 1.5)


def test_users_prefer_states_closer_by_shortest_path():
    f = GeodesicField(UMAZE, (1, 1), res=1)
    a = UMAZE.cell_to_xy(np.array([(3, 1), (1, 2)]))  # 6 and 1 steps
    b = UMAZE.cell_to_xy(np.array([(1, 3), (3, 3)]))  # 2 and 4 steps
    chosen, rejected = answer(a, b, f)
    np.testing.assert_allclose(chosen, UMAZE.cell_to_xy(np.array([(1, 3), (1, 2)])))
    states = np.concatenate([UMAZE.cell_to_xy(np.array(UMAZE.free_cells())), np.zeros((7, 2))], 1)
    fields = [GeodesicField(UMAZE, g, 1) for g in [(1, 1), (3, 1)]]
    recs = preference_records(states, fields, n_users=5, pairs_per_user=4, seed=1)
    assert len(recs) == 20 and {r.user_latent for r in recs} == {0, 1}
    assert {r.split for r in recs if r.user_id == "user00004"} == {"validation"}
    for r in recs:
        assert fields[r.user_latent](np.array(r.chosen)) < fields[r.user_latent](np.array(r.rejected))


def test_local_pairs_lie_a_few_steps_apart_in_one_episode():
    rng = np.random.default_rng(0)
    idx = draw_pairs(4000, 50 * 20, rng, local=0.5, episode_len=20, span=3)
    gap = idx[:, 1] - idx[:, 0]
    local = (idx[:, 0] // 20 == idx[:, 1] // 20) & (np.abs(gap) >= 1) & (np.abs(gap) <= 3)
    assert 0.45 < local.mean() < 0.6  # half local, plus the few random pairs that happen to be
    assert (idx >= 0).all() and (idx < 1000).all()
    # no local pairs: the random pairs of before, same stream
    np.testing.assert_array_equal(draw_pairs(10, 1000, np.random.default_rng(1)),
                                  np.random.default_rng(1).integers(1000, size=(10, 2)))
    with pytest.raises(ValueError, match="episodes' length"):
        draw_pairs(10, 1000, rng, local=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        draw_pairs(10, 1000, rng, local=1.5, episode_len=20)


def test_training_contexts_draw_the_asked_number_of_one_users_pairs():
    from pluralign.rl.setting import training_contexts

    cells = UMAZE.cell_to_xy(np.array(UMAZE.free_cells() * 10))  # distinct states: no pair twice
    states = np.concatenate([cells + np.random.default_rng(0).uniform(-0.2, 0.2, cells.shape), np.zeros((70, 2))], 1)
    fields = [GeodesicField(UMAZE, g, 5) for g in [(1, 1), (3, 1)]]
    recs = preference_records(states, fields, n_users=6, pairs_per_user=6, seed=1)
    key = lambda a, b: (tuple(np.float32(a).tolist()), tuple(np.float32(b).tolist()))  # noqa: E731
    by_pair = {key(r.chosen, r.rejected): r for r in recs if r.split == "train"}
    c, rj, mask, goal = training_contexts(recs, 40, np.random.default_rng(0), sizes=(3, 5))
    assert c.shape == (40, 5, 4) and mask.shape == (40, 5)
    assert set(mask.sum(1).tolist()) <= {3, 4, 5} and (mask[:, :3]).all()
    for e in range(40):  # every pair is a training pair of one user, whose goal comes back
        rows = [by_pair[key(c[e, j].numpy(), rj[e, j].numpy())] for j in range(int(mask[e].sum()))]
        assert len({r.user_id for r in rows}) == 1 and rows[0].user_latent == goal[e]
    fixed = training_contexts(recs, 5, np.random.default_rng(0), sizes=(4, 4))[2]
    assert fixed.all() and fixed.shape == (5, 4)
    with pytest.raises(ValueError, match="1 <= min <= max"):
        training_contexts(recs, 5, np.random.default_rng(0), sizes=(5, 3))


def test_scaling_by_hand():
    raw = torch.tensor([[1.0, 2.0], [-4.0, 2.0]])
    comp = torch.tensor([[1.0, 3.0], [2.0, 2.0]])  # means 2 and 2
    assert batch_norm(raw, comp).tolist() == [[0.5, 1.0], [-2.0, 1.0]]
    assert max_norm(raw).tolist() == [[0.25, 0.5], [-1.0, 0.5]]
    np.testing.assert_allclose(oracle_rewards(np.array([0.0, 2.0, 4.0]), 4.0), [1.0, 0.5, 0.0])


def _tiny(name: str, dim: int = 2, **extra):
    torch.manual_seed(0)
    return build_reward_model(name, {"option_dim": dim, "hidden_dim": 8, **extra}).eval()


def test_relabel_alg2_uses_each_episodes_z():
    model = _tiny("vpl", latent_dim=3, embed_dim=8)
    episodes = torch.randn(3, 4, 2)
    z = torch.randn(3, 3)
    r = relabel(model, episodes, z, "none", chunk=2)  # chunks must not mix episodes up
    for e in range(3):
        torch.testing.assert_close(r[e], model.reward(episodes[e:e + 1], z[e:e + 1])[0])
    assert not torch.allclose(r[0], model.reward(episodes[:1], z[1:2])[0])


def test_relabel_alg3_spo_by_hand():
    model = _tiny("btl")
    episodes = torch.randn(2, 3, 2)
    comparison = torch.randn(5, 2)
    z = torch.zeros(2, 0)
    r = relabel(model, episodes, z, "spo", comparison)
    with torch.no_grad():
        rs = model.reward(episodes.reshape(1, 6, 2)).reshape(2, 3)
        rc = model.reward(comparison.unsqueeze(0))[0]
    hand = torch.sigmoid(rs.unsqueeze(-1) - rc).mean(-1)  # mean_{s' in C} p(s > s')
    torch.testing.assert_close(r, hand)
    assert ((r >= 0) & (r <= 1)).all()
    bn = relabel(model, episodes, z, "batchnorm", comparison)
    torch.testing.assert_close(bn, rs / rc.mean())
    mx = relabel(model, episodes, z, "maxnorm")
    torch.testing.assert_close(mx, rs / rs.abs().max())


def test_progress_rewards_are_differences_scaled_together():
    model = _tiny("vpl", latent_dim=3, embed_dim=8)
    now, nxt, z = torch.randn(2, 3, 2), torch.randn(2, 3, 2), torch.randn(2, 3)
    r = progress_rewards(model, now, nxt, z)
    torch.testing.assert_close(r, relabel(model, nxt, z) - relabel(model, now, z))
    # maxnorm divides both ends by one max (over s_t and s_{t+1}), so it is a rescaled difference
    raw = torch.cat([relabel(model, now, z), relabel(model, nxt, z)], 1)
    torch.testing.assert_close(progress_rewards(model, now, nxt, z, "maxnorm"), r / raw.abs().max())
    with pytest.raises(ValueError, match="differ in shape"):
        progress_rewards(model, now, nxt[:, :2], z)


def test_test_users_answer_random_and_active_queries_by_shortest_path():
    model = _tiny("vpl", dim=4, latent_dim=3, embed_dim=8)
    fields = [GeodesicField(UMAZE, g, 1) for g in [(1, 1), (3, 1)]]
    cells = UMAZE.cell_to_xy(np.array(UMAZE.free_cells()))
    rng = np.random.default_rng(0)
    states = np.concatenate([cells[rng.integers(len(cells), size=40)] + rng.uniform(-0.3, 0.3, (40, 2)),
                             np.zeros((40, 2))], 1).astype(np.float32)
    goal_index = np.array([0, 1, 1])
    for ans in (random_answers(goal_index, fields, states, 4, 0.0, seed=0),
                active_answers(model, goal_index, fields, states[:20], states[20:], 4, 0.0, seed=0)):
        assert ans.chosen.shape == (3, 4, 4)
        for i, k in enumerate(goal_index):
            assert (fields[k](ans.chosen[i]) < fields[k](ans.rejected[i])).all()
        c, r = ans.first(2)
        assert c.shape == (3, 2, 4) and latents(model, c, r).shape == (3, 3)
    act = active_answers(model, goal_index, fields, states[:20], states[20:], 4, 0.0, seed=0)
    pairs = {tuple(np.sort([a.tobytes(), b.tobytes()])) for a, b in zip(act.chosen[0], act.rejected[0])}
    assert len(pairs) == 4  # never the same question twice
    # n = 0: every user gets the prior's mean
    c, r = act.first(0)
    z0 = latents(model, c, r)
    np.testing.assert_allclose(z0, np.broadcast_to(z0[:1], z0.shape))


def test_vpl_particle_posterior_gives_the_weighted_medoid_training_users_z():
    """``vpl_posterior="particles"``: z is the particle with the least posterior-expected distance
    to the others (one of the particles, not a mean between them); with no answers, the prior's
    mean as before."""
    from pluralign.active import ParticlePosterior

    model = _tiny("vpl", dim=4, latent_dim=3, embed_dim=8)
    with torch.no_grad():  # rewards that differ between particles (a fresh net's are near-constant)
        for param in model.parameters():
            param.mul_(4)
    torch.manual_seed(0)
    particles = ParticlePosterior(torch.randn(6, 3) * 2)
    chosen, rejected = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    z = latents(model, chosen, rejected, particles)
    for i in range(2):
        w = torch.softmax(particles.log_weights(model, chosen[i], rejected[i]), 0).numpy()
        pz = particles.z.numpy()
        cost = [sum(w[j] * np.linalg.norm(pz[m] - pz[j]) for j in range(6)) for m in range(6)]
        np.testing.assert_allclose(z[i], pz[int(np.argmin(cost))], rtol=1e-6)
    # the answers decide: swapping chosen and rejected picks another particle for some user
    assert (latents(model, rejected, chosen, particles) != z).any()
    np.testing.assert_allclose(latents(model, chosen[:, :0], rejected[:, :0], particles),
                               latents(model, chosen[:, :0], rejected[:, :0]))


def test_vpl_policy_reads_a_reward_profile_or_peak_of_z():
    """``vpl_policy_z``: ``profile`` is the reward under z at fixed anchor states standardised per
    z (a function of z alone, different where the rewards rank the anchors differently); ``peak``
    the position of the anchor with the highest reward; ``latent`` z itself."""
    from pluralign.rl.config import RLBenchConfig
    from pluralign.rl.latents import ANCHORS, policy_latent, reward_peak, reward_profile, vpl_policy_reads

    model = _tiny("vpl", dim=4, latent_dim=3, embed_dim=8)
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(4)
    torch.manual_seed(1)
    anchors, z = torch.randn(7, 4), torch.randn(5, 3).numpy()
    prof = reward_profile(model, anchors, z, chunk=2)  # chunks join in order
    assert prof.shape == (5, 7)
    np.testing.assert_allclose(prof.mean(1), 0.0, atol=1e-5)
    np.testing.assert_allclose(prof.std(1, ddof=1), 1.0, rtol=1e-4)
    with torch.no_grad():
        raw = model.reward(anchors.unsqueeze(0).expand(5, -1, -1), torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(prof, (raw - raw.mean(1, keepdims=True)) / raw.std(1, ddof=1, keepdims=True),
                               rtol=1e-4, atol=1e-5)
    assert not np.allclose(prof[0], prof[1])
    xy = np.arange(14, dtype=np.float32).reshape(7, 2)
    np.testing.assert_array_equal(reward_peak(model, anchors, xy, z, chunk=2), xy[raw.argmax(1)])

    states = np.random.default_rng(0).normal(size=(3000, 4)).astype(np.float32)
    double = lambda s: 2 * s  # noqa: E731  (a view the anchors go through; positions are the states')
    assert vpl_policy_reads("latent", model, states, double, 3) is None
    assert policy_latent("vpl", z, None, None) is z
    for how in ("profile", "peak"):
        reads = vpl_policy_reads(how, model, states, double, 3)
        picked = states[np.random.default_rng(3).choice(len(states), ANCHORS[how], replace=False)]
        want = (reward_profile(model, torch.from_numpy(2 * picked), z) if how == "profile"
                else reward_peak(model, torch.from_numpy(2 * picked), picked[:, :2], z))
        np.testing.assert_array_equal(policy_latent("vpl", z, None, reads), want)
        assert want.shape == (5, 128 if how == "profile" else 2)
    with pytest.raises(ValueError, match="vpl_policy_z must be one of"):
        RLBenchConfig(vpl_policy_z="goal")


def test_the_oracle_is_told_the_goal_as_its_position_or_a_one_hot():
    from pluralign.rl.latents import oracle_latent

    goals_xy = np.array([[-1.0, 2.0], [0.5, 0.5], [3.0, -2.0]])
    idx = np.array([2, 0, 2])
    assert np.array_equal(oracle_latent(idx, goals_xy, "position"), [[3.0, -2.0], [-1.0, 2.0], [3.0, -2.0]])
    assert np.array_equal(oracle_latent(idx, goals_xy, "goal"), [[0, 0, 1], [1, 0, 0], [0, 0, 1]])
    assert oracle_latent(idx, goals_xy, "goal").dtype == np.float32
    with pytest.raises(ValueError, match="oracle_z must be one of"):
        oracle_latent(idx, goals_xy, "cell")


def test_mix_btl_users_get_posterior_weights_over_its_components():
    """Mix-BTL in the maze: active queries use its exact posterior (no particles), z is the log
    posterior weights, and the policy reads the weights themselves (bounded, summing to 1)."""
    from pluralign.rl.config import RLBenchConfig, parse_policy, reward_train_config
    from pluralign.rl.latents import policy_latent

    model = _tiny("mix-btl", dim=4, n_components=5)
    fields = [GeodesicField(UMAZE, g, 1) for g in [(1, 1), (3, 1)]]
    cells = UMAZE.cell_to_xy(np.array(UMAZE.free_cells()))
    rng = np.random.default_rng(1)
    states = np.concatenate([cells[rng.integers(len(cells), size=40)] + rng.uniform(-0.3, 0.3, (40, 2)),
                             np.zeros((40, 2))], 1).astype(np.float32)
    act = active_answers(model, np.array([0, 1]), fields, states[:20], states[20:], 3, 0.0, seed=0)
    z = latents(model, *act.first(3))
    w = policy_latent("mix-btl", z)
    assert z.shape == (2, 5) and (z <= 0).all()
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-5)
    assert (w >= 0).all() and (w <= 1).all()
    np.testing.assert_array_equal(policy_latent("vpl", z), z)  # other models' z as it is
    assert parse_policy("mix-btl+spo") == ("mix-btl", "spo")
    fields = reward_train_config("mix-btl", RLBenchConfig(mix_lapse=0.1)).model
    assert fields["n_components"] == 16 and fields["lapse"] == 0.1 and fields["learn_lapse"] is False
    assert "lapse" not in reward_train_config("mix-btl", RLBenchConfig()).model  # learnt by default
    r = relabel(model, torch.from_numpy(states[:8].reshape(2, 4, 4)), torch.from_numpy(z), "spo",
                torch.from_numpy(states[20:30]))
    assert r.shape == (2, 4) and ((r >= 0) & (r <= 1)).all()


def test_mix_btl_relabels_with_one_of_its_rewards_drawn_from_its_prior():
    """``mix_relabel_z="prior"`` (Alg. 2's z from the prior): each episode gets one component, drawn
    with the prior's probabilities; its reward is that component's alone and the policy reads a
    one-hot weight vector, at test time the most probable component's."""
    from pluralign.rl.config import RLBenchConfig
    from pluralign.rl.latents import relabel_latents, component_codes, policy_latent

    model = _tiny("mix-btl", dim=4, n_components=3)
    with torch.no_grad():
        model.prior_logits.copy_(torch.log(torch.tensor([0.7, 0.3, 1e-9])))
    z = relabel_latents("mix-btl", model, [], 4000, np.random.default_rng(0), mix_z="prior")
    w = policy_latent("mix-btl", z.numpy())
    assert set(np.unique(w)) == {0.0, 1.0} and (w.sum(1) == 1).all()
    np.testing.assert_allclose(w.mean(0), [0.7, 0.3, 0.0], atol=0.03)
    episodes = torch.randn(5, 6, 4)
    per_component = model.net(episodes)  # (5, 6, 3)
    picked = w[:5].argmax(1)
    expected = per_component[torch.arange(5), :, torch.from_numpy(picked)]
    torch.testing.assert_close(relabel(model, episodes, z[:5], "none"), expected)
    # at test time such a policy reads the most probable component, one-hot, also when the
    # posterior is split over near-copies
    split = np.log(np.array([[0.3, 0.3, 0.4], [0.5, 0.25, 0.25]]))
    one_hot = component_codes(model, "component", np.zeros((2, 4), np.float32))
    np.testing.assert_array_equal(policy_latent("mix-btl", split, one_hot), [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(policy_latent("mix-btl", z[:5].numpy(), one_hot), w[:5])
    # or the position of the state each component's reward ranks highest (a goal estimate)
    states = np.random.default_rng(2).normal(size=(50, 4)).astype(np.float32)
    peaks = component_codes(model, "peak", states, lambda x: x)
    top = model.net(torch.from_numpy(states)).argmax(0).numpy()
    np.testing.assert_array_equal(peaks, states[top, :2])
    np.testing.assert_array_equal(policy_latent("mix-btl", split, peaks), states[top[[2, 0]], :2])
    with pytest.raises(ValueError, match="mix_relabel_z must be prior or posterior"):
        RLBenchConfig(mix_relabel_z="sample")
    with pytest.raises(ValueError, match="mix_policy_z must be component or peak"):
        RLBenchConfig(mix_policy_z="goal")


def test_pcell_view_by_hand():
    # U-maze free cells in order: (1,1) (1,2) (1,3) (2,3) (3,1) (3,2) (3,3)
    view = state_view("pcell", UMAZE)
    at = UMAZE.cell_to_xy(np.array([(1, 1), (3, 1), (2, 3)])) + np.array([[0.3, -0.2], [0, 0], [-0.4, 0.4]])
    states = np.concatenate([at, np.ones((3, 2))], 1)
    out = view(states)
    assert out.shape == (3, 2 + 7)
    np.testing.assert_allclose(out[:, :2], at, rtol=1e-6)  # position kept, velocities dropped
    assert out[:, 2:].argmax(1).tolist() == [0, 4, 3] and (out[:, 2:].sum(1) == 1).all()
    # a wall cell or a point off the map has no cell: all zeros
    off = np.concatenate([UMAZE.cell_to_xy(np.array([(2, 1)])), [[9.0, 9.0]]])
    assert view(np.concatenate([off, np.zeros((2, 2))], 1))[:, 2:].sum() == 0
    assert view(states[None]).shape == (1, 3, 9)  # any leading shape (episodes)
    np.testing.assert_array_equal(state_view("raw", UMAZE)(states), states.astype(np.float32))
    with pytest.raises(ValueError, match="unknown state view 'grid'"):
        state_view("grid", UMAZE)


def test_models_read_the_view_while_users_answer_on_states():
    from pluralign.rl.config import RLBenchConfig
    from pluralign.rl.setting import goal_setting, random_test_answers

    ds = _fake_dataset()
    ds.observations[:] = np.concatenate([Maze.named("medium").cell_to_xy(np.array([(1, 1), (6, 5), (6, 6), (4, 4),
                                                                                   (2, 2), (3, 3)])),
                                         np.zeros((6, 2))], 1)
    raw = RLBenchConfig(n_users=4, pairs_per_user=3, refine_pairs=0, eval_per_goal=1, seed=0, state_view="raw")
    seen = dataclasses.replace(raw, state_view="pcell")
    a, b = goal_setting(2, ds, raw), goal_setting(2, ds, seen)
    view = state_view("pcell", ds.maze)
    assert len(a.records[0].chosen) == 4 and len(b.records[0].chosen) == 2 + len(ds.maze.free_cells())
    for ra, rb in zip(a.records, b.records):  # the same answers, read through the view
        np.testing.assert_allclose(rb.chosen, view(np.array(ra.chosen)), atol=1e-6)
    ans_a, ans_b = random_test_answers(a, 2, raw), random_test_answers(b, 2, seen)
    np.testing.assert_allclose(ans_b.chosen, view(ans_a.chosen), atol=1e-6)
    model = _tiny("vpl", dim=ans_b.chosen.shape[-1], latent_dim=3, embed_dim=8)
    act = active_answers(model, np.array([0, 1]), b.fields, *b.pool_pairs, 2, 0.0, seed=0, view=view)
    assert act.chosen.shape == (2, 2, 2 + len(ds.maze.free_cells()))
    for i, k in enumerate([0, 1]):  # answered by the user's distance (pcell keeps the position first)
        assert (b.fields[k](act.chosen[i, :, :2]) <= b.fields[k](act.rejected[i, :, :2])).all()  # ties: at random
    with pytest.raises(ValueError, match="unknown state view"):
        RLBenchConfig(state_view="grid")


def test_second_round_pairs_come_from_the_states_the_model_rates_highest_for_the_user():
    """``refine_pairs``: each user's second-round pairs are drawn among the pool states the model,
    personalised with that user's first-round answers, rates highest; the user answers them by
    shortest path, and keeps their id, split and goal."""
    from pluralign.rl.refine import refine_records, top_states

    medium = Maze.named("medium")
    view = state_view("pcell", medium)
    fields = [GeodesicField(medium, g) for g in [(1, 1), (6, 6)]]
    rng = np.random.default_rng(0)
    cells = medium.cell_to_xy(np.array(medium.free_cells()))
    pool = np.concatenate([cells[rng.integers(len(cells), size=200)] + rng.uniform(-0.4, 0.4, (200, 2)),
                           np.zeros((200, 2))], 1).astype(np.float32)
    first = preference_records(pool, fields, n_users=6, pairs_per_user=4, seed=1)
    first = [dataclasses.replace(r, chosen=view(np.array(r.chosen)).tolist(),
                                 rejected=view(np.array(r.rejected)).tolist()) for r in first]
    model = _tiny("mix-btl", dim=2 + len(medium.free_cells()), n_components=3)
    out = refine_records(first, model, pool, view, fields, n_pairs=5, top=0.05, seed=2)
    assert len(out) == 6 * (4 + 5)
    for u in range(6):
        own = [r for r in first if r.user_id == f"user{u:05d}"]
        mine = [r for r in out if r.user_id == own[0].user_id]
        assert mine[:4] == own and len(mine) == 9
        assert {(r.split, r.user_latent) for r in mine} == {(own[0].split, own[0].user_latent)}
        c = torch.tensor([[r.chosen for r in own]])
        rj = torch.tensor([[r.rejected for r in own]])
        (top,) = top_states(model, c, rj, torch.from_numpy(view(pool)), 10)
        z = torch.from_numpy(latents(model, c, rj))
        rewards = model.reward(torch.from_numpy(view(pool))[None], z)[0].detach().numpy()
        assert rewards[top].min() >= np.delete(rewards, top).max()  # the 5 % of 200 it rates highest
        allowed = view(pool[top])
        field = fields[own[0].user_latent]
        for r in mine[4:]:
            for s in (r.chosen, r.rejected):
                assert np.abs(allowed - np.array(s)).max(1).min() < 1e-5
            assert field(np.array(r.chosen[:2])) < field(np.array(r.rejected[:2]))
    with pytest.raises(ValueError, match="at least 1 second-round pair"):
        refine_records(first, model, pool, view, fields, n_pairs=0)
    with pytest.raises(ValueError, match="same number of first-round pairs"):
        refine_records(first[1:], model, pool, view, fields, n_pairs=2)
    from pluralign.rl.config import RLBenchConfig

    with pytest.raises(ValueError, match="at least 4 first-round pairs"):
        RLBenchConfig(pairs_per_user=20, refine_pairs=17)
    with pytest.raises(ValueError, match="refine_model must be one of"):
        RLBenchConfig(refine_pairs=8, refine_model="btl")


def test_relabel_bad_input():
    model = _tiny("btl", dim=4)
    with pytest.raises(ValueError, match="trained on states of size 4"):
        relabel(model, torch.zeros(1, 3, 2), torch.zeros(1, 0))
    with pytest.raises(ValueError, match="needs a comparison set"):
        relabel(model, torch.zeros(1, 3, 4), torch.zeros(1, 0), "spo")
    with pytest.raises(ValueError, match="unknown reward scaling"):
        relabel(model, torch.zeros(1, 3, 4), torch.zeros(1, 0), "zscore")


def _fake_dataset(maze: str = "medium") -> MazeDataset:
    rng = np.random.default_rng(0)
    n = 6
    obs = rng.normal(size=(n, 4)).astype(np.float32)
    return MazeDataset(obs, rng.uniform(-1, 1, (n, 2)).astype(np.float32), obs + 1, Maze.named(maze),
                       MazeDataConfig(maze=maze, n_episodes=2, episode_len=3))


def test_dataset_round_trip_and_wrong_environment(tmp_path):
    ds = _fake_dataset()
    save(ds, tmp_path / "d")
    back = load(tmp_path / "d", "medium")
    for k in ("observations", "actions", "next_observations"):
        np.testing.assert_array_equal(getattr(back, k), getattr(ds, k))
    assert back.config == ds.config and back.n_episodes == 2
    assert back.episodes(back.observations).shape == (2, 3, 4)
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert man["env"] == "PointMaze_Medium-v3" and man["observation_fields"] == ["x", "y", "vx", "vy"]
    with pytest.raises(DatasetError, match="PointMaze_Medium-v3.*umaze"):
        load(tmp_path / "d", "umaze")
    man["format"] = "minari/0"
    (tmp_path / "d" / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(DatasetError, match="field 'format'"):
        load(tmp_path / "d")
    with pytest.raises(DatasetError, match="no manifest.json"):
        load(tmp_path)


def test_missing_dependency_names_the_extra():
    with pytest.raises(MissingRLDependency, match=r"pip install 'pluralign\[rl\]'"):
        require("pluralign_no_such_module")


def test_simulator_matches_gymnasium_robotics():
    pytest.importorskip("mujoco")
    pytest.importorskip("gymnasium_robotics")
    from pluralign.rl.env import MazeSim

    m = Maze.named("medium")
    sim = MazeSim(m, 2)
    obs = sim.reset(m.cell_to_xy(np.array([(1, 1), (6, 6)])))
    np.testing.assert_allclose(obs[:, :2], [[-2.5, 2.5], [2.5, -2.5]], atol=1e-6)
    for _ in range(30):
        obs = sim.step(np.array([[1.0, 0.0], [-1.0, 0.0]]))
    assert obs[0, 0] > -2.5 and obs[1, 0] < 2.5 and abs(obs[0, 1] - 2.5) < 1e-3  # pushed along x only


@pytest.mark.slow
@pytest.mark.parametrize("view,refine,posterior,policy_z", [("raw", 0, "variational", "latent"),
                                                           ("pcell", 0, "variational", "peak"),
                                                           ("pcell", 8, "particles", "profile")])
def test_quick_bench_end_to_end(tmp_path, view, refine, posterior, policy_z):
    pytest.importorskip("d3rlpy")
    pytest.importorskip("mujoco")
    from pluralign.rl.bench import run_bench
    from pluralign.rl.config import RLBenchConfig
    from pluralign.rl.iql import IQLSettings

    cfg = RLBenchConfig.quick(policies=("np-btl", "vpl+spo", "mix-btl", "oracle"), context_sizes=(0, 2),
                              data=MazeDataConfig(n_episodes=20, episode_len=50), n_users=60,
                              reward_steps=200, iql=IQLSettings(steps=60, hidden=32), eval_per_goal=2,
                              horizon=20, state_view=view, refine_pairs=refine, vpl_posterior=posterior,
                              vpl_policy_z=policy_z, oracle_z="goal" if refine else "position")
    (doc,) = run_bench(cfg, tmp_path, log=lambda *_: None)
    if refine:  # the first round's Mix-BTL chose each labelling user's last 8 pairs
        assert (tmp_path / f"k2-seed0-{view}-refine8" / "rewards" / "mix-btl-round1").is_dir()
    saved = json.loads((tmp_path / "maze-2goals.json").read_text())
    assert saved["task"] == "maze-medium-2goals" and saved["context_sizes"] == [0, 2]
    assert set(saved["models"]) == {"np-btl", "vpl+spo", "mix-btl", "oracle", "np-btl/active", "vpl+spo/active",
                                    "mix-btl/active"}
    for curve in saved["models"].values():
        for s in curve.values():
            assert 0.0 <= s["success"] <= 1.0 and s["n"] == 4 and not math.isnan(s["stderr"])
    # the users' labels are learnable: NP-BTL (fastest to train) is well above chance on new
    # validation users after 200 steps (it reaches ~0.9 by 300)
    assert saved["reward_val_accuracy"]["np-btl"] > 0.7
    assert (tmp_path / "maze-2goals.png").stat().st_size > 1000
    assert (tmp_path / "maze-2goals.csv").read_text().startswith("task,model,n_queries")
    # a second run reuses the saved dataset only if it was made with the same settings
    assert load(tmp_path / "dataset", "medium").config == cfg.data


@pytest.mark.slow
def test_a_policy_appended_to_the_list_leaves_the_others_as_they_were(tmp_path):
    """Records compare the default list's policies across the dates policies joined it (Mix-BTL +
    max-norm, VPL + max-norm, each appended last): the others, in this and the next goal count,
    must draw, train and roll out exactly as without it."""
    pytest.importorskip("d3rlpy")
    pytest.importorskip("mujoco")
    from pluralign.rl.bench import run_bench
    from pluralign.rl.config import RLBenchConfig
    from pluralign.rl.iql import IQLSettings

    def run(policies: tuple[str, ...], out: Path) -> list[dict]:
        cfg = RLBenchConfig.quick(goal_counts=(2, 3), policies=policies, context_sizes=(0, 2),
                                  data=MazeDataConfig(n_episodes=20, episode_len=50), n_users=60,
                                  reward_steps=100, iql=IQLSettings(steps=40, hidden=32), eval_per_goal=2,
                                  horizon=20, refine_pairs=0, seed=3)
        return run_bench(cfg, out, log=lambda *_: None)

    before = run(("vpl+spo", "oracle"), tmp_path / "before")
    after = run(("vpl+spo", "oracle", "vpl+maxnorm"), tmp_path / "after")
    for a, b in zip(before, after):
        assert {"vpl+maxnorm", "vpl+maxnorm/active"} <= set(b["models"])
        for name in a["models"]:
            assert b["models"][name] == a["models"][name] and b["paths"][name] == a["paths"][name]


@pytest.mark.slow
def test_policies_trained_in_workers_give_what_one_at_a_time_gives(tmp_path):
    """jobs=2 (each policy's IQL and rollouts in a worker process) against jobs=1 (one at a time,
    in this process, as before workers): the same successes, per-goal rates and paths, in the same
    order, for every kind of policy and two goal counts."""
    pytest.importorskip("d3rlpy")
    pytest.importorskip("mujoco")
    from pluralign.rl.bench import run_bench
    from pluralign.rl.config import RLBenchConfig
    from pluralign.rl.iql import IQLSettings

    def run(jobs: int) -> list[dict]:
        cfg = RLBenchConfig.quick(goal_counts=(2, 3), policies=("btl", "np-btl", "vpl+spo", "oracle", "mix-btl+maxnorm"),
                                  context_sizes=(0, 2), data=MazeDataConfig(n_episodes=20, episode_len=50),
                                  n_users=60, reward_steps=100, iql=IQLSettings(steps=40, hidden=32),
                                  eval_per_goal=2, horizon=20, seed=3, jobs=jobs)
        return run_bench(cfg, tmp_path / f"jobs{jobs}", log=lambda *_: None)

    one, two = run(1), run(2)
    for a, b in zip(one, two):
        for key in ("models", "per_goal", "paths", "reward_val_accuracy"):
            assert list(b[key]) == list(a[key]) and b[key] == a[key]
        assert list(b["timing_s"]) == list(a["timing_s"])
    assert json.loads((tmp_path / "jobs2" / "maze-3goals.json").read_text())["models"] == two[1]["models"]


@pytest.mark.slow
def test_a_script_without_a_main_guard_is_told_what_to_do(tmp_path):
    """Workers are spawned and import the script that started them: one that runs the bench
    unguarded gets the fix (a ``__main__`` guard or jobs=1), not a bare BrokenProcessPool, and its
    workers do not run the bench again."""
    import subprocess
    import sys

    pytest.importorskip("d3rlpy")
    pytest.importorskip("mujoco")
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from pluralign.rl.bench import run_bench\n"
        "from pluralign.rl.config import RLBenchConfig\n"
        "from pluralign.rl.dataset import MazeDataConfig\n"
        "from pluralign.rl.iql import IQLSettings\n"
        "run_bench(RLBenchConfig.quick(policies=('btl', 'oracle'), context_sizes=(0,), n_users=20,\n"
        "          refine_pairs=0, data=MazeDataConfig(n_episodes=10, episode_len=50),\n"
        "          reward_steps=10, iql=IQLSettings(steps=5, hidden=8), eval_per_goal=1, horizon=5,\n"
        "          comparison_size=50, active_pool=20, jobs=2), 'out', log=lambda *_: None)\n")
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode != 0
    assert "if __name__ == \"__main__\":" in res.stderr and "jobs=1" in res.stderr
    assert "a worker process is importing the script that started it" in res.stderr  # the worker stopped first


@pytest.mark.slow
def test_the_quick_command_runs_every_default_policy(tmp_path):
    """Issue 14: ``pluralign rl bench --quick`` as a user types it (every default policy, the CI
    form's sizes), with its JSON in the benches' schema, its CSV and its maze picture."""
    pytest.importorskip("d3rlpy")
    pytest.importorskip("mujoco")
    from typer.testing import CliRunner

    from pluralign.cli import app
    from pluralign.rl.config import DEFAULT_POLICIES
    from pluralign.rl.report import validate

    res = CliRunner().invoke(app, ["rl", "bench", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "maze-2goals.json").read_text())
    validate(doc)
    assert doc["context_sizes"] == [0, 4] and doc["config"]["policies"] == list(DEFAULT_POLICIES)
    active = {f"{p}/active" for p in DEFAULT_POLICIES if p.split("+")[0] in ("np-btl", "vpl", "mix-btl")}
    assert set(doc["models"]) == set(DEFAULT_POLICIES) | active
    assert "target vpl+spo within 10 points of the oracle" in res.output
    assert (tmp_path / "maze-2goals.png").stat().st_size > 1000
    assert (tmp_path / "maze-2goals.csv").read_text().startswith("task,model,n_queries")


def test_cli_iql_flags_reach_the_config(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import pluralign.rl.bench
    from pluralign.cli import app

    seen = []
    monkeypatch.setattr(pluralign.rl.bench, "run_bench", lambda cfg, *a, **k: seen.append(cfg))
    res = CliRunner().invoke(app, ["rl", "bench", "--iql-hidden", "256", "--iql-layers", "3", "--iql-steps", "10",
                                   "--comparison-size", "1000", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    for k in (2, 10):  # a value given sets every goal count's IQL
        iql = seen[0].iql_for(k)
        assert (iql.hidden, iql.layers, iql.steps, seen[0].comparison_size) == (256, 3, 10, 1000)
    CliRunner().invoke(app, ["rl", "bench", "--out", str(tmp_path)])
    # defaults: VPL Table 3 sizes IQL by the number of users; here 2 x 256 up to five goals, 2 x 512 and
    # 9,000 steps beyond
    assert [(seen[1].iql_for(k).hidden, seen[1].iql_for(k).layers, seen[1].iql_for(k).steps) for k in (2, 5, 6, 10)] \
        == [(256, 2, 6000)] * 2 + [(512, 2, 9000)] * 2
    assert seen[1].comparison_size == 500 and seen[1].oracle_z == "goal" and seen[1].jobs == 0  # one per core
    CliRunner().invoke(app, ["rl", "bench", "--quick", "--goals", "10", "--out", str(tmp_path)])
    assert seen[2].iql_for(10) == seen[2].iql_for(2) and seen[2].iql_for(10).hidden == 128  # quick: one small size


def test_jobs_are_one_per_core_at_most_one_per_policy_and_run_in_process_at_one():
    from concurrent.futures import Future

    from pluralign.rl.workers import InProcess, policy_pool, resolve_jobs, usable_cores

    assert resolve_jobs(0, 100) == usable_cores() and resolve_jobs(0, 1) == 1
    assert resolve_jobs(4, 2) == 2 and resolve_jobs(3, 8) == 3
    with pytest.raises(ValueError, match="jobs must be >= 0"):
        resolve_jobs(-2, 8)
    with policy_pool(1) as pool:
        assert isinstance(pool, InProcess)
        ok, bad = pool.submit(divmod, 7, 2), pool.submit(divmod, 7, 0)
    assert isinstance(ok, Future) and ok.result() == (3, 1)
    with pytest.raises(ZeroDivisionError):  # raised where the result is read, as from a worker
        bad.result()


def test_the_bench_trains_one_policy_at_a_time_where_workers_would_change_the_draws():
    from pluralign.rl.bench import bench_jobs
    from pluralign.rl.config import RLBenchConfig

    jobs, why = bench_jobs(RLBenchConfig(jobs=2))
    assert jobs == 2 and "2 policies train at once" in why
    assert bench_jobs(RLBenchConfig(jobs=1)) == (1, None)
    # VPL's prior samples (Alg. 2) come from torch's global generator, reseeded by each IQL run
    jobs, why = bench_jobs(RLBenchConfig(jobs=2, vpl_relabel_z="prior"))
    assert jobs == 1 and "vpl_relabel_z=prior" in why
    assert bench_jobs(RLBenchConfig(jobs=2, vpl_relabel_z="prior", policies=("btl", "oracle")))[0] == 2


def test_cli_bad_input_is_a_clear_error(tmp_path):
    from typer.testing import CliRunner

    from pluralign.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["rl", "bench", "--policy", "ppo", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown policy 'ppo'" in res.output
    res = runner.invoke(app, ["rl", "bench", "--comparison-size", "0", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "comparison_size must be between 1 and the dataset's 40000 states" in res.output
    res = runner.invoke(app, ["rl", "bench", "--local-pairs", "2", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "local_pairs must be in [0, 1]" in res.output
    res = runner.invoke(app, ["rl", "bench", "--users", "1", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "at least 2 users" in res.output
    res = runner.invoke(app, ["rl", "bench", "--relabel-context", "8-4", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "1 <= min <= max" in res.output
    res = runner.invoke(app, ["rl", "bench", "--relabel-context", "many", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "MIN-MAX or N" in res.output
    res = runner.invoke(app, ["rl", "bench", "--refine-pairs", "25", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "at least 4 first-round pairs" in res.output
    res = runner.invoke(app, ["rl", "bench", "--mix-relabel-z", "mean", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "mix_relabel_z must be prior or posterior" in res.output
    res = runner.invoke(app, ["rl", "bench", "--vpl-posterior", "mode", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "vpl_posterior must be variational or particles" in res.output
    res = runner.invoke(app, ["rl", "bench", "--vpl-policy-z", "goal", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "vpl_policy_z must be one of" in res.output
    res = runner.invoke(app, ["rl", "bench", "--oracle-z", "cell", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "oracle_z must be one of ('position', 'goal')" in res.output
    res = runner.invoke(app, ["rl", "bench", "--jobs", "-1", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "jobs must be >= 0 (0: one per CPU core), got -1" in res.output
    res = runner.invoke(app, ["rl", "bench", "--iql-hidden", "0", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "hidden, layers and batch_size must be >= 1" in res.output
    save(_fake_dataset("umaze"), tmp_path / "u")
    res = runner.invoke(app, ["rl", "bench", "--quick", "--dataset", str(tmp_path / "u"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "PointMaze_UMaze-v3" in res.output and "'medium'" in res.output
