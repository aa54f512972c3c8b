"""pluralign.Personalizer on runs trained for a few steps: a numeric run (Example 4.3) and a
text run through a tiny random sentence encoder saved as a folder (tests/own_data.py)."""

from __future__ import annotations

import json

import pytest
import torch

import pluralign
from pluralign.data.synthetic import example43
from pluralign.features.options import EmbedderError, open_embedder
from pluralign.personalizer import Personalizer, Ranked, RunFolderError
from pluralign.train.config import TrainConfig
from pluralign.train.rewards import RewardTrainConfig, TaskConfig
from pluralign.train.run import train_run

from own_data import PETS, answer, pet_records, tiny_encoder_dir


def config(steps: int, **model) -> RewardTrainConfig:
    return RewardTrainConfig(
        model={"hidden_dim": 32, **model},
        tasks=TaskConfig(n_tasks=32, n_target=8, context_max=4, val_tasks=64),
        train=TrainConfig(learning_rate=3e-3, max_steps=steps, eval_steps=steps, save_steps=steps,
                          logging_steps=steps, metric_for_best_model="accuracy", greater_is_better=True,
                          load_best_model_at_end=True, disable_tqdm=True))


CONTEXT = {"embed_dim": 32, "pooling": "sum"}


@pytest.fixture(scope="module")
def numeric_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("numeric")
    records, _ = example43(n_pairs=400, rho=0.0, seed=0, split=None)
    torch.manual_seed(0)
    runs = {}
    for name, fields in (("btl", {}), ("dpl", {}), ("np-btl", {**CONTEXT, "z_dim": 32}),
                         ("vpl", {**CONTEXT, "latent_dim": 4})):
        train_run(records, name, config(20, **fields), root / name, log=lambda s: None)
        runs[name] = root / name
    return runs


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    enc = tiny_encoder_dir(root / "encoder")
    emb = open_embedder(str(enc), cache_dir=root / "cache")
    emb.progress = False
    torch.manual_seed(0)
    train_run(pet_records(), "np-btl", config(150, **CONTEXT, z_dim=32), root / "run", embedder=emb,
              data_file="pets.jsonl", log=lambda s: None)
    return root


def test_exported_lazily():
    assert pluralign.Personalizer is Personalizer


