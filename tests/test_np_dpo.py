"""NP-DPO policy: identity at init, reference path, gradients, checkpoints (pluralign.policies.np_dpo.policy)."""

import pytest
import torch

from pluralign.losses import dpo_loss
from pluralign.policies.logprobs import sequence_logprobs, tokenize_responses
from pluralign.policies.np_dpo.policy import NPDPOConfig, NPDPOPolicy
from pluralign.policies.tiny import tiny_causal_lm, tiny_tokenizer

D = 6  # option-embedding size of the fake context


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _batch(tok, side="right"):
    prompts = ["Tell me about cats.", "Tell me about cats.", "Hi", "Hi"]
    responses = ["Cats purr.", "Cats are small furry mammals that purr and sleep a lot.", "Hello!", "Hey."]
    return tokenize_responses(tok, prompts, responses, padding_side=side)


def _context(b=2, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, c, dtype=torch.bool)
    mask[0, 1:] = False
    return torch.randn(b, c, D, generator=g), torch.randn(b, c, D, generator=g), mask


def _policy(arch, base_model="", **kw):
    cfg = NPDPOConfig(base_model=base_model, option_dim=D, z_dim=8, encoder_hidden=16, lora_rank=4, **kw)
    return NPDPOPolicy(tiny_causal_lm(arch), cfg)


def _logits(lm, batch):
    return lm(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
              position_ids=batch.position_ids).logits


def _train(policy, tok, steps=3, lr=0.05):
    """A few DPO steps with plain SGD so LoRA, FiLM and encoder all move away from init."""
    batch = _batch(tok)
    ctx = _context()
    opt = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=lr)
    ref = policy.reference_logprobs(batch)
    for _ in range(steps):
        z = policy.encode(*ctx).repeat_interleave(2, 0)  # 2 tasks x 2 sequences
        logps = policy.logprobs(batch, z)
        loss, _, _ = dpo_loss(logps[0::2], logps[1::2], ref[0::2], ref[1::2], beta=0.5)
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    return batch, ctx


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
def test_conditioned_policy_equals_base_at_init(tok, arch):
    policy = _policy(arch)
    base = tiny_causal_lm(arch)
    batch = _batch(tok)
    with torch.no_grad():
        z = policy.encode(*_context()).repeat_interleave(2, 0)
        with policy.conditioned(z):
            got = _logits(policy.lm, batch)
        want = _logits(base, batch)
    assert (got - want).abs().max().item() <= 1e-6


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_reference_equals_base_during_training(tok, arch):
    policy = _policy(arch)
    batch, ctx = _train(policy, tok)
    base = tiny_causal_lm(arch)
    with torch.no_grad():
        want = sequence_logprobs(base, batch)
        z = policy.encode(*ctx).repeat_interleave(2, 0)
        steered = policy.logprobs(batch, z)
    # training moved the policy, but the reference path is still exactly the base model
    assert (steered - want).abs().max().item() > 1e-3
    torch.testing.assert_close(policy.reference_logprobs(batch), want, atol=1e-6, rtol=0)
    lora_b = [p for n, p in policy.lm.named_parameters() if "lora_B" in n]
    assert any(p.abs().max() > 0 for p in lora_b)
    assert policy.film.hypernetwork.gamma.weight.abs().max() > 0
    # base weights were never touched
    trained = {k.replace(".base_layer", ""): v for k, v in policy.lm.get_base_model().state_dict().items()
               if "lora_" not in k}
    assert trained.keys() == base.state_dict().keys()
    for k, v in base.state_dict().items():
        torch.testing.assert_close(trained[k], v, atol=0, rtol=0)


