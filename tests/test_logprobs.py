"""Response-only log-prob masks and sums under left and right padding (pluralign.policies.logprobs)."""

import pytest
import torch

from pluralign.policies.logprobs import (prompt_text, sequence_logprobs, summed_logprobs,
                                         tokenize_pair, tokenize_responses)
from pluralign.policies.tiny import tiny_causal_lm, tiny_tokenizer

PROMPTS = ["Name a fruit.", "Say hi", [{"role": "user", "content": "What is 2+2?"}]]
RESPONSES = ["An apple.", "Hi there, how are you doing today?", [{"role": "assistant", "content": "4"}]]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def test_prompt_uses_chat_template(tok):
    text = prompt_text(tok, "hello")
    assert text == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    plain = prompt_text(tiny_tokenizer(chat_template=False), "hello")
    assert plain == "hello\n"


@pytest.mark.parametrize("side", ["left", "right"])
def test_mask_covers_response_tokens_only(tok, side):
    batch = tokenize_responses(tok, PROMPTS, RESPONSES, padding_side=side)
    for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES)):
        ids = batch.input_ids[i][batch.response_mask[i]].tolist()
        want = tok(r if isinstance(r, str) else r[0]["content"], add_special_tokens=False)["input_ids"]
        assert ids == want + [tok.eos_token_id]
        # the masked-out real tokens are exactly the templated prompt
        real = batch.attention_mask[i].bool()
        prompt_ids = batch.input_ids[i][real & ~batch.response_mask[i]].tolist()
        assert tok.decode(prompt_ids) == prompt_text(tok, p)
        # padding is never in the response mask and sits on the requested side
        assert not (batch.response_mask[i] & ~real).any()
    pad_cols = (batch.attention_mask == 0)
    if side == "left":
        assert not pad_cols[:, -1].any()
    else:
        assert not pad_cols[:, 0].any()


def test_truncation_keeps_prompt_end_and_response_start(tok):
    p, r = tokenize_pair(tok, "x" * 100, "y" * 100, max_length=40)
    assert len(p) + len(r) == 40
    assert tok.decode(p).endswith("assistant\n")
    assert tok.decode(r) == "y" * len(r)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
def test_summed_logprobs_equal_brute_force_left_and_right(tok, arch):
    model = tiny_causal_lm(arch)
    want = []
    with torch.no_grad():
        for p, r in zip(PROMPTS, RESPONSES):
            p_ids, r_ids = tokenize_pair(tok, p, r)
            ids = torch.tensor([p_ids + r_ids])
            logp = torch.log_softmax(model(ids).logits[0], dim=-1)
            want.append(sum(logp[len(p_ids) + j - 1, t].item() for j, t in enumerate(r_ids)))
        for side in ("left", "right"):
            batch = tokenize_responses(tok, PROMPTS, RESPONSES, padding_side=side)
            got = sequence_logprobs(model, batch)
            torch.testing.assert_close(got, torch.tensor(want), atol=1e-4, rtol=1e-5)


def test_summed_logprobs_with_hand_logits():
    # V=2, one sequence [0, 1, 1] with the last two tokens as response
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]]]))
    ids = torch.tensor([[0, 1, 1]])
    mask = torch.tensor([[False, True, True]])
    got = summed_logprobs(logits, ids, mask)
    assert got.item() == pytest.approx(float(torch.log(torch.tensor(0.5 * 0.8))), abs=1e-6)
    with pytest.raises(ValueError, match="logits_to_keep"):
        summed_logprobs(logits[:, 1:], ids, mask)


def test_length_mismatch_raises(tok):
    with pytest.raises(ValueError, match="prompts"):
        tokenize_responses(tok, ["a"], ["b", "c"])
