"""Embedders, pooling and the embedding cache, on tiny random HF models built from configs."""

import json

import pytest
import torch
from transformers import BertConfig, BertModel

from pluralign.data.io import read_records, write_records
from pluralign.data.records import PreferenceRecord
from pluralign.data.tables import option_vectors
from pluralign.features.cache import EmbeddingCache, text_hash
from pluralign.features.embed import (Embedder, EmbedderConfig, attach_vectors, embed_records,
                                      embed_to_records, load_embedder)
from pluralign.features.pooling import last_token_index, last_token_pool, mean_pool
from pluralign.policies.tiny import tiny_causal_lm, tiny_tokenizer

PROMPTS = ["hi", "What is two plus two?", "Tell me a long story about a cat who sailed the sea.", "", "ok"]
RESPONSES = ["hello there", "4", "Once upon a time a cat sailed far away and came back.", "a bare reply", "fine"]


class CallCounter:
    """Counts forward calls of a module (the cache tests assert a second run makes none)."""

    def __init__(self, module):
        self.calls = 0
        module.register_forward_hook(self._hook)

    def _hook(self, *args):
        self.calls += 1


@pytest.fixture(scope="module")
def llama():
    return tiny_causal_lm("llama", seed=0)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def tiny_bert():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=259, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128, pad_token_id=258)
    return BertModel(cfg).eval()


# ---------------------------------------------------------------- pooling
def test_last_token_index_left_right_and_no_padding():
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert last_token_index(right).tolist() == [2, 4, 0]
    assert last_token_index(left).tolist() == [4, 4, 4]
    with pytest.raises(ValueError, match="no real tokens"):
        last_token_index(torch.tensor([[0, 0, 0]]))


def test_pooling_ignores_padded_positions():
    hidden = torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1]])
    garbage = hidden.clone()
    garbage[mask == 0] = 1e6  # whatever sits at padding must not matter
    assert torch.equal(mean_pool(hidden, mask), mean_pool(garbage, mask))
    assert torch.allclose(mean_pool(hidden, mask)[0], hidden[0, :3].mean(0))
    assert torch.allclose(mean_pool(hidden, mask)[1], hidden[1, 2:].mean(0))
    assert torch.equal(last_token_pool(garbage, mask), torch.stack([hidden[0, 2], hidden[1, 4]]))


# ---------------------------------------------------------------- last-token embeddings vs unpadded forward
@pytest.mark.parametrize("arch", ["llama", "gpt2"])  # RoPE is shift-invariant; GPT-2's absolute positions are not
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_last_token_matches_unpadded_forward(tok, arch, padding_side):
    model = tiny_causal_lm(arch, seed=0)
    emb = Embedder(model, tok, model_id=f"tiny-{arch}", padding_side=padding_side, batch_size=8, progress=False)
    assert emb.pooling == "last_token" and emb.template == "chat"
    vectors = emb.embed(PROMPTS, RESPONSES)
    assert emb.n_forward == 1  # one padded batch of five texts of different lengths
    for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES)):
        text = emb.format(p, r)
        assert text.endswith("<|im_end|>")  # chat template: the last token ends the assistant turn
        ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            ref = model.base_model(input_ids=ids).last_hidden_state[0, -1]  # single sequence, no padding
        assert torch.allclose(vectors[i], ref, atol=1e-5), f"text {i} ({padding_side} padding)"


def test_left_truncation_keeps_the_response_end(llama, tok):
    emb = Embedder(llama, tok, model_id="tiny-llama", max_length=12, progress=False)
    text = emb.format(PROMPTS[2], RESPONSES[2])
    ids = tok(text, add_special_tokens=False)["input_ids"][-12:]
    with torch.inference_mode():
        ref = llama.model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
    assert torch.allclose(emb.embed([PROMPTS[2]], [RESPONSES[2]])[0], ref, atol=1e-5)


def test_mean_pooling_sentence_encoder_ignores_padding():
    bert, btok = tiny_bert(), tiny_tokenizer(chat_template=False)
    emb = Embedder(bert, btok, model_id="tiny-bert", batch_size=8, progress=False)
    assert emb.pooling == "mean" and emb.template == "plain"
    vectors = emb.embed(PROMPTS, RESPONSES)
    for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES)):
        ids = btok(emb.format(p, r), return_tensors="pt")
        with torch.inference_mode():
            ref = bert(**ids).last_hidden_state[0].mean(0)
        assert torch.allclose(vectors[i], ref, atol=1e-5)
    normed = Embedder(bert, btok, model_id="tiny-bert", normalize=True, progress=False).embed(PROMPTS, RESPONSES)
    assert torch.allclose(normed.norm(dim=1), torch.ones(len(PROMPTS)), atol=1e-5)