def test_gradients_reach_film_encoder_and_lora(tok):
    policy = _policy("llama")
    batch, ctx = _train(policy, tok, steps=1)  # one step moves the zero-initialised parts off zero
    ref = policy.reference_logprobs(batch)
    policy.zero_grad()
    logps = policy.logprobs(batch, policy.encode(*ctx).repeat_interleave(2, 0))
    loss, _, _ = dpo_loss(logps[0::2], logps[1::2], ref[0::2], ref[1::2], beta=0.5)
    loss.mean().backward()
    groups = {"film": policy.film, "encoder": policy.encoder}
    for name, module in groups.items():
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads), name
        assert sum(g.abs().sum() for g in grads) > 0, name
    for kind in ("lora_A", "lora_B"):
        grads = [p.grad for n, p in policy.lm.named_parameters() if kind in n]
        assert grads and all(g is not None and g.abs().sum() > 0 for g in grads), kind
    frozen = [p for n, p in policy.lm.named_parameters() if "lora" not in n]
    assert all(not p.requires_grad for p in frozen)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_save_load_round_trip_identical_logits(tok, tmp_path, arch):
    base_dir = tmp_path / "base"
    tiny_causal_lm(arch).save_pretrained(base_dir)
    policy = _policy(arch, base_model=str(base_dir))
    batch, ctx = _train(policy, tok, steps=2)
    policy.eval()
    policy.save_pretrained(tmp_path / "ckpt")
    loaded = NPDPOPolicy.from_pretrained(tmp_path / "ckpt")
    with torch.no_grad():
        z1, z2 = policy.encode(*ctx), loaded.encode(*ctx)
        torch.testing.assert_close(z1, z2, atol=0, rtol=0)
        with policy.conditioned(z1.repeat_interleave(2, 0)):
            a = _logits(policy.lm, batch)
        with loaded.conditioned(z2.repeat_interleave(2, 0)):
            b = _logits(loaded.lm, batch)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    # only the trainable parts are stored
    from safetensors.torch import load_file
    keys = load_file(str(tmp_path / "ckpt" / "model.safetensors")).keys()
    assert keys and all(k.split(".")[0] in ("lora", "film", "encoder") for k in keys)
    n_base = sum(p.numel() for p in policy.lm.get_base_model().parameters())
    n_saved = sum(v.numel() for v in load_file(str(tmp_path / "ckpt" / "model.safetensors")).values())
    assert n_saved == sum(p.numel() for p in policy.parameters() if p.requires_grad) < n_base + n_saved


def test_unconditioned_baseline_policy(tok, tmp_path):
    policy = _policy("gpt2", film=False)
    assert policy.film is None and policy.encoder is None
    batch = _batch(tok)
    with pytest.raises(RuntimeError, match="film=False"):
        policy.logprobs(batch, torch.zeros(1, 8))
    policy.logprobs(batch)
    policy.save_pretrained(tmp_path / "p")
    loaded = NPDPOPolicy.from_pretrained(tmp_path / "p", base=tiny_causal_lm("gpt2"))
    assert loaded.film is None


def test_generate_with_z(tok):
    policy = _policy("llama")
    with torch.no_grad():
        for p in policy.film.parameters():
            p.normal_(0, 1.0)
    ids = tok(["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"], return_tensors="pt")
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    a = policy.generate(ids["input_ids"], ids["attention_mask"], z=torch.ones(1, 8), **kw)
    b = policy.generate(ids["input_ids"], ids["attention_mask"], z=-torch.ones(1, 8), **kw)
    assert not torch.equal(a, b)


def test_config_validation():
    with pytest.raises(ValueError, match="encoder"):
        NPDPOConfig(encoder="lstm")
    with pytest.raises(ValueError, match="z_dim"):
        NPDPOConfig(z_dim=0)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_trainable_top_layers_only(tok, arch):
    policy = _policy(arch, trainable_layers=1)
    lora_layers = {n.split(".")[4] for n, p in policy.lm.named_parameters() if "lora_" in n}
    assert lora_layers == {"1"}  # only the top block of 2
    assert policy.film.layers == [1]
    batch = _batch(tok)
    with torch.no_grad():
        base = sequence_logprobs(tiny_causal_lm(arch), batch)
        z = policy.encode(*_context()).repeat_interleave(2, 0)
        torch.testing.assert_close(policy.logprobs(batch, z), base, atol=1e-6, rtol=0)
    _train(policy, tok, steps=2)
    torch.testing.assert_close(policy.reference_logprobs(batch), base, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="top 3"):
        _policy(arch, trainable_layers=3)


