"""CMPO plural model (thesis eq. 3.1) on tiny random LMs: head mixing, reference, generation, checkpoints."""

import pytest
import torch

from pluralign.policies.logprobs import sequence_logprobs, tokenize_responses
from pluralign.policies.cmpo.plural_heads import PluralConfig, PluralLM
from pluralign.policies.tiny import tiny_causal_lm, tiny_tokenizer

ATTRS = ["helpfulness", "verbosity", "safety"]


def perturbed(arch="llama", seed=0, attrs=ATTRS, lora=True):
    """A plural model whose heads and LoRA weights have moved away from the base."""
    model = PluralLM(tiny_causal_lm(arch, seed=seed), PluralConfig(attributes=list(attrs), lora=lora))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for j in range(model.k):
            model.heads[j].add_(0.2 * torch.randn(model.heads[j].shape, generator=g))
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(0.2 * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def batch():
    tok = tiny_tokenizer()
    return tokenize_responses(tok, ["Is it safe?", "Say hi", "Explain rain"],
                              ["Yes, mostly.", "hi", "Water falls from clouds."])


def trunk_hidden(model, batch):
    return model.hidden_states(batch)


def test_one_hot_reproduces_that_heads_logits_exactly(batch):
    model = perturbed()
    with torch.no_grad():
        hidden = trunk_hidden(model, batch)
        for j in range(model.k):
            with model.steered(model.one_hot(j)):
                logits = model.lm(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                  position_ids=batch.position_ids).logits
            assert torch.equal(logits, hidden @ model.heads[j].T)
        # and the heads really differ, so the check above can fail
        assert not torch.allclose(hidden @ model.heads[0].T, hidden @ model.heads[1].T)


def test_mixing_is_linear_in_the_logits(batch):
    model = perturbed()
    hidden = trunk_hidden(model, batch).detach()
    l1, l2 = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([-0.5, 1.0, 2.0])
    a, b = 0.3, -1.7
    with torch.no_grad():
        mixed = model.mix_logits(hidden, a * l1 + b * l2)
        separate = a * model.mix_logits(hidden, l1) + b * model.mix_logits(hidden, l2)
        by_heads = sum(w * hidden @ model.heads[j].T for j, w in enumerate((a * l1 + b * l2).tolist()))
    torch.testing.assert_close(mixed, separate, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mixed, by_heads, rtol=1e-5, atol=1e-5)
    # zero-weight heads are skipped, so lambda = 0 gives zero logits of the right shape
    with torch.no_grad():
        torch.testing.assert_close(model.mix_logits(hidden, torch.zeros(3)), torch.zeros_like(mixed))


def test_per_row_weights_match_one_at_a_time(batch):
    model = perturbed()
    lam = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    with torch.no_grad():
        rows = model.logprobs(batch, lam)
        for i in range(3):
            torch.testing.assert_close(rows[i], model.logprobs(batch, lam[i])[i])


def test_logprobs_agree_with_the_hooked_forward(batch):
    model = perturbed()
    lam = [0.1, 0.6, 0.3]
    with torch.no_grad():
        direct = model.logprobs(batch, lam)
        with model.steered(lam):
            hooked = sequence_logprobs(model.lm, batch)
    torch.testing.assert_close(direct, hooked, rtol=1e-5, atol=1e-4)


def test_at_init_every_simplex_weight_is_the_base_model(batch):
    base_copy = tiny_causal_lm("llama", seed=0)
    model = PluralLM(tiny_causal_lm("llama", seed=0), PluralConfig(attributes=ATTRS))
    with torch.no_grad():
        expected = sequence_logprobs(base_copy, batch)
        for lam in ([1, 0, 0], [0, 0, 1], [0.2, 0.5, 0.3]):
            torch.testing.assert_close(model.logprobs(batch, lam), expected, rtol=1e-5, atol=1e-4)


def test_reference_is_the_base_model_before_the_split(batch):
    base_copy = tiny_causal_lm("llama", seed=0)
    model = perturbed()
    with torch.no_grad():
        expected = sequence_logprobs(base_copy, batch)
        assert not torch.allclose(model.logprobs(batch, [1, 0, 0]), expected)
    torch.testing.assert_close(model.reference_logprobs(batch), expected)
    with model.steered([1, 0, 0]), pytest.raises(RuntimeError):
        model.reference_logprobs(batch)


def test_steering_does_not_leak_between_calls(batch):
    model = perturbed()
    with torch.no_grad():
        before = sequence_logprobs(model.lm, batch)
        with pytest.raises(ZeroDivisionError):
            with model.steered([0, 1, 0]):
                1 / 0
        with model.steered([0, 1, 0]):
            with model.steered([0, 0, 1]):
                inner = sequence_logprobs(model.lm, batch)
            outer = sequence_logprobs(model.lm, batch)
        after = sequence_logprobs(model.lm, batch)
    assert model._weights is None
    torch.testing.assert_close(before, after)
    torch.testing.assert_close(inner, model.logprobs(batch, [0, 0, 1]).detach(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(outer, model.logprobs(batch, [0, 1, 0]).detach(), rtol=1e-5, atol=1e-4)


def test_generate_follows_the_mixture(batch):
    model = perturbed()
    ids, mask = batch.input_ids[:1, :12], batch.attention_mask[:1, :12]
    with torch.no_grad():
        hidden = model._causal.base_model(input_ids=ids, attention_mask=mask).last_hidden_state[:, -1]
        for lam in ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.3, 0.3, 0.4]):
            out = model.generate(ids, mask, weights=lam, max_new_tokens=3, do_sample=False)
            first = int(model.mix_logits(hidden, torch.tensor(lam)).argmax(-1))
            assert int(out[0, 12]) == first
    outs = {tuple(model.generate(ids, mask, weights=model.one_hot(j), max_new_tokens=6,
                                 do_sample=False)[0].tolist()) for j in range(3)}
    assert len(outs) > 1  # different heads steer generation differently
    assert model._weights is None


def test_weights_validation():
    model = perturbed()
    with pytest.raises(ValueError, match="k = 3"):
        model.as_weights([1.0, 0.0])
    with pytest.raises(ValueError, match="unknown attribute"):
        model.as_weights({"humor": 1.0})
    with pytest.raises(ValueError, match="NaN"):
        model.as_weights([float("nan"), 0, 0])
    assert model.as_weights({"verbosity": 0.3, "helpfulness": 0.7}).tolist() == pytest.approx([0.7, 0.3, 0.0])


def test_parameter_report_counts():
    model = perturbed()
    rep = model.parameter_report()
    vocab, hidden = model.heads.shape[1:]
    assert rep["per_head"] == vocab * hidden
    assert rep["plural_total"] == rep["base"] + rep["lora"] + 3 * vocab * hidden
    assert rep["k_separate_models"] == 3 * (rep["base"] + rep["lora"])
    assert rep["trainable"] == rep["lora"] + 3 * vocab * hidden
    # base weights are frozen: only heads and LoRA train
    assert all(("lora_" in n) or n == "heads" for n, p in model.named_parameters() if p.requires_grad)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_save_load_round_trip(tmp_path, batch, arch):
    model = perturbed(arch)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = PluralLM.from_pretrained(tmp_path / "ckpt", base=tiny_causal_lm(arch, seed=0))
    assert loaded.attributes == ATTRS
    for key, value in model.trainable_state_dict().items():
        torch.testing.assert_close(loaded.trainable_state_dict()[key], value, rtol=0, atol=0)
    with torch.no_grad():
        for lam in ([1, 0, 0], [0.25, 0.25, 0.5]):
            torch.testing.assert_close(loaded.logprobs(batch, lam), model.logprobs(batch, lam))
    torch.testing.assert_close(loaded.reference_logprobs(batch), model.reference_logprobs(batch))


def test_load_refuses_mismatched_heads(tmp_path):
    model = perturbed()
    model.save_pretrained(tmp_path / "ckpt")
    other = PluralLM(tiny_causal_lm("llama", seed=0), PluralConfig(attributes=["a", "b"]))
    from pluralign.checkpoint import load_state
    with pytest.raises(ValueError, match="do not fit"):
        other.load_trainable_state_dict(load_state(tmp_path / "ckpt")[1])


def test_heads_only_mode_trains_no_trunk(batch):
    model = perturbed(lora=False)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["heads"]
    loss = -model.logprobs(batch, [0.5, 0.5, 0.0]).sum()
    loss.backward()
    assert model.heads.grad[2].abs().sum() == 0 and model.heads.grad[0].abs().sum() > 0


def low_rank(seed=0):
    model = PluralLM(tiny_causal_lm("llama", seed=seed), PluralConfig(attributes=ATTRS, lora=False, head_rank=4))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        model.head_u.add_(0.3 * torch.randn(model.head_u.shape, generator=g))
    return model


def test_low_rank_heads_mix_the_effective_head_weights(batch, tmp_path):
    model = low_rank()
    hidden = trunk_hidden(model, batch).detach()
    with torch.no_grad():
        for j in range(3):
            torch.testing.assert_close(model.mix_logits(hidden, model.one_hot(j)),
                                       hidden @ model.head_weight(j).T, rtol=1e-5, atol=1e-5)
        lam = torch.tensor([0.2, -0.4, 1.3])
        torch.testing.assert_close(model.mix_logits(hidden, lam),
                                   sum(w * hidden @ model.head_weight(j).T for j, w in enumerate(lam.tolist())),
                                   rtol=1e-5, atol=1e-5)
    rep = model.parameter_report()
    vocab, width = model.head_u.shape[1], model.head_v.shape[2]
    assert rep["per_head"] == 4 * (vocab + width) and rep["trainable"] == 3 * rep["per_head"]
    model.save_pretrained(tmp_path / "lr")
    loaded = PluralLM.from_pretrained(tmp_path / "lr", base=tiny_causal_lm("llama", seed=0))
    with torch.no_grad():
        torch.testing.assert_close(loaded.logprobs(batch, [0.5, 0.5, 0]), model.logprobs(batch, [0.5, 0.5, 0]))
    with pytest.raises(KeyError, match="head_u"):
        loaded_full_refuses(tmp_path)


def loaded_full_refuses(tmp_path):
    from pluralign.checkpoint import load_state
    full = PluralLM(tiny_causal_lm("llama"), PluralConfig(attributes=ATTRS, lora=False))
    low = PluralLM(tiny_causal_lm("llama"), PluralConfig(attributes=ATTRS, lora=False, head_rank=4))
    full.save_pretrained(tmp_path / "full")
    low.load_trainable_state_dict(load_state(tmp_path / "full")[1])


def test_low_rank_heads_start_as_the_base_model(batch):
    model = PluralLM(tiny_causal_lm("llama", seed=0), PluralConfig(attributes=ATTRS, lora=False, head_rank=4))
    with torch.no_grad():
        torch.testing.assert_close(model.logprobs(batch, [0.3, 0.3, 0.4]), model.reference_logprobs(batch),
                                   rtol=1e-5, atol=1e-4)


def test_state_dict_is_the_trainable_parts(batch):
    model = perturbed()
    state = model.state_dict()
    assert set(state) == set(model.trainable_state_dict()) and "heads" in state
    assert all(k == "heads" or k.startswith("lora.") for k in state)
    fresh = PluralLM(tiny_causal_lm("llama", seed=0), PluralConfig(attributes=ATTRS))
    fresh.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(fresh.logprobs(batch, [0, 1, 0]), model.logprobs(batch, [0, 1, 0]))


def test_low_rank_per_row_weights_and_vertex_logprobs(batch):
    """Per-row lambda in the single-projection low-rank mixture; vertex_logprobs_from_rows
    (reference + every one-hot lambda sharing one base projection) = one call per column."""
    model = low_rank()
    hidden = trunk_hidden(model, batch).detach()
    lam = torch.tensor([[0.2, -0.4, 1.3], [1.0, 0.0, 0.0], [0.1, 0.6, 0.3]])
    with torch.no_grad():
        rows = model.mix_logits(hidden, lam)
        for i in range(3):
            torch.testing.assert_close(rows[i], model.mix_logits(hidden[i:i + 1], lam[i])[0], rtol=1e-5, atol=1e-5)
        mask = batch.response_mask[:, 1:]
        h, labels = hidden[:, :-1][mask], batch.input_ids[:, 1:][mask]
        idx = torch.nonzero(mask, as_tuple=True)[0]
        got = model.vertex_logprobs_from_rows(h, labels, idx, 3)
        torch.testing.assert_close(got[:, 0], model.reference_logprobs(batch), rtol=1e-5, atol=1e-4)
        for j in range(3):
            torch.testing.assert_close(got[:, 1 + j], model.logprobs(batch, model.one_hot(j)), rtol=1e-5, atol=1e-4)
        assert not torch.allclose(got[:, 1], got[:, 2])
