"""Set encoders: permutation invariance, mask correctness, empty contexts; MLP and heads."""

import pytest
import torch

from pluralign.nn import (MLP, AttentionSetEncoder, ConditionedRewardDecoder, DeepSetEncoder,
                          GaussianHead, masked_pool)

D = 3


def encoders():
    torch.manual_seed(0)
    return {
        "deepset-mean": DeepSetEncoder(D, z_dim=8, pair_dim=16, hidden=(16,), pooling="mean"),
        "deepset-sum": DeepSetEncoder(D, z_dim=8, pair_dim=16, hidden=(16,), pooling="sum"),
        "attention-sum": AttentionSetEncoder(D, z_dim=8, model_dim=16, n_heads=4, hidden=(16,)),
        "attention-mean": AttentionSetEncoder(D, z_dim=8, model_dim=16, n_heads=4, hidden=(16,),
                                              pooling="mean"),
        "deepset-sum-antisym": DeepSetEncoder(D, z_dim=8, pair_dim=16, hidden=(16,), pooling="sum",
                                              pair_symmetry="antisymmetric"),
        "deepset-mean-antisym": DeepSetEncoder(D, z_dim=8, pair_dim=16, hidden=(16,), pooling="mean",
                                               pair_symmetry="antisymmetric"),
        "attention-sum-antisym": AttentionSetEncoder(D, z_dim=8, model_dim=16, n_heads=4, hidden=(16,),
                                                     pair_symmetry="antisymmetric"),
    }


@pytest.fixture(params=list(encoders()))
def encoder(request):
    return encoders()[request.param].eval()


