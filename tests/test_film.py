"""FiLM over decoder blocks of tiny Llama / Qwen2 / GPT-2 models (pluralign.policies.film)."""

import pytest
import torch

from pluralign.policies.film import FiLM, FiLMHypernetwork, decoder_layers
from pluralign.policies.tiny import ARCHITECTURES, tiny_causal_lm

IDS = torch.tensor([[5, 17, 42, 99, 3, 250], [7, 7, 8, 9, 10, 11]])


def _randomise(film: FiLM, scale: float = 0.5, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in film.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_identity_at_init_and_keys_unchanged(arch):
    model = tiny_causal_lm(arch)
    keys = list(model.state_dict())
    with torch.no_grad():
        base = model(IDS).logits
        film = FiLM(model, z_dim=8)
        with film.conditioned(torch.randn(2, 8)):
            cond = model(IDS).logits
    assert (cond - base).abs().max().item() <= 1e-6
    assert list(model.state_dict()) == keys  # hooks, not new submodules
    assert set(film.state_dict()) == {"hypernetwork.gamma.weight", "hypernetwork.gamma.bias",
                                      "hypernetwork.beta.weight", "hypernetwork.beta.bias"}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_block_output_is_modulated(arch):
    model = tiny_causal_lm(arch)
    film = FiLM(model, z_dim=8)
    _randomise(film)
    z = torch.randn(2, 8)
    with torch.no_grad():
        base = model(IDS, output_hidden_states=True).hidden_states[1]  # output of block 0
        gamma, beta = film.hypernetwork(z)
        with film.conditioned(z):
            cond = model(IDS, output_hidden_states=True).hidden_states[1]
        after = model(IDS, output_hidden_states=True).hidden_states[1]
    want = gamma[:, 0].unsqueeze(1) * base + beta[:, 0].unsqueeze(1)
    torch.testing.assert_close(cond, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(after, base)  # the context switched it off again


def test_different_z_different_output_and_broadcast():
    model = tiny_causal_lm("llama")
    film = FiLM(model, z_dim=4)
    _randomise(film)
    z = torch.randn(1, 4)
    with torch.no_grad():
        with film.conditioned(z):
            a = model(IDS).logits
        with film.conditioned(z.expand(2, 4)):
            b = model(IDS).logits
        with film.conditioned(-z):
            c = model(IDS).logits
    torch.testing.assert_close(a, b)
    assert (a - c).abs().max() > 1e-3


def test_generate_under_film_and_batch_expansion():
    model = tiny_causal_lm("gpt2")
    film = FiLM(model, z_dim=4)
    _randomise(film, scale=2.0)
    prompt = IDS[:1, :3]
    kw = dict(max_new_tokens=5, do_sample=False, pad_token_id=0)
    base = model.generate(prompt, **kw)
    with film.conditioned(torch.randn(1, 4)):
        steered = model.generate(prompt, **kw)
        two = model.generate(prompt, num_return_sequences=2, do_sample=True, max_new_tokens=3, pad_token_id=0)
    assert steered.shape == base.shape and two.shape[0] == 2
    assert not torch.equal(steered, base)
    torch.testing.assert_close(model.generate(prompt, **kw), base)  # removed outside the context


def test_errors():
    model = tiny_causal_lm("llama")
    film = FiLM(model, z_dim=4)
    with pytest.raises(ValueError, match="z must be"):
        with film.conditioned(torch.randn(2, 5)):
            pass
    with film.conditioned(torch.randn(3, 4)):
        with pytest.raises(ValueError, match="3 sequences"):
            model(IDS)
        with pytest.raises(RuntimeError, match="already active"):
            with film.conditioned(torch.randn(1, 4)):
                pass
    film.remove()
    assert len(decoder_layers(model)) == 2
    with pytest.raises(ValueError):
        FiLMHypernetwork(0, 2, 8)


def test_gain_scales_the_modulation_and_keeps_identity_at_init():
    torch.manual_seed(0)
    z = torch.randn(3, 4)
    one, ten = FiLMHypernetwork(4, 2, 8), FiLMHypernetwork(4, 2, 8, gain=10.0)
    g, b = ten(z)
    assert torch.equal(g, torch.ones_like(g)) and torch.equal(b, torch.zeros_like(b))
    ten.load_state_dict(one.state_dict())
    with torch.no_grad():
        for p in list(one.parameters()):
            p.normal_()
        ten.load_state_dict(one.state_dict())
    (g1, b1), (g10, b10) = one(z), ten(z)
    torch.testing.assert_close(g10 - 1, 10 * (g1 - 1))
    torch.testing.assert_close(b10, 10 * b1)
    with pytest.raises(ValueError, match="gain"):
        FiLMHypernetwork(4, 2, 8, gain=0.0)
