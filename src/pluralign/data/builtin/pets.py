"""A Pets-style preference set from templates (VPL, Poddar et al., App. E.4 "Pets").

VPL's Pets: four kinds of pets (bird, cat, dog, rabbit), 100 sentences describing each (GPT-4
wrote theirs), the fixed prompt "Human: Please talk about one kind of pets.", and two user
groups that agree on the best (birds) and the worst (rabbits) and disagree in the middle: the
dog group ranks bird > dog > cat > rabbit, the cat group bird > cat > dog > rabbit. Of the six
kinds of comparison only dog vs cat divides them. "Pets (Full)" keeps every pair (about 1/6 of
pairs conflict); "Pets (Divergent)" only dog-vs-cat pairs.

Here the sentences come from a grammar instead of GPT-4: many sentence frames, several words for
each kind (cat / kitten / feline / tabby ...), kind-specific facts, shared names, adjectives and
owners, so no single word gives the kind away and a model must read the sentence. Sentences are
split train/validation/test *before* pairs are formed, so test pairs hold unseen sentences.
"""

from __future__ import annotations

import random
from itertools import combinations
from typing import Sequence

import numpy as np

from ..records import SPLITS, PreferenceRecord
from .pool import PoolPair, label_pool

PROMPT = "Human: Please talk about one kind of pets."
KINDS = ("bird", "cat", "dog", "rabbit")
# Rank of each kind (higher is better) for each group: agree on best/worst, differ in the middle.
GROUPS: dict[str, dict[str, int]] = {
    "dog-group": {"bird": 3, "dog": 2, "cat": 1, "rabbit": 0},
    "cat-group": {"bird": 3, "cat": 2, "dog": 1, "rabbit": 0},
}

NOUNS = {
    "bird": ["bird", "parrot", "budgie", "canary", "cockatiel", "parakeet", "lovebird", "finch"],
    "cat": ["cat", "kitten", "feline", "tabby", "kitty", "Siamese", "Persian", "Maine Coon"],
    "dog": ["dog", "puppy", "pup", "canine", "retriever", "beagle", "terrier", "spaniel"],
    "rabbit": ["rabbit", "bunny", "lop", "Netherland Dwarf", "Rex rabbit", "Angora", "bun", "doe"],
}
PLURALS = {
    "bird": ["birds", "parrots", "budgies", "canaries", "cockatiels", "songbirds"],
    "cat": ["cats", "kittens", "felines", "house cats", "tabbies", "indoor cats"],
    "dog": ["dogs", "puppies", "canines", "family dogs", "retrievers", "terriers"],
    "rabbit": ["rabbits", "bunnies", "house rabbits", "lop-eared rabbits", "pet rabbits", "dwarf rabbits"],
}
# Third-person-singular verb phrases that only fit one kind.
FACTS = {
    "bird": ["sings along when the radio is on", "preens its feathers every morning", "can mimic the doorbell",
             "whistles a tune at sunrise", "likes to perch on a shoulder", "cracks sunflower seeds with its beak",
             "splashes in a shallow water dish", "chirps to greet visitors", "flutters between perches",
             "learns new words with patience", "enjoys a cuttlebone to nibble", "moults a few feathers each spring",
             "bobs its head to music", "rings the little bell in its cage", "fluffs up its plumage when relaxed"],
    "cat": ["purrs when someone strokes it", "kneads the blanket before a nap", "uses a litter box without fuss",
            "chases the red dot of a laser pointer", "naps in every patch of sunshine", "sharpens its claws on a scratching post",
            "grooms its whiskers after dinner", "brings home the odd mouse", "climbs to the top of the bookshelf",
            "meows at the fridge at six sharp", "slinks through the garden at dusk", "curls up in cardboard boxes",
            "hisses at unfamiliar visitors", "bats at dangling string", "watches birds from the windowsill"],
    "dog": ["fetches a ball until everyone is tired", "wags its tail at the postman", "barks when the doorbell rings",
            "loves long walks on a leash", "digs holes in the back garden", "learns to sit and stay for a treat",
            "greets the family at the door", "chews on a rubber bone", "rolls over for a belly rub",
            "howls along with sirens", "sniffs every lamp post in the park", "guards the house at night",
            "pulls on the lead near squirrels", "drools at the sight of sausages", "swims after sticks in the lake"],
    "rabbit": ["hops around the living room", "nibbles on fresh carrots and hay", "thumps its hind foot when startled",
               "binkies with joy in the morning", "twitches its nose constantly", "digs burrows in the run",
               "chews through cardboard tunnels", "flops on its side when content", "grooms its long ears",
               "needs hay to keep its teeth short", "lives happily in a hutch with a run", "nudges people for parsley",
               "hides under the sofa at noon", "sheds its soft fur each season", "leaps over small hurdles"],
}
NAMES = ["Milo", "Luna", "Pepper", "Biscuit", "Coco", "Oliver", "Daisy", "Rocky", "Willow", "Ziggy",
         "Hazel", "Maple", "Oscar", "Poppy", "Nala", "Teddy", "Juniper", "Clover", "Bean", "Mochi",
         "Ginger", "Rosie", "Pickles", "Sunny", "Toffee", "Basil", "Olive", "Rufus", "Pip", "Nutmeg"]
ADJECTIVES = ["playful", "gentle", "curious", "shy", "affectionate", "lively", "calm", "clever", "cheeky",
              "sleepy", "loyal", "fluffy", "tiny", "friendly", "quiet", "energetic", "elderly", "young"]