def context(B=4, C=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    chosen, rejected = torch.randn(B, C, D, generator=g), torch.randn(B, C, D, generator=g)
    n = torch.tensor([0, 1, 3, C])[:B]
    mask = torch.arange(C) < n.unsqueeze(1)
    return chosen, rejected, mask


def test_mlp_shapes_and_default_architecture():
    m = MLP(5, 2)
    assert m(torch.randn(7, 3, 5)).shape == (7, 3, 2)
    linears = [l for l in m.net if isinstance(l, torch.nn.Linear)]
    assert [l.out_features for l in linears] == [256, 256, 2]
    assert isinstance(m.net[1], torch.nn.GELU)
    with pytest.raises(ValueError, match="unknown activation"):
        MLP(1, 1, act="nope")
    assert m.skip is None


def test_mlp_linear_skip_adds_a_linear_map_of_the_input():
    torch.manual_seed(0)
    m = MLP(5, 2, hidden=(8,), linear_skip=True)
    x = torch.randn(4, 5)
    torch.testing.assert_close(m(x), m.net(x) + x @ m.skip.weight.T)
    with torch.no_grad():  # with the MLP's last layer at zero the map is linear
        m.net[-1].weight.zero_()
        m.net[-1].bias.zero_()
    torch.testing.assert_close(m(2 * x), 2 * m(x))


def test_permutation_invariance(encoder):
    chosen, rejected, mask = context()
    z = encoder(chosen, rejected, mask)
    g = torch.Generator().manual_seed(3)
    perm = torch.stack([torch.randperm(chosen.shape[1], generator=g) for _ in range(chosen.shape[0])])
    take = lambda x: torch.gather(x, 1, perm.unsqueeze(-1).expand_as(x)) if x.dim() == 3 else torch.gather(x, 1, perm)
    z_perm = encoder(take(chosen), take(rejected), take(mask))
    torch.testing.assert_close(z, z_perm, rtol=1e-5, atol=1e-5)


def test_padding_content_changes_nothing(encoder):
    chosen, rejected, mask = context()
    z = encoder(chosen, rejected, mask)
    noise = ~mask.unsqueeze(-1)
    z2 = encoder(chosen + 100 * noise * torch.randn_like(chosen),
                 torch.where(noise, torch.full_like(rejected, float("nan")), rejected), mask)
    torch.testing.assert_close(z, z2, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(z).all()


def test_extra_padding_columns_change_nothing(encoder):
    chosen, rejected, mask = context()
    z = encoder(chosen, rejected, mask)
    pad = lambda x: torch.cat([x, torch.randn(x.shape[0], 5, *x.shape[2:])], 1)
    z2 = encoder(pad(chosen), pad(rejected), torch.cat([mask, torch.zeros(mask.shape[0], 5, dtype=torch.bool)], 1))
    torch.testing.assert_close(z, z2, rtol=1e-5, atol=1e-5)


def test_empty_context_is_defined_and_shared(encoder):
    chosen, rejected, mask = context()
    z = encoder(chosen, rejected, mask)  # row 0 is an empty context padded to C
    z_empty = encoder(chosen[:, :0], rejected[:, :0], mask[:, :0])  # C = 0 altogether
    assert torch.isfinite(z_empty).all() and z_empty.shape == (4, 8)
    torch.testing.assert_close(z_empty[0], z[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(z_empty[0], z_empty[3])


def test_empty_context_gradients_are_finite():
    enc = AttentionSetEncoder(D, z_dim=8, model_dim=16, n_heads=4, hidden=(16,))
    chosen, rejected, mask = context()
    enc(chosen, rejected, mask).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)


def test_context_matters(encoder):
    chosen, rejected, mask = context()
    z = encoder(chosen, rejected, mask)
    z_flip = encoder(rejected, chosen, mask)
    assert not torch.allclose(z[3], z_flip[3])  # order of chosen/rejected is information


@pytest.mark.parametrize("name", [n for n in encoders() if n.endswith("antisym")])
def test_antisymmetric_flip_negates_pooled_representation(name):
    enc = encoders()[name].eval()
    chosen, rejected, mask = context()
    s = enc.pooled(chosen, rejected, mask)
    s_flip = enc.pooled(rejected, chosen, mask)
    assert s[1:].abs().max() > 1e-3  # non-trivial (row 0 is the empty context)
    torch.testing.assert_close(s_flip, -s, rtol=0, atol=1e-6)


def test_antisymmetric_deepset_flips_one_pair_alone():
    enc = encoders()["deepset-sum-antisym"].eval()
    chosen, rejected, mask = context()
    s = enc.pooled(chosen, rejected, mask)
    c2, r2 = chosen.clone(), rejected.clone()
    c2[3, 2], r2[3, 2] = rejected[3, 2], chosen[3, 2]  # flip pair 2 of row 3 only
    h = enc.pooled(chosen[3:, 2:3], rejected[3:, 2:3], mask[3:, 2:3])  # that pair's evidence
    s2 = enc.pooled(c2, r2, mask)
    torch.testing.assert_close(s2[3], s[3] - 2 * h[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(s2[:3], s[:3])


def test_plain_encoder_is_not_antisymmetric():
    enc = encoders()["deepset-sum"].eval()
    chosen, rejected, mask = context()
    assert not torch.allclose(enc.pooled(rejected, chosen, mask)[3], -enc.pooled(chosen, rejected, mask)[3])


def test_pair_symmetry_keeps_parameters_and_is_validated():
    plain = DeepSetEncoder(D, z_dim=4, hidden=(8,))
    anti = DeepSetEncoder(D, z_dim=4, hidden=(8,), pair_symmetry="antisymmetric")
    anti.load_state_dict(plain.state_dict())  # same parameters: checkpoints stay loadable
    with pytest.raises(ValueError, match="pair_symmetry"):
        DeepSetEncoder(D, pair_symmetry="odd")
    with pytest.raises(ValueError, match="pair_symmetry"):
        AttentionSetEncoder(D, model_dim=16, n_heads=4, pair_symmetry="odd")


def test_context_config_pair_symmetry():
    from pluralign.rewards import NPBTLConfig, VPLConfig, build_reward_model
    assert NPBTLConfig(option_dim=1).pair_symmetry == "none"  # the papers' encoder by default
    old = NPBTLConfig(option_dim=1).to_dict()
    del old["pair_symmetry"]  # a config written before the field existed still loads
    assert NPBTLConfig.from_dict(old).pair_symmetry == "none"
    with pytest.raises(ValueError, match="pair_symmetry"):
        VPLConfig(option_dim=1, pair_symmetry="odd")
    model = build_reward_model("np-btl", option_dim=1, pooling="sum", pair_symmetry="antisymmetric")
    assert model.encoder.pair_symmetry == "antisymmetric"


def test_masked_pool_sum_and_mean():
    h = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    assert masked_pool(h, mask, "sum").tolist() == [[4.0], [0.0]]
    assert masked_pool(h, mask, "mean").tolist() == [[2.0], [0.0]]


def test_bad_shapes_are_named():
    enc = DeepSetEncoder(D, z_dim=4, hidden=(8,))
    chosen, rejected, mask = context()
    with pytest.raises(ValueError, match="mask"):
        enc(chosen, rejected, mask[:, :2])
    with pytest.raises(ValueError, match="features"):
        enc(chosen[..., :2], rejected[..., :2], mask)


def test_gaussian_head_returns_normal():
    head = GaussianHead(5, 3)
    q = head(torch.randn(2, 5))
    assert isinstance(q, torch.distributions.Normal) and q.mean.shape == (2, 3)
    mean, logvar = head.params(torch.randn(2, 5))
    assert (logvar <= head.max_logvar).all() and (logvar >= head.min_logvar).all()


def test_decoder_conditions_on_z():
    dec = ConditionedRewardDecoder(D, 4, embed_dim=8, hidden=(8,))
    y = torch.randn(2, 5, D)
    z = torch.randn(2, 4)
    r = dec(y, z)
    assert r.shape == (2, 5)
    assert not torch.allclose(r, dec(y, z + 1))