def test_state_dict_is_trainable_part_and_round_trips(tok):
    policy = _policy("llama")
    _train(policy, tok, steps=1)
    state = policy.state_dict()
    assert all(k.split(".")[0] in ("lora", "film", "encoder") for k in state)
    other = _policy("llama")
    other.load_state_dict({k: v.clone() for k, v in state.items()})
    for k, v in other.state_dict().items():
        torch.testing.assert_close(v, state[k], atol=0, rtol=0)
    with pytest.raises(KeyError):
        other.load_state_dict({})


# --- training and evaluation glue, end to end on a tiny model ------------------------------------

def _text_records(n_users=4, n_pairs=14):
    import random

    from pluralign.data.records import PreferenceRecord

    rng = random.Random(0)
    out = []
    for u in range(n_users):
        t = u % 2  # type 0 prefers the short answer, type 1 the long one
        for i in range(n_pairs):
            short, long = "ok.", "well, " * rng.randint(2, 5) + "ok."
            c, r = (short, long) if t == 0 else (long, short)
            out.append(PreferenceRecord(f"u{u}", f"q{i}?", c, r, user_latent=t, pair_id=f"p{i}"))
    return out


@pytest.mark.slow
def test_train_and_evaluate_tiny_end_to_end(tok, tmp_path):
    from pluralign.eval.results import validate_results
    from pluralign.policies.np_dpo.data import PolicyData
    from pluralign.policies.np_dpo.evaluate import PolicyEvalConfig, accuracy_vs_context, steered_behaviour
    from pluralign.policies.np_dpo.train import PolicyTaskConfig, train_policy
    from pluralign.train.config import TrainConfig

    recs = _text_records()
    emb = torch.tensor([[len(r.chosen) / 10.0, 1.0] for r in recs]), torch.tensor([[len(r.rejected) / 10.0, 1.0] for r in recs])
    data = PolicyData(recs, tok, chosen_emb=emb[0], rejected_emb=emb[1], max_length=48)
    cfg = dict(option_dim=2, z_dim=8, encoder_hidden=16, lora_rank=4)
    np_policy = NPDPOPolicy(tiny_causal_lm("llama"), NPDPOConfig(**cfg))
    btl = NPDPOPolicy(tiny_causal_lm("llama"), NPDPOConfig(film=False, **cfg))
    train = TrainConfig(max_steps=4, learning_rate=1e-3, eval_steps=2, logging_steps=2, save_steps=2,
                        metric_for_best_model="reward_accuracy", greater_is_better=True, disable_tqdm=True)
    task = PolicyTaskConfig(beta=0.5, n_target=6, context_max=3, val_tasks=2)
    res = train_policy(np_policy, data, task, train, tmp_path / "np", val=data)
    assert res.step == 4 and (tmp_path / "np" / "best" / "model.safetensors").exists()
    loaded = NPDPOPolicy.from_pretrained(tmp_path / "np" / "best", base=tiny_causal_lm("llama"))
    assert loaded.film is not None
    train_policy(btl, data, PolicyTaskConfig(method="btl-dpo", beta=0.5, n_target=6, val_tasks=0), train, tmp_path / "btl")
    # resume: a finished run continues from last/ and does nothing more
    again = train_policy(np_policy, data, task, train, tmp_path / "np", val=data)
    assert again.resumed_from == 4
    doc = accuracy_vs_context({"np-dpo": np_policy, "btl-dpo": btl, "type-dpo": {0: btl, 1: btl}}, data,
                              PolicyEvalConfig(context_sizes=(0, 2), n_tasks=2, n_target=3))
    validate_results(doc)
    assert set(doc["per_type"]["np-dpo"]) == {"0", "1"}
    # unconditioned models score the same targets at every N^C
    assert doc["models"]["btl-dpo"]["0"] == doc["models"]["btl-dpo"]["2"]
    beh = steered_behaviour(np_policy, tok, data, ["q1?", "q2?"], k=2, users_per_type=1,
                            baselines={"btl-dpo": btl}, max_new_tokens=4)
    models = {r["model"] for r in beh["table"]}
    assert {"base (reference)", "btl-dpo", "np-dpo N^C=0", "np-dpo N^C=2"} <= models
    assert {r["user_type"] for r in beh["table"] if r["model"] == "np-dpo N^C=2"} == {0, 1}


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_prefix_cache_gives_the_full_model_log_probs(tok, arch):
    from pluralign.policies.np_dpo.data import PolicyData

    base = tiny_causal_lm(arch, n_layers=3)
    policy = NPDPOPolicy(base, NPDPOConfig(option_dim=D, z_dim=8, encoder_hidden=16, lora_rank=4,
                                           trainable_layers=1))
    assert policy.frozen_blocks == 2
    recs = _text_records(n_users=2, n_pairs=10)
    emb = torch.randn(len(recs), D)
    data = PolicyData(recs, tok, chosen_emb=emb, rejected_emb=-emb, max_length=48)
    data.enable_prefix_cache(policy.frozen_blocks)
    _train(policy, tok, steps=2)  # LoRA and FiLM away from zero
    from pluralign.data.tasks import TaskSampler
    items = TaskSampler(data.users, context_range=(2, 2), n_target=4).sample(2)
    batch = data.batch(items, lm=policy.lm)
    assert batch.prefix is not None and batch.prefix.shape[:2] == batch.sequences.input_ids.shape
    z = policy.encode(batch.tasks.context_chosen, batch.tasks.context_rejected,
                      batch.tasks.context_mask)[batch.pair_task].repeat(2, 1)
    with torch.no_grad():
        full = policy.logprobs(batch.sequences, z)
        cut = policy.logprobs(batch.sequences, z, prefix=batch.prefix)
    torch.testing.assert_close(cut, full, atol=1e-4, rtol=1e-5)
    assert (full - batch.reference).abs().max() > 1e-4  # the trained policy is not the reference
    # gradients flow to all trainable parts through the cut model
    policy.zero_grad()
    z = policy.encode(batch.tasks.context_chosen, batch.tasks.context_rejected,
                      batch.tasks.context_mask)[batch.pair_task].repeat(2, 1)
    policy.logprobs(batch.sequences, z, prefix=batch.prefix).sum().backward()
    for part in (policy.encoder, policy.film):
        assert all(p.grad is not None for p in part.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for n, p in policy.lm.named_parameters() if "lora_B" in n)