OWNERS = ["my neighbour", "my sister", "our family", "my grandmother", "a friend of mine", "my colleague",
          "the family next door", "my cousin", "our teacher", "my flatmate"]
FRAMES = [
    "My {adj} {noun} {fact}.",
    "{name}, our {adj} {noun}, {fact}.",
    "{owner_cap} has a {noun} named {name} that {fact}.",
    "A {adj} {noun} usually {fact}.",
    "{plural_cap} make wonderful companions; ours {fact}.",
    "Every {noun} I have known {fact}.",
    "The {noun} at {owner}'s house {fact}.",
    "If you adopt a {noun}, expect that it {fact}.",
    "{name} is a {adj} {noun} who {fact}.",
    "Honestly, {plural} are great: {name} {fact}.",
    "Our {noun}, {name}, {fact}, which always makes us smile.",
    "I love how a {noun} {fact}.",
    "There is nothing like a {adj} {noun} that {fact}.",
    "{owner_cap} says their {noun} {fact}.",
    "Many {plural} are {adj}, and {name} {fact}.",
]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def pet_sentences(kind: str, n: int = 100, seed: int = 0) -> list[str]:
    """``n`` distinct template sentences about one kind of pet (deterministic in ``seed``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; kinds are {KINDS}")
    rng = random.Random(f"{seed}-{kind}")
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(n * 50):
        frame = rng.choice(FRAMES)
        owner = rng.choice(OWNERS)
        plural = rng.choice(PLURALS[kind])
        text = frame.format(adj=rng.choice(ADJECTIVES), noun=rng.choice(NOUNS[kind]), fact=rng.choice(FACTS[kind]),
                            name=rng.choice(NAMES), owner=owner, owner_cap=_cap(owner), plural=plural,
                            plural_cap=_cap(plural))
        text = _cap(text.replace(" a A", " an A").replace(" a e", " an e").replace(" a a", " an a"))
        if text not in seen:
            seen.add(text)
            out.append(text)
            if len(out) == n:
                return out
    raise ValueError(f"the grammar could not make {n} distinct {kind} sentences")


def pets_pool(sentences_per_pet: int = 100, pairs_per_kind_pair: int = 300,
              fractions: Sequence[float] = (0.5, 0.25, 0.25), seed: int = 0) -> list[PoolPair]:
    """Pairs of sentences about two different kinds, sentences split before pairing.

    For each of the 6 kind pairs and each split, ``pairs_per_kind_pair`` x fraction pairs of
    random sentences (distinct pairs; fewer if the split has too few sentences).
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    bounds = np.round(np.cumsum(fractions)[:2] * sentences_per_pet).astype(int)
    parts: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}
    for kind in KINDS:
        sents = pet_sentences(kind, sentences_per_pet, seed)
        order = rng.permutation(len(sents))
        for i, s in enumerate(np.split(order, bounds)):
            parts[SPLITS[i]][kind] = [sents[j] for j in s]
    pool: list[PoolPair] = []
    for split, frac in zip(SPLITS, fractions):
        want = int(round(pairs_per_kind_pair * frac))
        for ka, kb in combinations(KINDS, 2):
            sa, sb = parts[split][ka], parts[split][kb]
            n = min(want, len(sa) * len(sb))
            for flat in rng.choice(len(sa) * len(sb), n, replace=False):
                i, j = divmod(int(flat), len(sb))
                swap = rng.random() < 0.5  # which kind comes first is random
                a, b = (sb[j], sa[i]) if swap else (sa[i], sb[j])
                kind_a, kind_b = (kb, ka) if swap else (ka, kb)
                pool.append(PoolPair(
                    pair_id=f"pets-{split}-{ka}-{kb}-{i}-{j}", prompt=PROMPT, a=a, b=b,
                    scores_a={g: float(r[kind_a]) for g, r in GROUPS.items()},
                    scores_b={g: float(r[kind_b]) for g, r in GROUPS.items()},
                    split=split, meta={"kinds": [kind_a, kind_b]}))
    return pool


def pets_preferences(users_per_group: int = 50, pairs_per_user: int = 40, divergent_only: bool = False,
                     conflict_rate: float | None = None, *, sentences_per_pet: int = 100,
                     pairs_per_kind_pair: int = 300, fractions: Sequence[float] = (0.5, 0.25, 0.25),
                     seed: int = 0) -> list[PreferenceRecord]:
    """Pets records: ``users_per_group`` users in each of the dog and cat groups.

    ``divergent_only`` keeps only dog-vs-cat pairs ("Pets (Divergent)", conflict rate 1);
    otherwise ``conflict_rate`` (None: natural, 1/6) picks the mix. ``user_latent`` 0 is the dog
    group, 1 the cat group; ``attributes`` hold each group's rank of the two pets (3 best).
    """
    if divergent_only:
        if conflict_rate not in (None, 1.0):
            raise ValueError("divergent_only means conflict_rate 1.0")
        conflict_rate = 1.0
    pool = pets_pool(sentences_per_pet, pairs_per_kind_pair, fractions, seed)
    names = list(GROUPS)
    signs = np.array([[int(np.sign(p.scores_a[g] - p.scores_b[g])) for g in names] for p in pool], dtype=np.int8)
    return label_pool(pool, signs, names, users_per_type=users_per_group, pairs_per_user=pairs_per_user,
                      conflict_rate=conflict_rate, rng=np.random.default_rng(seed + 1), source="pets")
