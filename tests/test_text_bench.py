"""Text bench on tiny data with a tiny random encoder built from a config (never the real MiniLM):
the embedding cache makes a second run compute nothing, results follow the schema, the oracle
and latent plots are there, and the pieces (hold-out, latent separation) behave."""

import json

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from pluralign.eval.latents import pca_2d, separation
from pluralign.eval.results import read_json
from pluralign.eval.text_bench import TextBenchConfig, holdout, load_text_records, run_text_bench
from pluralign.policies.tiny import tiny_tokenizer

# tiny Pets: 5 users per group, 40 pairs each (20/10/10), N^C up to 3 with N^T = 4
TINY = dict(data="pets-divergent", users_per_type=5, pairs_per_user=40, context_sizes=(0, 1, 3),
            latent_context_sizes=(0, 3), n_target=4, n_tasks=8, eval_steps=2, n_eval_tasks=20,
            hidden_dim=16, embed_batch_size=64, progress=False)


def tiny_encoder_dir(path):
    """A random 1-layer BERT + byte tokenizer saved as a local HF folder."""
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=259, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=128, pad_token_id=258)
    BertModel(cfg).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return tiny_encoder_dir(tmp_path_factory.mktemp("tiny-bert"))


def quiet(_msg):
    pass


def test_second_run_does_no_embedding_work(tmp_path, encoder):
    cfg = TextBenchConfig(**TINY, encoder=encoder, models=("btl",), oracle=False, max_steps=2,
                          max_length=64, cache_dir=str(tmp_path / "cache"))
    first = run_text_bench(cfg, tmp_path / "a", log=quiet)
    stats = first.doc["embedding"]
    assert stats["texts_computed"] > 0 and stats["model_calls"] > 0
    assert first.features.embedder.n_forward == stats["model_calls"]
    second = run_text_bench(cfg, tmp_path / "b", log=quiet)
    assert second.doc["embedding"]["texts_computed"] == 0
    assert second.doc["embedding"]["model_calls"] == 0
    assert second.features.embedder.n_forward == 0
    assert torch.equal(first.features.chosen, second.features.chosen)
    # a different max length is another cache key: the work is done again
    third = run_text_bench(TextBenchConfig(**{**TINY, "max_length": 32}, encoder=encoder, models=("btl",),
                                           oracle=False, max_steps=2, cache_dir=str(tmp_path / "cache")),
                           tmp_path / "c", log=quiet)
    assert third.doc["embedding"]["texts_computed"] == stats["texts_computed"]


@pytest.mark.slow
def test_bench_text_quick_path_end_to_end(tmp_path, encoder):
    cfg = TextBenchConfig(**TINY, encoder=encoder, max_steps=4, project_dim=8, holdout_users=1,
                          max_length=64, cache_dir=str(tmp_path / "cache"))
    bench = run_text_bench(cfg, tmp_path / "out", log=quiet)
    doc = read_json(tmp_path / "out" / "results.json")  # schema-checked
    assert set(doc["models"]) == {"btl", "dpl", "np-btl", "vpl", "mix-btl", "oracle"}
    for name in doc["models"]:
        assert set(doc["models"][name]) == {"0", "1", "3"}
        assert set(doc["per_type"][name]) == {"0", "1"}
    # exact Bayes on the same tasks (with this few users some pairs have one type's label only)
    assert set(doc["bayes"]) == {"0", "1", "3"} and doc["bayes"]["3"] >= doc["bayes"]["0"]
    assert set(doc["flip_test"]) == {"btl", "dpl", "np-btl", "vpl", "mix-btl"}
    assert doc["flip_test"]["btl"]["3"]["unchanged"] == 1.0  # BTL never reads its context
    assert set(doc["latent_separation"]) == {"np-btl", "vpl", "mix-btl"}  # every context model
    assert doc["latent_separation"]["np-btl"]["0"]["centroid_accuracy"] == pytest.approx(0.5, abs=0.2)
    assert doc["embedding"]["projected_dim"] == 8 and bench.features.chosen.shape[1] == 8
    for f in ("results.csv", "accuracy.png", "per_type.png", "latents.png"):
        assert (tmp_path / "out" / f).stat().st_size > 0
    # held-out users are in neither training nor evaluation
    held = {r.user_id for r in bench.heldout}
    assert held == {"dog-group-000", "cat-group-000"}
    assert not held & {r.user_id for r in bench.records}
    runs = json.loads((tmp_path / "out" / "runs" / "np-btl" / "run.json").read_text())
    assert runs["split_sizes"]["train"] == 8 * 20  # 4 users of each group left, 20 training pairs each


def test_holdout_removes_first_user_of_each_type():
    records = load_text_records(TextBenchConfig(**TINY))
    kept, held = holdout(records, 1)
    assert held == {0: "dog-group-000", 1: "cat-group-000"}
    assert {r.user_id for r in kept} == {r.user_id for r in records} - set(held.values())
    assert holdout(records, 0) == (records, {})


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="unknown model"):
        TextBenchConfig(models=("btl", "gpt"))
    with pytest.raises(ValueError, match="latent_context_sizes"):
        TextBenchConfig(context_sizes=(0, 1), latent_context_sizes=(5,))
    with pytest.raises(ValueError, match="holdout_users"):
        TextBenchConfig(users_per_type=2, holdout_users=2)
    with pytest.raises(FileNotFoundError, match="neither a built-in set"):
        load_text_records(TextBenchConfig(data="no-such-set"))


def test_separation_measures_type_clusters():
    rng = np.random.default_rng(0)
    types = np.repeat([0, 1], 50)
    apart = np.where(types[:, None] == 0, -3.0, 3.0) + rng.normal(size=(100, 4))
    same = np.zeros((100, 4))
    assert separation(apart, types)["centroid_accuracy"] == 1.0
    assert separation(apart, types)["centroid_ratio"] > 2
    assert separation(same, types)["centroid_accuracy"] == 0.5  # identical z: every point a tie
    a, b = pca_2d([apart[:50], apart[50:]])
    assert a.shape == (50, 2) and (a[:, 0].mean() > 0) != (b[:, 0].mean() > 0)