# ---------------------------------------------------------------- cache
def test_second_run_computes_nothing_and_pooling_change_recomputes(llama, tok, tmp_path):
    counter = CallCounter(llama.model)
    first = Embedder(llama, tok, model_id="tiny-llama", cache_dir=tmp_path, progress=False)
    v1 = first.embed(PROMPTS, RESPONSES)
    assert counter.calls >= 1 and first.n_computed == len(PROMPTS)
    calls_after_first = counter.calls

    second = Embedder(llama, tok, model_id="tiny-llama", cache_dir=tmp_path, progress=False)
    v2 = second.embed(PROMPTS, RESPONSES)
    assert counter.calls == calls_after_first and second.n_forward == 0 and second.n_computed == 0
    assert torch.equal(v1, v2)

    extra = second.embed(PROMPTS + ["new prompt"], RESPONSES + ["new reply"])  # only the new text runs
    assert second.n_computed == 1 and torch.equal(extra[:-1], v1)

    mean = Embedder(llama, tok, model_id="tiny-llama", pooling="mean", cache_dir=tmp_path, progress=False)
    v3 = mean.embed(PROMPTS, RESPONSES)
    assert mean.n_computed == len(PROMPTS) and counter.calls > calls_after_first
    assert mean.cache.dir != first.cache.dir and not torch.allclose(v1, v3)
    index = json.loads((first.cache.dir / "index.json").read_text())
    assert index["key"]["pooling"] == "last_token" and index["n_vectors"] == len(PROMPTS) + 1


def test_cache_key_covers_model_template_and_length(llama, tok, tmp_path):
    base = Embedder(llama, tok, model_id="m", cache_dir=tmp_path, progress=False)
    other_len = Embedder(llama, tok, model_id="m", max_length=64, cache_dir=tmp_path, progress=False)
    other_tpl = Embedder(llama, tok, model_id="m", template="plain", cache_dir=tmp_path, progress=False)
    other_weights = Embedder(tiny_causal_lm("llama", seed=1), tok, model_id="m", cache_dir=tmp_path, progress=False)
    digests = {e.cache.digest for e in (base, other_len, other_tpl, other_weights)}
    assert len(digests) == 4
    assert set(base.key) >= {"model_id", "fingerprint", "pooling", "template", "max_length"}


def test_cache_rejects_bad_vectors(tmp_path):
    cache = EmbeddingCache(tmp_path, {"k": 1})
    with pytest.raises(ValueError, match="non-finite"):
        cache.put(["a"], torch.tensor([[float("nan"), 1.0]]))
    cache.put(["a", "b"], torch.ones(2, 3))
    with pytest.raises(ValueError, match="dim"):
        cache.put(["c"], torch.ones(1, 4))
    reader = EmbeddingCache(tmp_path, {"k": 1})
    found, missing = reader.get(["b", "z", "a"])
    assert missing == [1] and set(found) == {0, 2}
    EmbeddingCache(tmp_path, {"k": 1}).put(["z"], torch.zeros(1, 3))  # another writer adds a shard
    found, missing = reader.get(["z"])
    assert missing == [] and torch.equal(found[0], torch.zeros(3))
    assert text_hash("a") != text_hash("b")


# ---------------------------------------------------------------- records
def test_embed_records_and_attach(llama, tok, tmp_path):
    records = [PreferenceRecord(f"u{k % 2}", "Pick one.", f"answer {k}", f"answer {k + 1}") for k in range(4)]
    emb = Embedder(llama, tok, model_id="tiny-llama", cache_dir=tmp_path, progress=False)
    chosen, rejected = embed_records(records, emb)
    assert chosen.shape == rejected.shape == (4, emb.dim)
    assert emb.n_computed == 5  # answers 0..4: shared options are embedded once
    assert torch.equal(chosen[1], rejected[0])
    numeric = embed_to_records(records, emb)
    assert emb.n_computed == 5  # everything came from the cache
    c2, r2 = option_vectors(numeric)
    assert torch.allclose(c2, chosen) and torch.allclose(r2, rejected)
    assert numeric[0].meta["embedding"] == emb.cache.digest and numeric[0].prompt == "Pick one."
    assert len(read_records(write_records(numeric, tmp_path / "vec.jsonl"))) == 4
    with pytest.raises(TypeError, match="text records"):
        embed_records(numeric, emb)
    with pytest.raises(ValueError, match="records"):
        attach_vectors(records, chosen[:2], rejected)


def test_load_embedder_from_a_local_folder(llama, tok, tmp_path):
    folder = tmp_path / "model"
    llama.save_pretrained(folder)
    tok.save_pretrained(folder)
    emb = load_embedder(EmbedderConfig(model=str(folder), cache_dir=str(tmp_path / "cache")))
    assert emb.fingerprint.startswith("files:") and emb.pooling == "last_token"
    emb.progress = False
    direct = Embedder(llama, tok, model_id="x", progress=False).embed(PROMPTS[:2], RESPONSES[:2])
    assert torch.allclose(emb.embed(PROMPTS[:2], RESPONSES[:2]), direct, atol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        EmbedderConfig(pooling="max")


@pytest.mark.slow
def test_offline_minilm_embeds_by_meaning(tmp_path):
    """The bundled all-MiniLM-L6-v2 loads offline and ranks paraphrases above unrelated text."""
    from pluralign.features import offline
    try:
        offline.minilm_dir()
    except offline.OfflineModelMissing as err:  # the package is a declared dependency; say why if absent
        pytest.fail(str(err))
    emb = load_embedder(EmbedderConfig(model="minilm", normalize=True, cache_dir=str(tmp_path)))
    emb.progress = False
    v = emb.embed(["", "", ""], ["A cat is sitting on the mat.", "There is a cat on the rug.",
                                 "Stock markets fell sharply on Monday."])
    assert v.shape == (3, 384)
    sims = v @ v.T
    assert sims[0, 1] > sims[0, 2] + 0.2