def test_gpt2_has_no_prefix_cache():
    policy = _policy("gpt2", trainable_layers=1)
    assert policy.frozen_blocks == 0


@pytest.mark.slow
def test_generate_cli_with_choices(tok, tmp_path):
    from typer.testing import CliRunner

    from pluralign.cli import app
    from pluralign.data.io import write_records

    base_dir = tmp_path / "base"
    tiny_causal_lm("llama").save_pretrained(base_dir)
    tok.save_pretrained(base_dir)
    policy = NPDPOPolicy(tiny_causal_lm("llama"), NPDPOConfig(base_model=str(base_dir), option_dim=384, z_dim=8,
                                                              encoder_hidden=16, lora_rank=4,
                                                              context_embedder="minilm"))
    policy.save_pretrained(tmp_path / "policy")
    write_records(_text_records(n_users=1, n_pairs=3), tmp_path / "choices.jsonl")
    args = ["generate", "--policy", str(tmp_path / "policy"), "--choices", str(tmp_path / "choices.jsonl"),
            "--prompt", "hi?", "--max-new-tokens", "5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    # at initialisation FiLM and LoRA are the identity: the answer is the base model's greedy answer
    ids = tok(["<|im_start|>user\nhi?<|im_end|>\n<|im_start|>assistant\n"], return_tensors="pt")
    want = tiny_causal_lm("llama").generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert result.stdout.strip() == tok.decode(want[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    bad = CliRunner().invoke(app, ["generate", "--policy", str(tmp_path / "policy"), "--prompt", "x"])
    assert bad.exit_code != 0 and "--choices" in bad.output


def test_encoder_warm_start_copies_a_type_separating_np_btl_encoder(tok, tmp_path):
    from pluralign.policies.np_dpo.data import PolicyData
    from pluralign.policies.np_dpo.encoder_warmstart import EncoderWarmStartConfig, warm_start_encoder
    from pluralign.policies.np_dpo.train import PolicyTaskConfig

    recs = _text_records(n_users=6, n_pairs=16)
    emb = (torch.tensor([[len(r.chosen) / 10.0, 1.0] for r in recs]),
           torch.tensor([[len(r.rejected) / 10.0, 1.0] for r in recs]))
    data = PolicyData(recs, tok, chosen_emb=emb[0], rejected_emb=emb[1], max_length=48)
    policy = NPDPOPolicy(tiny_causal_lm("llama"), NPDPOConfig(option_dim=2, z_dim=8, encoder_hidden=16, lora_rank=4))
    before = {k: v.clone() for k, v in policy.encoder.state_dict().items()}
    lora_before = {k: v.clone() for k, v in policy.lm.state_dict().items()}
    task = PolicyTaskConfig(n_target=6, context_max=3, stratify_types=True)
    info = warm_start_encoder(policy, data, task, EncoderWarmStartConfig(steps=100, tasks_per_step=8, n_target=6, hidden=32,
                                                                         learning_rate=1e-2), tmp_path, val=data)
    assert info["steps"] == 100 and info["validation"]["accuracy"] > 0.75  # N^C = 0 tasks cap it below 1
    with torch.no_grad():
        z = policy.encode(emb[0][:64].view(8, 8, 2), emb[1][:64].view(8, 8, 2), torch.ones(8, 8, dtype=torch.bool))
    assert 0.3 < float(z.pow(2).mean().sqrt()) < 3.0  # rescaled to z_rms = 1 on training contexts
    after = policy.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(lora_before[k], v) for k, v in policy.lm.state_dict().items())  # LM untouched
    # a flipped context (the other type's choices) moves z: the encoder tells the types apart
    c, r = emb[0][:3].unsqueeze(0), emb[1][:3].unsqueeze(0)
    mask = torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        assert (policy.encode(c, r, mask) - policy.encode(r, c, mask)).norm() > 1e-2
    with pytest.raises(ValueError, match="no set encoder"):
        warm_start_encoder(NPDPOPolicy(tiny_causal_lm("llama"), NPDPOConfig(option_dim=2, film=False, lora_rank=4)),
                           data, task, EncoderWarmStartConfig(steps=1), tmp_path / "x")


def test_encoder_warm_start_does_not_depend_on_the_global_rng(tok, tmp_path):
    from pluralign.policies.np_dpo.data import PolicyData
    from pluralign.policies.np_dpo.encoder_warmstart import EncoderWarmStartConfig, warm_start_encoder
    from pluralign.policies.np_dpo.train import PolicyTaskConfig

    recs = _text_records(n_users=4, n_pairs=12)
    emb = (torch.tensor([[len(r.chosen) / 10.0, 1.0] for r in recs]),
           torch.tensor([[len(r.rejected) / 10.0, 1.0] for r in recs]))
    data = PolicyData(recs, tok, chosen_emb=emb[0], rejected_emb=emb[1], max_length=48)
    cfg = EncoderWarmStartConfig(steps=3, tasks_per_step=4, n_target=6, hidden=8)
    encoders = []
    for i, rng_seed in enumerate((1, 2)):
        torch.manual_seed(0)
        policy = NPDPOPolicy(tiny_causal_lm("llama"), NPDPOConfig(option_dim=2, z_dim=4, encoder_hidden=8, lora_rank=2))
        torch.manual_seed(rng_seed)  # e.g. an embedder loaded or not before the warm start
        warm_start_encoder(policy, data, PolicyTaskConfig(n_target=6, context_max=3), cfg, tmp_path / str(i))
        encoders.append(policy.encoder.state_dict())
    assert all(torch.equal(encoders[0][k], encoders[1][k]) for k in encoders[0])


def test_odd_encoder_negates_z_for_flipped_choices_and_is_zero_without_context():
    torch.manual_seed(0)
    policy = NPDPOPolicy(tiny_causal_lm("llama"), NPDPOConfig(option_dim=3, z_dim=5, encoder_hidden=8, lora_rank=2,
                                                              encoder_odd=True))
    c, r = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    with torch.no_grad():
        z = policy.encode(c, r, mask)
        assert z.abs().max() > 1e-4
        assert torch.allclose(policy.encode(r, c, mask), -z, atol=1e-6)
        assert torch.equal(policy.encode(c, r, torch.zeros_like(mask)), torch.zeros(2, 5))
    assert hasattr(policy.encoder, "outer")  # what the warm start rescales
