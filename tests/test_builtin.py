"""Built-in text data: attribute scorers, Pets, the SmolLM2 corpus and its simulated users."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from pluralign.data import parse_record
from pluralign.data.builtin import available, corpus_path, corpus_stats, load, load_corpus, pet_sentences, scorers
from pluralign.data.builtin.corpus import corpus_preferences, parse_user_type
from pluralign.data.builtin.pets import GROUPS, KINDS, NOUNS, pets_preferences
from pluralign.data.builtin.pool import select_conflict_rate
from pluralign.data.splits import group_key
from pluralign.data.tables import pair_conflicts

# ---------------------------------------------------------------- scorers on hand examples


def test_length_counts_words():
    assert scorers.length("Water it twice a week.") == 5
    assert scorers.length("Don't over-water it; it's fine.") == 6  # don't, over, water, it, it's, fine
    assert scorers.length("") == 0


def test_list_use_fraction_of_list_lines():
    text = "Here are tips:\n- water weekly\n* bright light\n1. trim leaves\n2) feed monthly\n\nThat's all."
    assert scorers.list_use(text) == pytest.approx(4 / 6)
    assert scorers.list_use("Plain prose. No list here.\nSecond line.") == 0.0
    assert scorers.list_use("• one\n• two") == 1.0
    assert scorers.list_use("In 2020 it rained.") == 0.0  # a number that is not a list marker


def test_formality_sign_and_markers():
    casual = "Hey! Don't worry, it's totally fine, just grab some cool stuff lol!"
    formal = "It is important to ensure adequate drainage; furthermore, individuals should water moderately."
    neutral = "Water the plant on Monday."
    assert scorers.casual_markers(casual) >= 8
    assert scorers.formal_markers(formal) == 4  # it is important, ensure, furthermore, individuals
    assert scorers.formality(casual) < 0 < scorers.formality(formal)
    assert scorers.formality(neutral) == 0.0
    assert scorers.casual_markers("The dog's bowl is full.") == 0  # a possessive is no contraction


def test_sentence_length_and_score():
    assert scorers.sentence_length("One two three. Four five!") == pytest.approx(2.5)
    s = scorers.score("- a b c\n- d e")
    assert set(s) == set(scorers.SCORERS) and s["list_use"] == 1.0 and s["length"] == 5
    with pytest.raises(KeyError, match="unknown attribute"):
        scorers.score("x", ["nope"])


# ---------------------------------------------------------------- pool helpers


def test_select_conflict_rate_hits_the_rate_and_errors_clearly():
    import numpy as np

    rng = np.random.default_rng(0)
    conflict = np.array([True] * 30 + [False] * 70)
    for rate in (1.0, 0.75, 0.5, 0.0):
        keep = select_conflict_rate(conflict, rate, rng)
        assert conflict[keep].mean() == pytest.approx(rate, abs=0.02)
    assert len(select_conflict_rate(conflict, None, rng)) == 100
    with pytest.raises(ValueError, match="always disagree"):
        select_conflict_rate(np.array([True, True]), 0.5, rng)


# ---------------------------------------------------------------- Pets


def test_pet_sentences_are_varied():
    bags = {k: [{w.lower() for w in scorers.words(s)} for s in pet_sentences(k, 100)] for k in KINDS}
    for kind in KINDS:
        assert len(pet_sentences(kind, 100)) == 100
        others = set().union(*(ws for k in KINDS if k != kind for ws in bags[k]))
        cues = Counter(w for ws in bags[kind] for w in ws - others)  # words that give the kind away
        assert cues and max(cues.values()) <= 30  # none is in more than 30% of the kind's sentences
        assert sum(any(n.lower() in s for s in bags[kind]) for n in NOUNS[kind] if " " not in n) >= 5


def test_pets_records_validate_and_have_the_paper_structure():
    recs = pets_preferences(users_per_group=6, pairs_per_user=24, seed=3)
    assert len(recs) == 2 * 6 * 24
    for r in recs[:50]:
        assert parse_record(r.to_dict()) == r
    assert Counter(r.user_latent for r in recs) == {0: 144, 1: 144}
    assert {r.user_id.rsplit("-", 1)[0] for r in recs} == set(GROUPS)
    for r in recs:  # groups agree on the best and worst pet, disagree on dog vs cat
        kinds = set(r.meta["kinds"])
        assert r.meta["conflict"] == (kinds == {"cat", "dog"})
        group = r.meta["user_type"]
        assert r.attributes[group][0] > r.attributes[group][1]
    rate = sum(r.meta["conflict"] for r in recs) / len(recs)
    assert 0.08 < rate < 0.26  # 1 of 6 kind pairs
    conflicts = pair_conflicts(recs)
    assert conflicts and all(conflicts.values()) == (rate == 1.0)


def test_pets_divergent_and_sentence_splits():
    recs = pets_preferences(users_per_group=4, pairs_per_user=20, divergent_only=True, seed=1)
    assert all(r.meta["conflict"] and set(r.meta["kinds"]) == {"cat", "dog"} for r in recs)
    by_split: dict[str, set[str]] = {}
    for r in recs:
        by_split.setdefault(r.split, set()).update([r.chosen, r.rejected])
    assert by_split["train"].isdisjoint(by_split["test"])  # test sentences never seen in training
    assert by_split["train"].isdisjoint(by_split["validation"])
    for uid in {r.user_id for r in recs}:  # every user has pairs in every split
        assert {r.split for r in recs if r.user_id == uid} == {"train", "validation", "test"}


def test_pets_deterministic_for_a_seed():
    a = pets_preferences(users_per_group=3, pairs_per_user=10, seed=5)
    b = pets_preferences(users_per_group=3, pairs_per_user=10, seed=5)
    c = pets_preferences(users_per_group=3, pairs_per_user=10, seed=6)
    assert a == b and a != c


# ---------------------------------------------------------------- corpus users on a tiny corpus file

SHORT = ["Water it weekly.", "Use a pot.", "Give it sun."]
LONG = [
    "Basil needs about six hours of bright light a day, so place it on a sunny windowsill and turn the pot "
    "every few days. Water when the top of the soil feels dry, and pinch off flower buds so the leaves stay tender.",
    "To keep basil healthy indoors, choose a pot with drainage holes, use light potting mix, and water it "
    "deeply but not too often. Furthermore, it is important to harvest the top leaves regularly to ensure bushy growth.",
]
LIST = "- Bright light every day\n- Water when the soil is dry\n- Pinch off the flowers\n- Harvest from the top"


@pytest.fixture()
def tiny_corpus(tmp_path):
    rows = []
    for p in range(12):
        texts = [SHORT[p % 3] + " Hey, it's easy!", LONG[p % 2], LIST, SHORT[(p + 1) % 3] + f" Prompt {p}."]
        for j, t in enumerate(texts):
            rows.append({"prompt_id": f"p{p:04d}", "response_id": f"p{p:04d}-r{j}", "category": "how-to",
                         "prompt": f"How do I keep plant {p} alive?", "response": t,
                         "style": {}, "instruction": "", "truncated": False})
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def test_corpus_2mode_full_conflict(tiny_corpus):
    recs = corpus_preferences(("concise", "detailed"), 1.0, users_per_type=5, pairs_per_user=12, path=tiny_corpus)
    assert len(recs) == 2 * 5 * 12
    for r in recs[:30]:
        assert parse_record(r.to_dict()) == r
    for r in recs:
        c, j = r.attributes["length"]
        assert (c < j) if r.user_latent == 0 else (c > j)  # concise picks fewer words, detailed more
        assert abs(c - j) >= 10  # smaller gaps count as ties and are dropped
        assert r.prompt.startswith("How do I")  # the plain question, no style instruction
    assert all(pair_conflicts(recs).values())
    # splits are by prompt: a prompt's pairs are all in one split
    seen: dict[str, str] = {}
    for r in recs:
        assert seen.setdefault(group_key(r, "prompt"), r.split) == r.split


def test_corpus_mixed_types_conflict_rate_and_determinism(tiny_corpus):
    kw = dict(users_per_type=20, pairs_per_user=12, path=tiny_corpus)
    recs = corpus_preferences(("concise", "lists"), 0.5, seed=2, **kw)
    rate = sum(r.meta["conflict"] for r in recs) / len(recs)
    assert 0.35 < rate < 0.65
    assert recs == corpus_preferences(("concise", "lists"), 0.5, seed=2, **kw)
    assert recs != corpus_preferences(("concise", "lists"), 0.5, seed=3, **kw)
    with pytest.raises(ValueError, match="always disagree"):
        corpus_preferences(("concise", "detailed"), 0.5, **kw)
    with pytest.raises(ValueError, match="unknown user type"):
        corpus_preferences(("concise", "loud"), 1.0, **kw)
    assert parse_user_type("sentence_length:-") == ("sentence_length", -1)


def test_load_registry_errors():
    assert {"pets", "pets-divergent", "corpus-2mode", "corpus-length"} <= set(available())
    with pytest.raises(KeyError, match="available"):
        load("nope")
    recs = load("pets-divergent", users_per_group=2, pairs_per_user=8)
    assert len(recs) == 32


# ---------------------------------------------------------------- the shipped corpus


def test_shipped_corpus_exists_and_loads():
    assert corpus_path().is_file()
    assert corpus_path().stat().st_size < 5_000_000
    stats = corpus_stats()
    assert stats["prompts"] >= 300 and stats["responses"] >= 3 * 300
    rows = load_corpus()
    assert {"prompt", "response", "instruction", "style", "model", "generation", "scores"} <= set(rows[0])
    # the instructions moved the attributes the users care about
    by_style = lambda key, val, attr: [r["scores"][attr] for r in rows if r["style"][key] == val]  # noqa: E731
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert mean(by_style("length", "long", "length")) > 1.15 * mean(by_style("length", "short", "length"))
    assert mean(by_style("format", "list", "list_use")) > mean(by_style("format", "prose", "list_use"))


def test_shipped_corpus_2mode_default():
    recs = load("corpus-2mode", users_per_type=10, pairs_per_user=32)
    assert len(recs) == 640 and {r.user_latent for r in recs} == {0, 1}
    assert all(pair_conflicts(recs).values())
    assert len({r.prompt for r in recs}) > 100