def test_numeric_rank_score_and_shapes(numeric_runs):
    p = Personalizer.from_pretrained(numeric_runs["np-btl"])
    assert p.model_name == "np-btl" and p.has_latent and p.option_dim == 2 and p.embedder is None
    cands = [[1.0, -1.0], [-1.0, 1.0], [0.0, 0.0]]
    a = p.user([{"chosen": [2.0, 0.0], "rejected": [0.0, 2.0]}])
    b = p.user([{"chosen": [0.0, 2.0], "rejected": [2.0, 0.0]}])
    assert a.n_choices == 1 and a.context_chosen.shape == (1, 1, 2) and a.z.shape == (1, 32)
    scores = p.score(None, cands, [a, b, p.user([])])
    assert scores.shape == (3, 3)
    ranked = p.rank(None, cands, user=a)
    assert all(isinstance(r, Ranked) for r in ranked) and sorted(r.index for r in ranked) == [0, 1, 2]
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    assert torch.allclose(torch.tensor([r.score for r in sorted(ranked, key=lambda r: r.index)]), scores[0])
    assert ranked[0].spread is None
    with pytest.raises(ValueError, match="trained on numeric"):
        p.rank("q", ["a text"])
    with pytest.raises(ValueError, match="candidate 0: a vector of 3 numbers; the model expects 2"):
        p.rank(None, [[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="choice 0: field 'rejected': missing"):
        p.user([{"chosen": [1.0, 0.0]}])


@pytest.mark.parametrize("name", ["btl", "dpl"])
def test_btl_and_dpl_rank_the_same_for_everyone(numeric_runs, name):
    p = Personalizer.from_pretrained(numeric_runs[name])
    assert not p.has_latent
    a = p.user([{"chosen": [2.0, 0.0], "rejected": [0.0, 2.0]}])
    b = p.user([{"chosen": [0.0, 2.0], "rejected": [2.0, 0.0]}])
    assert a.z.shape == (1, 0)
    cands = [[1.0, -1.0], [-1.0, 1.0], [0.5, 0.2]]
    assert [r.index for r in p.rank(None, cands, a)] == [r.index for r in p.rank(None, cands, b)]


def test_vpl_reports_the_posterior_spread(numeric_runs):
    p = Personalizer.from_pretrained(numeric_runs["vpl"])
    u = p.user([{"chosen": [2.0, 0.0], "rejected": [0.0, 2.0]}] * 3)
    ranked = p.rank(None, [[1.0, -1.0], [-1.0, 1.0]], user=u)
    assert all(r.spread is not None and r.spread > 0 for r in ranked)
    assert p.spread(None, [[1.0, -1.0]], [u, p.user([])]).shape == (2, 1)


@pytest.mark.slow
def test_text_run_personalises_two_new_people(text_run):
    meta = json.loads((text_run / "run" / "run.json").read_text())
    assert meta["features"]["kind"] == "text" and meta["features"]["embedder"]["pooling"] == "mean"
    assert meta["split"] == {"method": "seeded", "group_by": "prompt", "seed": 0, "fractions": [0.5, 0.25, 0.25]}
    p = Personalizer.from_pretrained(text_run / "run", cache_dir=text_run / "cache")
    assert p.embedder is not None and p.option_dim == 32
    cands = [answer(x) for x in PETS]
    cat = p.user([{"prompt": "new", "chosen": answer("cat"), "rejected": answer("dog")},
                  {"prompt": "other", "chosen": answer("cat"), "rejected": answer("fish")}])
    dog = p.user([{"prompt": "new", "chosen": answer("dog"), "rejected": answer("cat")},
                  {"prompt": "other", "chosen": answer("dog"), "rejected": answer("fish")}])
    assert p.rank("a new question", cands, cat)[0].candidate == answer("cat")
    assert p.rank("a new question", cands, dog)[0].candidate == answer("dog")
    with pytest.raises(ValueError, match="candidate 1: empty text"):
        p.rank("q", ["x", " "])
    with pytest.raises(ValueError, match="trained on text"):
        p.rank(None, [[0.0] * 32])
    with pytest.warns(UserWarning, match=r"longer than the encoder.s limit of \d+ tokens"):
        p.rank("q", ["cat " * 200, "dog"])


@pytest.mark.slow
def test_bad_run_folders(text_run, numeric_runs, tmp_path):
    with pytest.raises(RunFolderError, match="no run.json"):
        Personalizer.from_pretrained(tmp_path)
    with pytest.raises(RunFolderError, match="no such folder"):
        Personalizer.from_pretrained(tmp_path / "nope")
    # run.json of one model over another model's checkpoint
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "run.json").write_text((numeric_runs["btl"] / "run.json").read_text())
    (mixed / "best").symlink_to(numeric_runs["vpl"] / "best")
    with pytest.raises(RunFolderError, match="says 'btl' but best/ holds a 'vpl' model"):
        Personalizer.from_pretrained(mixed)
    # the recorded encoder folder now holds other weights
    tiny_encoder_dir(text_run / "encoder", seed=1)
    with pytest.raises(EmbedderError, match="has changed since the run was trained"):
        Personalizer.from_pretrained(text_run / "run", cache_dir=text_run / "cache")
    tiny_encoder_dir(text_run / "encoder", seed=0)


def test_embedder_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(EmbedderError, match="no config.json"):
        open_embedder(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EmbedderError, match="cannot load a model"):
        open_embedder(str(tmp_path))
    with pytest.raises(EmbedderError, match="neither minilm nor smollm2 nor an existing folder"):
        open_embedder("no-such-encoder")


@pytest.mark.parametrize("name", ["np-btl", "vpl", "btl"])
def test_seen_candidates_reuse_prepare_candidates(numeric_runs, name):
    """Issue 15: the user-independent part of scoring a candidate set is computed once, keyed
    by content (an equal list or tensor hits; other candidates do not), and scores equal the
    model's reward(...) on the same options."""
    p = Personalizer.from_pretrained(numeric_runs[name])
    users = [p.user([{"chosen": [2.0, 0.0], "rejected": [0.0, 2.0]}]), p.user([])]
    cands = [[1.0, -1.0], [-1.0, 1.0], [0.0, 0.5]]
    first = p.prepared(None, cands)
    assert p.prepared(None, [list(c) for c in cands]) is first  # an equal list, another object
    t = torch.tensor(cands)
    assert p.prepared(None, t) is p.prepared(None, t.clone())  # tensors by content too
    assert p.prepared(None, cands[:2]) is not first
    t.add_(1.0)  # modified in place: not the set prepared before
    assert not torch.equal(p.prepared(None, t).options, p.prepared(None, cands).options)
    scores = p.score(None, cands, users)
    options = p.options(None, cands)
    z = p._stack_z(users)
    with torch.no_grad():
        expected = p.model.reward(options.unsqueeze(0).expand(2, -1, -1), z)
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-6)
