"""Small text preference data with two user types and a tiny random sentence encoder saved as
a Hugging Face folder: what the own-data tests (Personalizer, `pluralign train/eval/rank` on
text) run on. Nothing is downloaded."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertModel

from pluralign.data.records import PreferenceRecord
from pluralign.policies.tiny import tiny_tokenizer

PETS = ("cat", "dog", "bird", "fish")
# the two types agree that bird > fish and disagree on cats vs dogs
TYPE_SCORES = {0: {"cat": 3, "bird": 2, "fish": 1, "dog": 0},
               1: {"dog": 3, "bird": 2, "fish": 1, "cat": 0}}
TYPE_NAMES = {0: "cat people", 1: "dog people"}


def answer(pet: str) -> str:
    return f"{pet} {pet} {pet}"


def pet_records(users_per_type: int = 6, n_prompts: int = 30, seed: int = 0) -> list[PreferenceRecord]:
    """Every user labels every pair of answers to every prompt by their type's pet ranking."""
    rng = np.random.default_rng(seed)
    out = []
    for t, scores in TYPE_SCORES.items():
        for u in range(users_per_type):
            for k in range(n_prompts):
                prompt = f"q{k}"
                for a, b in combinations(PETS, 2):
                    first, second = (a, b) if rng.random() < 0.5 else (b, a)
                    good, bad = (first, second) if scores[first] > scores[second] else (second, first)
                    out.append(PreferenceRecord(user_id=f"{TYPE_NAMES[t].split()[0]}-{u}", prompt=prompt,
                                                chosen=answer(good), rejected=answer(bad), user_latent=t,
                                                pair_id=f"{k}:{'-'.join(sorted((a, b)))}",
                                                meta={"user_type": TYPE_NAMES[t]}))
    return out


def tiny_encoder_dir(folder: Path, seed: int = 0) -> Path:
    """A random 2-layer BERT (hidden 32) + byte-level tokenizer saved to ``folder``."""
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=259, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128, pad_token_id=258)
    BertModel(cfg).eval().save_pretrained(folder)
    tiny_tokenizer(chat_template=False).save_pretrained(folder)
    return folder
