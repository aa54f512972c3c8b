"""Tiny random causal LMs and a byte-level tokenizer built in memory, for tests and benchmarks.

Nothing is downloaded: the tokenizer is a merge-free byte-level BPE (every UTF-8 byte is a
token) with ChatML special tokens and a ChatML chat template, so the chat-template code path
of :mod:`pluralign.policies.logprobs` is exercised exactly as with SmolLM2.
"""

from __future__ import annotations

import torch
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          PreTrainedModel, PreTrainedTokenizerFast, Qwen2Config,
                          Qwen2ForCausalLM)

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
ARCHITECTURES = ("llama", "qwen2", "gpt2")


def tiny_tokenizer(chat_template: bool = True) -> PreTrainedTokenizerFast:
    """Byte-level tokenizer: 256 byte tokens + ``<|im_start|>``, ``<|im_end|>`` (eos), ``<pad>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    for special in ("<|im_start|>", "<|im_end|>", "<pad>"):
        vocab[special] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>",
                                  pad_token="<pad>", bos_token="<|im_start|>",
                                  additional_special_tokens=["<|im_start|>"])
    if chat_template:
        tok.chat_template = CHATML_TEMPLATE
    return tok


def tiny_causal_lm(arch: str = "llama", *, vocab_size: int = 259, hidden_size: int = 32,
                   n_layers: int = 2, seed: int = 0) -> PreTrainedModel:
    """A randomly initialised causal LM of the given layout (``llama``, ``qwen2``, ``gpt2``)."""
    torch.manual_seed(seed)
    # the special ids of tiny_tokenizer(), so generate() stops at <|im_end|>
    ids = dict(bos_token_id=vocab_size - 3, eos_token_id=vocab_size - 2, pad_token_id=vocab_size - 1)
    if arch == "llama":
        cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                          num_hidden_layers=n_layers, num_attention_heads=4, num_key_value_heads=2,
                          max_position_embeddings=512, tie_word_embeddings=True, **ids)
        model = LlamaForCausalLM(cfg)
    elif arch == "qwen2":
        cfg = Qwen2Config(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                          num_hidden_layers=n_layers, num_attention_heads=4, num_key_value_heads=2,
                          max_position_embeddings=512, **ids)
        model = Qwen2ForCausalLM(cfg)
    elif arch == "gpt2":
        cfg = GPT2Config(vocab_size=vocab_size, n_embd=hidden_size, n_layer=n_layers, n_head=4,
                         n_positions=512, **ids)
        model = GPT2LMHeadModel(cfg)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHITECTURES}")
    return model.eval()
